"""What an abandoned request gives back: its quota charge, over-quota units and in-flight place."""

from __future__ import annotations

from sim.engine.compiled import no_refcount
from sim.engine.outcomes import ABANDONED


@no_refcount
def abandon(j, acct):
    """Mark queued request ``j`` ABANDONED and undo what its admission charged.

    ``acct`` is the admission kernel's tuple ``(sub, outcome, usage, charge, quota_eff,
    exhausted, crossed, over, inflight, limited)``. The quota charge is given back (if the
    request crossed the quota and usage falls back below it, the month is no longer
    exhausted); the over-quota units the refund removes are taken off its ``over``, so a
    subscriber's over-quota units still sum to its usage above the quota; and it frees its
    in-flight place when concurrency limits are kept. A request already abandoned (at its
    patience deadline, while it stayed in its queue until its turn) is left as it is.
    """
    sub, outcome, usage, charge, quota_eff, exhausted, crossed, over, inflight, limited = acct
    if outcome[j] == ABANDONED:
        return
    sj = sub[j]
    u, q = usage[sj], quota_eff[sj]
    outcome[j] = ABANDONED
    over[j] += max(0.0, u - charge[j] - q) - max(0.0, u - q)
    usage[sj] = u - charge[j]
    if crossed[j] == 1:
        crossed[j] = 0
        if usage[sj] < quota_eff[sj]:
            exhausted[sj] = 0
    if limited:
        inflight[sj] -= 1
