"""What an abandoned request gives back: its quota charge, over-quota units and in-flight place."""

from __future__ import annotations

from sim.engine.compiled import no_refcount
from sim.engine.outcomes import ABANDONED

CROSSED = 1
"""``crossed`` of the request that crossed its quota (admission kernel)."""

BILLED_WHOLE = 2
"""``crossed`` of a request billed whole as pay-as-you-go beyond a full usage window (its
plan's monthly rule, sim.engine.windows): it drew nothing from the month's quota."""


@no_refcount
def abandon(j, acct):
    """Mark queued request ``j`` ABANDONED and undo what its admission charged.

    ``acct`` is the admission kernel's tuple ``(sub, outcome, usage, charge, quota_eff,
    exhausted, crossed, over, inflight, limited)``. The quota charge is given back (if the
    request crossed the quota and usage falls back below it, the month is no longer
    exhausted); the over-quota units the refund removes are taken off its ``over``, so a
    subscriber's over-quota units still sum to its usage above the quota; and it frees its
    in-flight place when concurrency limits are kept. A request billed whole beyond a usage
    window (``BILLED_WHOLE``) drew nothing from the quota: only its bill is given back. A
    request already abandoned (at its
    patience deadline, while it stayed in its queue until its turn) is left as it is.
    """
    sub, outcome, usage, charge, quota_eff, exhausted, crossed, over, inflight, limited = acct
    if outcome[j] == ABANDONED:
        return
    sj = sub[j]
    u, q = usage[sj], quota_eff[sj]
    outcome[j] = ABANDONED
    if limited:
        inflight[sj] -= 1
    if crossed[j] == BILLED_WHOLE:  # nothing drawn from the quota: only the bill goes
        over[j] = 0.0
        return
    over[j] += max(0.0, u - charge[j] - q) - max(0.0, u - q)
    usage[sj] = u - charge[j]
    if crossed[j] == CROSSED:
        crossed[j] = 0
        if usage[sj] < quota_eff[sj]:
            exhausted[sj] = 0
