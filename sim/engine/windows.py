"""Usage windows in the admission kernel: exact rolling windows, sessions, calendar caps.

State per subscriber and window slot ``k``: the usage counted in the window (``used``) and,
for session and calendar windows, when the current window closes (``reset_at``). A rolling
window is kept exactly: every admitted request is appended to its window's ring (expiry
time = sent + length, charge; subscriber, plan epoch, and the subscriber's previous entry), and
since requests are admitted in time order the ring is sorted by expiry; before a subscriber's
usage is read, the ring's expired head is popped and each popped charge leaves its
subscriber's usage. The time a full window frees enough room (its *roll*) is a walk back over
that subscriber's own entries from the newest. Cost: O(1) amortised per admitted request (one
append and one pop, both at the ring's ends: no random memory access), plus the walk when a
window is found full; memory: the requests admitted within one window length, 40 bytes each.

A subscriber whose plan changes starts its windows empty (its entries in the old plan's rings
are recognised by an epoch number and skipped). The kernel reads everything as one tuple
(:meth:`WindowState.kernel_args`, positions ``W_*`` below), whose types do not depend on
whether windows exist, so the kernel compiles once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.compiled import no_refcount
from sim.engine.hours import hour_of
from sim.units import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.world.windows import HOURS_PER_WEEK, WIN_CALENDAR, WIN_ROLLING, WIN_SESSION, Windows

WINDOW_METRICS = ("limit_hits", "lockouts", "lockout_s")
"""What the kernel counts per month x plan x segment x window: requests that found the window
full, lock-out episodes that began (a full window found while not already locked out), and
seconds from each such find to the roll that lifts it."""
W_HITS, W_LOCKOUTS, W_LOCK_S = range(len(WINDOW_METRICS))

NEVER = np.inf
"""``reset_at`` of a session window that is closed: the next admitted request opens it."""

# positions in the kernel's tuple (WindowState.kernel_args)
(
    W_ACTIVE, W_N, W_KIND, W_LENGTH, W_ALLOW, W_IN_TOKENS, W_RULE, W_GAP, W_RING, W_RING_K,
    W_SF, W_SI, W_RF, W_RI, W_RHEAD, W_RTAIL, W_ACC, W_WAIT_SHARE, W_MAX_WAIT, W_ANCHOR,
    W_WREQ, W_WTOK, W_U_WAIT, W_DEFERS, W_MAX_DEFERS, W_PEAK, W_WEEK_OFFSET, W_T0, W_WAITS,
) = range(29)  # fmt: skip
# a subscriber's window state, one row each, so that a request touches one or two cache lines:
# floats: usage of window k at [k], when session/calendar window k closes at [K + k], the end
# of its lock-out at [2K]; integers: its newest ring entry in window k at [k], its plan epoch
# at [K] (K = the window slots of a plan)
SF_WIDTH = 8
"""Floats per subscriber (2K + 1 = 7 used, padded to 64 bytes)."""
SI_WIDTH = 4
"""Integers per subscriber (K + 1 = 4)."""
RING_START = 16
"""Entries a ring holds before its first day (a power of two); ``prepare`` grows it to the
day's needs, so this only saves a reallocation for tiny runs."""
# fields of a ring entry: floats (expiry s, charge) and integers (subscriber, epoch, previous)
RF_EXPIRY, RF_CHARGE = 0, 1
RI_SUB, RI_EPOCH, RI_PREV = 0, 1, 2


class WindowState:
    """Per-subscriber window usage, the rolling windows' rings, and the month's counters."""

    def __init__(self, win: Windows, capacity: int, acc: NDArray[np.float64], start_weekday: int):
        self.win = win
        self.active = win.active
        self.plan_waits = win.waits()  # [P] plans with a window whose users may wait for it
        self.waits = bool(self.plan_waits.any())
        self.k = k = win.kind.shape[1]
        if 2 * k + 1 > SF_WIDTH or k + 1 > SI_WIDTH:
            raise ValueError(f"{k} window slots do not fit the subscriber rows")
        cap = capacity if self.active else 1
        self.sf = np.zeros((cap, SF_WIDTH))
        self.si = np.zeros((cap, SI_WIDTH), dtype=np.int64)
        self._clear(np.arange(cap))
        self.plan = np.full(cap, -1, dtype=np.int64)
        n_r = max(win.n_rings, 1)
        self.ring_k = np.zeros(n_r, dtype=np.int64)
        self.ring_k[: win.n_rings] = win.ring_slot()
        self._alloc_rings(n_r, RING_START if self.active else 1)
        self.rhead = np.zeros(n_r, dtype=np.int64)
        self.rtail = np.zeros(n_r, dtype=np.int64)
        self.acc = acc  # month x WINDOW_METRICS x plan x segment x window (Accumulators.window)
        # calendar windows step from Monday 00:00 of the first week (s, may be negative)
        self.anchor = -float(start_weekday) * SECONDS_PER_DAY
        self.start_weekday = start_weekday

    def _alloc_rings(self, n_r: int, cap: int) -> None:
        """Rings of ``cap`` entries, each entry's fields side by side in memory.

        ``rf``: expiry and charge; ``ri``: subscriber, epoch, the subscriber's previous entry.
        """
        self.rf = np.zeros((n_r, cap, 2))
        self.ri = np.full((n_r, cap, 3), -1, dtype=np.int64)

    @property
    def used(self) -> NDArray[np.float64]:
        """[subscribers, K] usage counted in each window."""
        return self.sf[:, : self.k]

    @property
    def epoch(self) -> NDArray[np.int64]:
        """[subscribers] plan epoch: entries of an earlier epoch no longer count."""
        return self.si[:, self.k]

    def _clear(self, ids: NDArray[np.int64]) -> None:
        """Empty windows for ``ids`` (their epoch stays: the caller moves it on)."""
        k = self.k
        self.sf[ids, :k] = 0.0
        self.sf[ids, k : 2 * k + 1] = -np.inf  # nothing closes, no lock-out
        self.si[ids, :k] = -1  # no ring entry

    def prepare(self, sub_plan: NDArray[np.int64], n_sub: int, rows: int, now: float) -> None:
        """Before a day starting at ``now`` (s): expired entries out, room for ``rows`` more.

        Every ring drops the entries expired by ``now`` and makes room for ``rows`` more
        entries, and the state has a row for every subscriber. Subscribers whose plan changed
        (or who are new) start with empty windows. The kernel pops a ring only when a usage
        reaches its allowance, so the ring holds at most the entries of one window length and
        of the day.
        """
        if not self.active:
            return
        _expire_all(now, self.kernel_args(0, no_window_rows()))
        if n_sub > len(self.plan):
            self._grow_subscribers(max(n_sub, 2 * len(self.plan)))
        changed = np.nonzero(self.plan[:n_sub] != sub_plan[:n_sub])[0]
        if len(changed):
            self._clear(changed)
            self.si[changed, self.k] += 1
            self.plan[changed] = sub_plan[changed]
        live = int((self.rtail - self.rhead).max())
        if live + rows > self.rf.shape[1]:
            self._grow_rings(1 << (2 * (live + rows) - 1).bit_length())

    def _grow_subscribers(self, cap: int) -> None:
        old = len(self.plan)
        sf, si, plan = self.sf, self.si, self.plan
        self.sf = np.zeros((cap, SF_WIDTH))
        self.si = np.zeros((cap, SI_WIDTH), dtype=np.int64)
        self._clear(np.arange(old, cap))
        self.sf[:old], self.si[:old] = sf, si
        self.plan = np.full(cap, -1, dtype=np.int64)
        self.plan[:old] = plan

    def _grow_rings(self, cap: int) -> None:
        """Re-lay every live entry at its sequence number modulo the new capacity.

        The capacity is a power of two: the kernel takes the modulo as a bit mask.
        """
        old_f, old_i = self.rf, self.ri
        old_cap = old_f.shape[1]
        self._alloc_rings(old_f.shape[0], cap)
        for r in range(old_f.shape[0]):
            seq = np.arange(self.rhead[r], self.rtail[r])
            self.rf[r, seq % cap] = old_f[r, seq % old_cap]
            self.ri[r, seq % cap] = old_i[r, seq % old_cap]

    def kernel_args(self, month: int, rows: dict[str, NDArray]) -> tuple:
        """The tuple ``serve_day`` reads as ``windows`` (see :func:`window_full`)."""
        w = self.win
        return (
            self.active, w.n, w.kind, w.length_s, w.allowance, w.in_tokens, w.rule, w.gap_s,
            w.ring, self.ring_k, self.sf, self.si, self.rf, self.ri, self.rhead, self.rtail,
            self.acc[min(month, len(self.acc) - 1)],
            w.wait_share, w.max_wait_s, self.anchor, rows["wreq"], rows["wtok"],
            rows["u_wait"], rows["defers"], w.max_deferrals, w.peak,
            self.start_weekday * HOURS_PER_DAY, rows["t0"], self.waits,
        )  # fmt: skip

    def peak_weights(self, plan: NDArray[np.int64], t: NDArray[np.float64]) -> NDArray:
        """Each request's peak weight: its plan's weight at its hour of the week.

        ``t`` (s) must be sorted (a day's arrivals are): the hours are found by bisection at
        the hour edges, which classifies each time exactly as ``t // 3600`` does, in a tenth
        of the time of a float division per request.
        """
        if len(t) == 0:
            return np.ones(0)
        first = int(t[0] // SECONDS_PER_HOUR)
        edges = (np.arange(first + 1, int(t[-1] // SECONDS_PER_HOUR) + 1)) * SECONDS_PER_HOUR
        counts = np.diff(np.searchsorted(t, edges, side="left"), prepend=0, append=len(t))
        # the week's hour of each hour the day spans, repeated over its requests
        how = (np.arange(first, first + len(counts)) + self.start_weekday * HOURS_PER_DAY) % (
            HOURS_PER_WEEK
        )
        return self.win.peak[plan, np.repeat(how, counts)]


@no_refcount
def peak_weight(p, t, W):
    """Plan p's peak weight at time t (s): the kernel's twin of WindowState.peak_weights."""
    how = (hour_of(t) + W[W_WEEK_OFFSET]) % HOURS_PER_WEEK
    return W[W_PEAK][p, how]


def window_rows(
    t: NDArray[np.float64],
    wreq: NDArray[np.float64],
    wtok: NDArray[np.float64],
    u_wait: NDArray[np.float64],
) -> dict[str, NDArray]:
    """The per-request arrays the windows read.

    Each request's charge in a window counting requests and in one counting tokens, its
    uniform draw for waiting, how often it was deferred (0), and when it was first sent (s).
    """
    return {
        "wreq": wreq,
        "wtok": wtok,
        "u_wait": u_wait,
        "defers": np.zeros(len(t), dtype=np.int64),
        "t0": t.copy(),
    }


def no_window_rows() -> dict[str, NDArray]:
    """One-element placeholders for the per-request window arrays (no window anywhere)."""
    return window_rows(np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1))


@no_refcount
def _expire(r, now, W):
    """Pop ring r's entries that left their window at or before ``now``."""
    rk, sf, si, kk = W[W_RING_K], W[W_SF], W[W_SI], W[W_KIND].shape[1]
    rf, ri, rhead, rtail = W[W_RF], W[W_RI], W[W_RHEAD], W[W_RTAIL]
    mask = rf.shape[1] - 1  # (a power of two less one)
    h = rhead[r]
    k = rk[r]
    while h < rtail[r]:
        j = h & mask
        if rf[r, j, RF_EXPIRY] > now:
            break
        s = ri[r, j, RI_SUB]
        if ri[r, j, RI_EPOCH] == si[s, kk]:  # (an entry of an earlier plan: skipped)
            if si[s, k] == h:  # its newest entry: the window is empty (no float residue)
                si[s, k] = -1
                sf[s, k] = 0.0
            else:
                sf[s, k] -= rf[r, j, RF_CHARGE]
        h += 1
    rhead[r] = h


@no_refcount
def _roll_time(s, p, k, now, W):
    """When subscriber s's full window k (of plan p) next has room (s).

    A rolling window: walking back from the subscriber's newest entry, the usage of the
    entries newer than an entry is what stays once that entry and the older ones have left;
    the roll is the expiry of the oldest entry at which that is below the allowance.
    """
    kind, allow, ring, sf, si = W[W_KIND], W[W_ALLOW], W[W_RING], W[W_SF], W[W_SI]
    if kind[p, k] != WIN_ROLLING:
        return sf[s, kind.shape[1] + k]
    r = ring[p, k]
    rf, ri, rhead = W[W_RF], W[W_RI], W[W_RHEAD]
    mask = rf.shape[1] - 1
    newer = 0.0
    e = si[s, k]
    when = now
    while e >= rhead[r] and newer < allow[p, k]:
        j = e & mask
        when = rf[r, j, RF_EXPIRY]
        newer += rf[r, j, RF_CHARGE]
        e = ri[r, j, RI_PREV]
    return when


@no_refcount
def _refresh(s, p, now, W):
    """Bring subscriber s's windows of plan p up to ``now``.

    Expired ring entries leave (when the usage is at the allowance: expiry only lowers a
    usage, so one below the allowance stays below it; every ring is popped at each day's
    start), closed sessions empty, calendar windows step.
    """
    n, kind, length, ring = W[W_N], W[W_KIND], W[W_LENGTH], W[W_RING]
    sf, anchor, allow = W[W_SF], W[W_ANCHOR], W[W_ALLOW]
    kk = kind.shape[1]
    for k in range(n[p]):
        if kind[p, k] == WIN_ROLLING:
            if sf[s, k] >= allow[p, k]:
                _expire(ring[p, k], now, W)
        elif now >= sf[s, kk + k]:
            sf[s, k] = 0.0
            if kind[p, k] == WIN_CALENDAR:
                steps = np.floor((now - anchor) / length[p, k]) + 1.0
                sf[s, kk + k] = anchor + steps * length[p, k]
            else:
                sf[s, kk + k] = NEVER


@no_refcount
def window_full(s, p, g, now, W):
    """The window of plan p holding subscriber s back at ``now`` (-1: none), and its roll.

    The roll is the time (s) all the plan's windows have room again.
    Brings the windows up to date first. With several windows full, the one that rolls last
    binds. A find counts in the month's ``limit_hits``; one made while not already locked out
    starts a lock-out episode, whose seconds run to the roll.
    """
    n, allow, sf, acc = W[W_N], W[W_ALLOW], W[W_SF], W[W_ACC]
    lock = 2 * W[W_KIND].shape[1]  # the lock-out's end, in the subscriber's float row
    _refresh(s, p, now, W)
    bind = -1
    roll = now
    for k in range(n[p]):
        if sf[s, k] >= allow[p, k]:
            when = _roll_time(s, p, k, now, W)
            if bind < 0 or when > roll:
                bind = k
                roll = when
    if bind >= 0:
        acc[W_HITS, p, g, bind] += 1
        if now >= sf[s, lock]:
            acc[W_LOCKOUTS, p, g, bind] += 1
            acc[W_LOCK_S, p, g, bind] += roll - now
            sf[s, lock] = roll
        elif roll > sf[s, lock]:
            acc[W_LOCK_S, p, g, bind] += roll - sf[s, lock]
            sf[s, lock] = roll
    return bind, roll


@no_refcount
def window_charge(s, p, now, i, W):
    """Count admitted request i (of subscriber s on plan p) in every window of the plan."""
    n, kind, length, in_tokens, ring = W[W_N], W[W_KIND], W[W_LENGTH], W[W_IN_TOKENS], W[W_RING]
    sf, si, rf, ri, rtail = W[W_SF], W[W_SI], W[W_RF], W[W_RI], W[W_RTAIL]
    wreq, wtok = W[W_WREQ], W[W_WTOK]
    kk = kind.shape[1]
    mask = rf.shape[1] - 1
    for k in range(n[p]):
        c = wtok[i] if in_tokens[p, k] else wreq[i]
        sf[s, k] += c
        if kind[p, k] == WIN_SESSION and sf[s, kk + k] == NEVER:
            sf[s, kk + k] = now + length[p, k]
        elif kind[p, k] == WIN_ROLLING:
            r = ring[p, k]
            seq = rtail[r]
            j = seq & mask
            rf[r, j, RF_EXPIRY] = now + length[p, k]
            rf[r, j, RF_CHARGE] = c
            ri[r, j, RI_SUB] = s
            ri[r, j, RI_EPOCH] = si[s, kk]
            ri[r, j, RI_PREV] = si[s, k]
            si[s, k] = seq
            rtail[r] = seq + 1


@no_refcount
def _expire_all(now, W):
    """Pop every ring's entries that left their window at or before ``now``."""
    for r in range(W[W_RING_K].shape[0]):
        _expire(r, now, W)
