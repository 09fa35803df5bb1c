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

from sim.engine.abandonment import abandon
from sim.engine.batching import (
    E_KV,
    P_BATCHED,
    P_KV,
    P_MAXB,
    advance_pool,
    arrive,
    end_day,
    load_ghosts,
)
from sim.engine.compiled import no_refcount
from sim.engine.outcomes import (
    ABANDONED,
    DOWNGRADED,
    REFUSED_CONCURRENCY,
    REFUSED_NO_CAPACITY,
    REFUSED_QUOTA,
    REFUSED_THROTTLE,
    SERVED,
    THROTTLED,
)
from sim.units import SECONDS_PER_DAY
from sim.world.rules import (
    NO_LIMIT,
    RULE_CUTOFF,
    RULE_THROTTLE_DOWNGRADE,
    RULE_THROTTLE_SLOW,
    RULE_TOPUP,
)


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
    # subscriber state (persistent across days, reset at renewal)
    sub_plan,
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
    bent,
    bcarry,
    bcount,
    day_end,
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
):
    """Admit and queue one day's requests; fill the per-request outputs in place.

    Returns nothing; ``pool_used`` holds the pool each request was offered to (the
    requested pool, or the downgrade pool), ``occ`` the slot-seconds it asks of that pool
    (0 when refused before reaching it), ``start`` each admitted request's service start (s),
    ``over`` the quota units it added beyond the quota, ``bought`` the packs
    bought at its admission, ``crossed`` 1 where it crossed the quota. Requests served by a
    batched pool also get ``first`` (first token) and ``end`` (last token) times (s).

    Batched pools (:class:`sim.engine.batching.BatchState`): ``bpp`` their parameters,
    ``brs`` and ``bheap`` their replicas, ``bent`` the day's entries (its requests, then the
    requests carried from yesterday), ``bcarry`` and ``bcount`` the rows the day's end fills
    with the requests it carries; ``day_end`` is the day's end (s).

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
    # the batched pools' replicas start the day with the requests yesterday carried
    if any_batched:
        load_ghosts(day_end - SECONDS_PER_DAY, bpp, brs, bheap, bent, n)
    for i in range(n):
        now = t[i]
        s = sub[i]
        p = sub_plan[s]
        if limited:
            # completions in every pool release the in-flight slots concurrency limits count
            for pl in range(n_pool):
                if batched[pl]:
                    advance_pool(
                        pl, now, n_prio, bpp, brs, bheap, bent, start, first, end, deadline, n,
                        acct,
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
            continue
        u = usage[s]
        c = charge[i]
        pl = pool_req[i]
        pr = prio[p]
        out = SERVED
        if u >= quota_eff[s]:
            r = rule[p]
            if r == RULE_TOPUP:
                if auto_buy[p] or (declined[s] == 0 and u_buy[i] < buy_prob[p]):
                    while u >= quota_eff[s] and packs[s] < max_packs[p]:
                        quota_eff[s] += pack_units[p]
                        packs[s] += 1
                        bought[i] += 1
                elif declined[s] == 0:
                    declined[s] = 1
            if u >= quota_eff[s]:
                if r == RULE_CUTOFF or r == RULE_TOPUP:
                    outcome[i] = REFUSED_QUOTA
                    continue
                if r == RULE_THROTTLE_SLOW or r == RULE_THROTTLE_DOWNGRADE:
                    if now - last_adm[s] < gap[p]:
                        outcome[i] = REFUSED_THROTTLE
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
        no_replica = batched[pl] and (slots[pl] < bpp[pl, P_MAXB] or bent[i, E_KV] > bpp[pl, P_KV])
        if slots[pl] == 0 or no_replica:
            outcome[i] = REFUSED_NO_CAPACITY  # offered work the pool could not take
            continue
        if deadline[i] < now:  # its prefill alone outlasts the user's patience
            outcome[i] = ABANDONED
            continue
        q = quota_eff[s]
        if u < q <= u + c:
            crossed[i] = 1
            exhausted[s] = 1
        over[i] = max(0.0, u + c - q) - max(0.0, u - q)
        usage[s] = u + c
        if gap[p] > 0:
            last_adm[s] = now
        if limited:
            inflight[s] += 1
        outcome[i] = out
        if batched[pl]:
            arrive(
                i, pl, pr, now, slots[pl] // int(bpp[pl, P_MAXB]), n_prio, bpp, brs, bheap, bent,
                start, first, end, deadline, n, acct,
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
            day_end, n_prio, bpp, brs, bheap, bent, start, first, end, deadline, n, acct, bcarry,
            bcount,
        )  # fmt: skip


def new_request_outputs(n: int, batched: bool = True) -> dict[str, NDArray]:
    """Allocate the per-request output arrays serve_day fills.

    ``first`` and ``end`` are written only for batched pools: one-element placeholders without.
    """
    m = n if batched else 1
    return {
        "outcome": np.zeros(n, dtype=np.int8),
        "pool_used": np.full(n, -1, dtype=np.int64),
        "occ": np.zeros(n, dtype=np.float64),
        "start": np.full(n, np.nan, dtype=np.float64),
        "first": np.full(m, np.nan, dtype=np.float64),
        "end": np.full(m, np.nan, dtype=np.float64),
        "over": np.zeros(n, dtype=np.float64),
        "bought": np.zeros(n, dtype=np.int64),
        "crossed": np.zeros(n, dtype=np.int8),
    }
