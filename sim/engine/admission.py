"""The GPU cluster and request admission: one compiled pass over a day's requests.

Requests arrive sorted by time. For each one, in order, this kernel

1. retires the requests whose service ended before the arrival (per pool, a
   binary heap of busy slots ordered by end time) and starts queued requests
   on the freed slots, highest priority first and FIFO within a priority;
2. applies the subscriber's plan: concurrency limit, quota (the request that
   crosses the quota passes), and at exhaustion the plan's rule (cut-off,
   throttle on a slow lane or a cheaper model, pay-as-you-go, top-up);
3. starts the admitted request on a free slot of its model's pool or queues it;
4. lets a request leave (ABANDONED) when its first token would come after its user's
   patience: at once if its prefill alone outlasts it, else when its turn in the queue comes
   (it never holds a slot, so nobody else's wait changes; its quota charge is given back).

This is an exact non-preemptive priority M/G/c event simulation per pool
(arrivals and completions processed in time order); it is written as a numba
kernel because a Python event per request costs ~9 us in SimPy (see
``docs/model.md``), and quota crossing, throttle gaps and queues are
sequential per request. Everything around it (demand, money, churn) is numpy.

A slot (``serving: slots``) is one continuous-batching lane of a replica: a request holds
it for ``uncached_input * occ_in + output * occ_out`` seconds, which gives each replica its
catalog prefill and decode throughput (see :mod:`sim.world.build`). A pool declared
``serving: batched`` is instead replicas whose step time grows with the batch and its
contexts, with a KV-cache budget and a router (:mod:`sim.engine.batching`); step 3 then
routes the request to a replica and queues it there.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from sim.engine import event_heap as events
from sim.engine.abandonment import BILLED_WHOLE, CROSSED, abandon
from sim.engine.batching import (
    E_KV,
    E_REP,
    P_BATCHED,
    P_DACT,
    P_DISAGG,
    P_KV,
    P_MAXB,
    advance_pool,
    arrive,
    bring_replica,
    copy_entry,
    end_day,
    load_ghosts,
)
from sim.engine.compiled import no_refcount
from sim.engine.day_buffers import DayBuffers
from sim.engine.outcomes import (
    ABANDONED,
    DOWNGRADED,
    REFUSED_CONCURRENCY,
    REFUSED_NO_CAPACITY,
    REFUSED_QUOTA,
    REFUSED_THROTTLE,
    REFUSED_WINDOW,
    SERVED,
    THROTTLED,
)
from sim.engine.windows import (
    W_ACTIVE,
    W_DEFERS,
    W_GAP,
    W_MAX_DEFERS,
    W_MAX_WAIT,
    W_N,
    W_RULE,
    W_T0,
    W_U_WAIT,
    W_WAIT_SHARE,
    W_WAITS,
    W_WREQ,
    W_WTOK,
    peak_weight,
    window_charge,
    window_full,
)
from sim.units import SECONDS_PER_DAY
from sim.world.rules import (
    NO_LIMIT,
    RULE_CUTOFF,
    RULE_PAYG,
    RULE_THROTTLE_DOWNGRADE,
    RULE_THROTTLE_SLOW,
    RULE_TOPUP,
)
from sim.world.windows import LIMIT_CUTOFF, LIMIT_MONTHLY, LIMIT_WAIT


class ClusterState:
    """Busy slots carried from one day to the next: per pool, a heap of (end time, subscriber)."""

    def __init__(self, max_slots: NDArray[np.int64]):
        self.offset = np.zeros(len(max_slots), dtype=np.int64)
        self.offset[1:] = np.cumsum(max_slots)[:-1]
        total = int(max_slots.sum())
        self.heap_t = np.zeros(max(total, 1), dtype=np.float64)
        self.heap_s = np.zeros(max(total, 1), dtype=np.int64)
        self.busy = np.zeros(len(max_slots), dtype=np.int64)


@nb.njit(cache=True, inline="always")
def _heap_push(ht, hs, off, n, t, s):
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if ht[off + parent] <= t:
            break
        ht[off + i] = ht[off + parent]
        hs[off + i] = hs[off + parent]
        i = parent
    ht[off + i] = t
    hs[off + i] = s


@nb.njit(cache=True, inline="always")
def _heap_pop(ht, hs, off, n):
    """Remove the root of a heap of size n (n >= 1); the caller reads the root first."""
    n -= 1
    t = ht[off + n]
    s = hs[off + n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and ht[off + c + 1] < ht[off + c]:
            c += 1
        if ht[off + c] >= t:
            break
        ht[off + i] = ht[off + c]
        hs[off + i] = hs[off + c]
        i = c
    ht[off + i] = t
    hs[off + i] = s


@no_refcount
def _advance(pl, until, q):
    """Retire pool pl's slots that end at or before ``until``, starting queued work on them.

    ``q`` is serve_day's tuple of the pools' heaps and queues, the per-request arrays and the
    subscriber state this step reads or updates (unpacked below, in that order).

    In-flight counts are kept only when some plan has a concurrency limit (``limited``). A
    queued request whose ``deadline`` (the latest start that gives its first token within the
    user's patience) has passed when a slot frees leaves instead (ABANDONED, see
    :func:`sim.engine.abandonment.abandon`). Leaving when its turn comes rather than at the
    deadline changes nobody's wait, since it never holds a slot (FIFO within a priority).
    """
    ht, hs, off, busy, slots, qhead, qtail, qnext, n_prio, sub, occ, start, deadline, acct = q
    inflight, limited = acct[8], acct[9]

    o = off[pl]
    while busy[pl] > 0 and ht[o] <= until:
        tend = ht[o]
        if limited:
            inflight[hs[o]] -= 1
        _heap_pop(ht, hs, o, busy[pl])
        busy[pl] -= 1
        # freed slot(s): start the highest-priority queued requests while capacity allows
        while busy[pl] < slots[pl]:
            j = -1
            for k in range(n_prio):
                q = pl * n_prio + k
                if qhead[q] >= 0:
                    j = qhead[q]
                    qhead[q] = qnext[j]
                    if qhead[q] < 0:
                        qtail[q] = -1
                    break
            if j < 0:
                break
            if tend > deadline[j]:
                abandon(j, acct)
                continue
            start[j] = tend
            _heap_push(ht, hs, o, busy[pl], tend + occ[j], sub[j])
            busy[pl] += 1


@nb.njit(cache=True)
def serve_day(  # noqa: C901 - a compiled kernel: one pass over the day's requests
    # requests of the day, sorted by t
    t,
    sub,
    pool_req,
    charge,
    uncached,
    output,
    u_buy,
    patience,
    n_arrivals,
    # subscriber state (persistent across days, reset at renewal)
    sub_plan,
    sub_seg,
    usage,
    quota_eff,
    last_adm,
    inflight,
    exhausted,
    declined,
    packs,
    # plan parameters
    rule,
    gap,
    deprioritise,
    down_pool,
    conc,
    prio,
    pack_units,
    auto_buy,
    buy_prob,
    max_packs,
    # segment retry policies (sim.world.arrays.Segments.retry_*)
    retry_max,
    retry_backoff,
    retry_factor,
    retry_backoff_max,
    # pool parameters and state
    occ_in,
    occ_out,
    prefill_s,
    slots,
    ht,
    hs,
    off,
    busy,
    n_prio,
    # batched pools (sim.engine.batching.BatchState): parameters, replicas, entries, carry
    bpp,
    brs,
    bheap,
    bhand,
    bent,
    bcarry,
    bcount,
    day_end,
    # usage windows and their per-request arrays (sim.engine.windows.WindowState.kernel_args)
    windows,
    # outputs
    outcome,
    pool_used,
    occ,
    start,
    first,
    end,
    over,
    bought,
    crossed,
    attempt,
    origin,
    retry_rows,
):
    """Admit and queue one day's requests; fill the per-request outputs in place.

    Returns nothing; ``pool_used`` holds the pool each request was offered to (the
    requested pool, or the downgrade pool), ``occ`` the slot-seconds it asks of that pool
    (0 when refused before reaching it), ``start`` each admitted request's service start (s),
    ``over`` the quota units it added beyond the quota, ``bought`` the packs
    bought at its admission, ``crossed`` 1 where it crossed the quota. Requests served by a
    batched pool also get ``first`` (first token) and ``end`` (last token) times (s).

    Batched pools (:class:`sim.engine.batching.BatchState`): ``bpp`` their parameters,
    ``brs`` and ``bheap`` their replicas, ``bhand`` the KV transfers of disaggregated pools
    under way, ``bent`` the day's entries (its requests, then the
    requests carried from yesterday), ``bcarry`` and ``bcount`` the rows the day's end fills
    with the requests it carries; ``day_end`` is the day's end (s).

    Retries: the first ``n_arrivals`` rows are the day's requests (sorted by ``t``); the rows
    after them are room for retries, which the kernel fills (``t``, ``sub``, ``pool_req``,
    ``charge``, ``uncached``, ``output``, ``u_buy``, ``patience`` copied from the failed
    attempt; ``attempt`` its number, ``origin`` the row of the day's request it retries).
    ``retry_rows`` gets [rows used, retries not made because they would come after the day's
    end]. A queued request whose client retries is also watched at its patience deadline, so
    that its retry leaves when its user gives up, not when its turn comes.

    Python callers pass every argument by keyword (tests/unit/test_kernel_calls.py checks
    the names): two same-dtype arrays swapped by position would run silently.
    """
    n = t.shape[0]
    n_pool = slots.shape[0]
    qhead = np.full(n_pool * n_prio, -1, dtype=np.int64)
    qtail = np.full(n_pool * n_prio, -1, dtype=np.int64)
    qnext = np.full(max(n, 1), -1, dtype=np.int64)
    n_all = max(n, bent.shape[0])
    deadline = np.full(max(n_all, 1), np.inf)
    lowest = n_prio - 1
    limited = False
    for p in range(conc.shape[0]):
        if conc[p] < NO_LIMIT:
            limited = True
    batched = bpp[:, P_BATCHED] > 0.0
    any_batched = False
    for pl in range(n_pool):
        if batched[pl]:
            any_batched = True
    # what an abandoned request gives back (sim.engine.abandonment)
    acct = (sub, outcome, usage, charge, quota_eff, exhausted, crossed, over, inflight, limited)
    # everything _advance reads or updates, in its order (one tuple instead of 23 arguments)
    queues = (
        ht,
        hs,
        off,
        busy,
        slots,
        qhead,
        qtail,
        qnext,
        n_prio,
        sub,
        occ,
        start,
        deadline,
        acct,
    )
    # retries: heaps of (time, row) of the patience deadlines watched and the retries due;
    # requests deferred at a usage window wait in the same heap for its roll (each row at
    # most once at a time)
    retrying = n > n_arrivals
    deferring = windows[W_ACTIVE] and windows[W_WAITS]
    watch = np.zeros((n + 1 if retrying else 1, 2))
    due = np.zeros((n + 1 if deferring else n - n_arrivals + 1, 2))
    retry_rows[0] = n_arrivals
    retry_rows[1] = 0
    retry = (
        t, sub, pool_req, charge, uncached, output, u_buy, patience, sub_seg, retry_max,
        retry_backoff, retry_factor, retry_backoff_max, attempt, origin, bent, any_batched,
        due, retry_rows, day_end, windows, sub_plan,
    )  # fmt: skip
    has_windows = windows[W_ACTIVE]
    win_n = windows[W_N]  # (taken out of the tuple once: each take costs reference counting)
    # the batched pools' replicas start the day with the requests yesterday carried
    if any_batched:
        load_ghosts(day_end - SECONDS_PER_DAY, bpp, brs, bheap, bhand, bent, n)
    ia = 0
    while True:
        # next event: a watched deadline, then a retry, then the next arrival (ties that way)
        ta = t[ia] if ia < n_arrivals else np.inf
        if retrying or deferring:
            td = events.top_time(watch, np.inf)
            tr = events.top_time(due, np.inf)
            if td <= ta and td <= tr and td < np.inf:
                j = int(watch[1, 1])
                events.pop(watch)
                pl = pool_used[j]
                if batched[pl]:
                    bring_replica(
                        int(bent[j, E_REP]), td, n_prio, bpp, brs, bheap, bhand, bent, start,
                        first, end, deadline, n, acct,
                    )  # fmt: skip
                else:
                    _advance(pl, td, queues)
                if not start[j] <= td:  # not started in time: its user leaves at its patience
                    abandon(j, acct)  # now: its quota and in-flight place free for the retry
                    _retry(j, t[j] + patience[j], retry)
                continue
            if tr <= ta and tr < np.inf:
                i = int(due[1, 1])
                events.pop(due)
            elif ia < n_arrivals:
                i = ia
                ia += 1
            else:
                break
        elif ia < n_arrivals:
            i = ia
            ia += 1
        else:
            break
        now = t[i]
        s = sub[i]
        p = sub_plan[s]
        if limited:
            # completions in every pool release the in-flight slots concurrency limits count
            for pl in range(n_pool):
                if batched[pl]:
                    advance_pool(
                        pl, now, n_prio, bpp, brs, bheap, bhand, bent, start, first, end,
                        deadline, n, acct,
                    )  # fmt: skip
                else:
                    _advance(pl, now, queues)
        else:  # (a batched pool's replicas are brought up to date when a request arrives)
            if not batched[pool_req[i]]:
                _advance(pool_req[i], now, queues)
            if down_pool[p] >= 0 and not batched[down_pool[p]]:
                _advance(down_pool[p], now, queues)
        pool_used[i] = pool_req[i]  # a refused request is still counted against its pool
        if limited and inflight[s] >= conc[p]:
            outcome[i] = REFUSED_CONCURRENCY
            if retrying:
                _retry(i, now, retry)
            continue
        u = usage[s]
        c = charge[i]
        pl = pool_req[i]
        pr = prio[p]
        out = SERVED
        counted = has_windows and win_n[p] > 0  # counted in the plan's windows
        window_throttled = False
        window_spent = False  # a full window whose rule is the plan's monthly one
        if counted:
            bind, roll = window_full(s, p, sub_seg[s], now, windows)
            if bind >= 0:
                wrule = windows[W_RULE][p, bind]
                if wrule == LIMIT_WAIT:
                    if not _wait(i, roll, retry):  # (a waiting request comes back at roll)
                        outcome[i] = REFUSED_WINDOW
                    continue
                if wrule == LIMIT_CUTOFF:
                    outcome[i] = REFUSED_WINDOW
                    continue
                counted = False  # served beyond the window: not counted in it
                if wrule == LIMIT_MONTHLY:  # as if the month's quota had run out (below)
                    window_spent = True
                # throttle: the slow lane, beyond the window (not counted in it)
                elif now - last_adm[s] < windows[W_GAP][p, bind]:
                    outcome[i] = REFUSED_THROTTLE
                    if retrying:
                        _retry(i, now, retry)
                    continue
                else:
                    out = THROTTLED
                    pr = lowest
                    window_throttled = True
        if u >= quota_eff[s] or window_spent:
            r = rule[p]
            if r == RULE_TOPUP and not window_spent:  # (a pack adds to the month, not a window)
                if auto_buy[p] or (declined[s] == 0 and u_buy[i] < buy_prob[p]):
                    while u >= quota_eff[s] and packs[s] < max_packs[p]:
                        quota_eff[s] += pack_units[p]
                        packs[s] += 1
                        bought[i] += 1
                elif declined[s] == 0:
                    declined[s] = 1
            if u >= quota_eff[s] or window_spent:
                if r == RULE_CUTOFF or r == RULE_TOPUP:
                    outcome[i] = REFUSED_WINDOW if window_spent else REFUSED_QUOTA
                    continue
                if r == RULE_THROTTLE_SLOW or r == RULE_THROTTLE_DOWNGRADE:
                    if now - last_adm[s] < gap[p]:
                        outcome[i] = REFUSED_THROTTLE
                        if retrying:
                            _retry(i, now, retry)
                        continue
                    if r == RULE_THROTTLE_DOWNGRADE:
                        pl = down_pool[p]
                        out = DOWNGRADED
                    else:
                        out = THROTTLED
                    if deprioritise[p]:
                        pr = lowest
        pool_used[i] = pl
        occ[i] = uncached[i] * occ_in[pl] + output[i] * occ_out[pl]
        deadline[i] = now + patience[i] - uncached[i] * prefill_s[pl]
        no_replica = batched[pl] and (
            slots[pl] < bpp[pl, P_MAXB]
            or bent[i, E_KV] > bpp[pl, P_KV]
            or (bpp[pl, P_DISAGG] > 0.0 and bpp[pl, P_DACT] < 1.0)
        )
        if slots[pl] == 0 or no_replica:
            outcome[i] = REFUSED_NO_CAPACITY  # offered work the pool could not take
            continue
        if deadline[i] < now:  # its prefill alone outlasts the user's patience
            outcome[i] = ABANDONED
            if retrying:
                _retry(i, now + patience[i], retry)
            continue
        q = quota_eff[s]
        if window_spent and rule[p] == RULE_PAYG:  # billed whole, beyond its window and month
            crossed[i] = BILLED_WHOLE
            over[i] = c
        else:
            if u < q <= u + c:
                crossed[i] = CROSSED
                exhausted[s] = 1
            over[i] = max(0.0, u + c - q) - max(0.0, u - q)
            usage[s] = u + c
        if counted:
            window_charge(s, p, now, i, windows)
        if gap[p] > 0 or window_throttled:
            last_adm[s] = now
        if limited:
            inflight[s] += 1
        outcome[i] = out
        if batched[pl]:
            arrive(
                i, pl, pr, now, slots[pl] // int(bpp[pl, P_MAXB]), n_prio, bpp, brs, bheap, bhand,
                bent, start, first, end, deadline, n, acct,
            )  # fmt: skip
        elif busy[pl] < slots[pl]:
            start[i] = now
            _heap_push(ht, hs, off[pl], busy[pl], now + occ[i], s)
            busy[pl] += 1
        else:
            qi = pl * n_prio + pr
            if qtail[qi] >= 0:
                qnext[qtail[qi]] = i
            else:
                qhead[qi] = i
            qtail[qi] = i
        # a queued request whose client would retry: watch its deadline (if a retry could
        # still come today); one that left the queue at once is caught there too
        if retrying and not start[i] <= now:
            g = sub_seg[s]
            if (
                attempt[i] < retry_max[g]
                and now + patience[i] + _delay(attempt[i], g, retry) < day_end
            ):
                events.push(watch, deadline[i], i)
    # end of day: serve whatever is still queued (past midnight if need be); busy slots carry
    for pl in range(n_pool):
        while True:
            empty = True
            for k in range(n_prio):
                if qhead[pl * n_prio + k] >= 0:
                    empty = False
                    break
            if empty or busy[pl] == 0:
                break
            _advance(pl, ht[off[pl]], queues)
    if any_batched:
        end_day(
            day_end, n_prio, bpp, brs, bheap, bhand, bent, start, first, end, deadline, n, acct,
            bcarry, bcount,
        )  # fmt: skip


@nb.njit(cache=True, inline="always")
def _delay(k, g, retry):
    """Back-off (s) before retry k + 1 of a segment-g client: doubling, capped."""
    backoff, factor, cap = retry[10], retry[11], retry[12]
    return min(backoff[g] * factor[g] ** k, cap[g])


@nb.njit(cache=True)
def _retry(j, failed_at, retry):
    """Row j failed at ``failed_at`` (s): queue its retry, if its client makes one today.

    ``retry`` is serve_day's tuple of the arrays a retry copies or fills (see serve_day).
    """
    sub, sub_seg, retry_max, attempt, rows, day_end = (
        retry[1],
        retry[8],
        retry[9],
        retry[13],
        retry[18],
        retry[19],
    )
    g = sub_seg[sub[j]]
    k = attempt[j]
    if k >= retry_max[g]:
        return
    when = failed_at + _delay(k, g, retry)
    if when >= day_end or rows[0] >= sub.shape[0]:
        rows[1] += 1
        return
    row = _copy_row(j, when, retry)
    attempt[row] = k + 1


@nb.njit(cache=True)
def _wait(j, roll, retry):
    """Row j found a ``wait`` window full until ``roll`` (s): does its user wait for it.

    Yes if the user is one who waits (the segment's ``wait_share``), the roll
    comes within the segment's longest wait from the request's first try and before the day's
    end, and the request has not been deferred ``WINDOW_MAX_DEFERRALS`` times. Then the same
    row comes back at ``roll`` (its time moves there, and its quota charges to the peak weight
    of that hour); no: the user gives it up.
    """
    t, sub, charge, due, day_end, win = (
        retry[0],
        retry[1],
        retry[3],
        retry[17],
        retry[19],
        retry[20],
    )
    g = retry[8][sub[j]]
    wait_share, max_wait_s, t0 = win[W_WAIT_SHARE], win[W_MAX_WAIT], win[W_T0]
    u_wait, defers, max_defers = win[W_U_WAIT], win[W_DEFERS], win[W_MAX_DEFERS]
    if u_wait[j] >= wait_share[g] or defers[j] >= max_defers:
        return False
    if roll - t0[j] > max_wait_s[g] or roll >= day_end:
        return False
    defers[j] += 1
    p = retry[21][sub[j]]
    scale = peak_weight(p, roll, win) / peak_weight(p, t[j], win)  # counted at its new hour
    if scale != 1.0:
        charge[j] *= scale
        win[W_WREQ][j] *= scale
        win[W_WTOK][j] *= scale
    t[j] = roll
    events.push(due, roll, j)
    return True


@nb.njit(cache=True)
def _copy_row(j, when, retry):
    """Copy row j into the next free row as a request sent at ``when`` (s); queue it."""
    (
        t, sub, pool_req, charge, uncached, output, u_buy, patience, _seg, _rmax,
        _backoff, _factor, _cap, _attempt, origin, bent, any_batched, due, rows, _end, win,
        _plan,
    ) = retry  # fmt: skip
    row = rows[0]
    rows[0] = row + 1
    t[row] = when
    sub[row] = sub[j]
    pool_req[row] = pool_req[j]
    charge[row] = charge[j]
    uncached[row] = uncached[j]
    output[row] = output[j]
    u_buy[row] = u_buy[j]
    patience[row] = patience[j]
    origin[row] = origin[j]
    if win[W_ACTIVE]:
        for a in (win[W_WREQ], win[W_WTOK], win[W_U_WAIT], win[W_T0]):
            a[row] = a[j]
        win[W_DEFERS][row] = win[W_DEFERS][j]
    if any_batched:
        copy_entry(bent, j, row)
    events.push(due, when, row)
    return row


def new_request_outputs(
    n: int, batched: bool = True, retrying: bool = True, buffers: DayBuffers | None = None
) -> dict[str, NDArray]:
    """Allocate the per-request output arrays serve_day fills.

    ``first`` and ``end`` are written only for batched pools, ``attempt`` and ``origin`` only
    when some request may retry: one-element placeholders without (attempt 0: a first try).
    With ``buffers`` the arrays are views of buffers kept from day to day (valid for the day).
    """
    m = n if batched else 1
    r = n if retrying else 1
    b = buffers if buffers is not None else DayBuffers()
    return {
        "outcome": b.filled("outcome", n, np.int8, 0),
        "pool_used": b.filled("pool_used", n, np.int64, -1),
        "occ": b.filled("occ", n, np.float64, 0.0),
        "start": b.filled("start", n, np.float64, np.nan),
        "first": b.filled("first", m, np.float64, np.nan),
        "end": b.filled("end", m, np.float64, np.nan),
        "over": b.filled("over", n, np.float64, 0.0),
        "bought": b.filled("bought", n, np.int64, 0),
        "crossed": b.filled("crossed", n, np.int8, 0),
        "attempt": b.filled("attempt", r, np.int64, 0),
        "origin": b.counting("origin", r),
        "retry_rows": np.array([n, 0], dtype=np.int64),
    }
