"""Batched serving: replicas that run continuous batching, with a KV-cache budget and a router.

A pool declared ``serving: batched`` is a set of replicas. Each replica runs iterations
(steps); a step takes

    t_step = b0 + b1 * c + b2 * n + b3 * K

seconds, where ``c`` is the prefill tokens in the step (chunked prefill: up to the chunk size,
first come first served), ``n`` the requests decoding (each produces one token a step) and
``K`` the context tokens those requests hold (input + tokens generated so far). So a request's
time per output token rises as the batch fills and its contexts grow, and a replica's output
throughput saturates at ``n / t_step``.

A request routed to a replica waits in the replica's queue (strict priority, FIFO within a
priority) until the batch has room for it: fewer than ``max_batch`` requests running and its
whole context (input + output tokens) free in the replica's KV budget. It reserves that context
when it joins the batch and holds it until its last token (reservation, so a running request is
never preempted; a request larger than the whole budget is refused). It then prefills its
uncached input (at least one token) in chunked steps; the step that finishes its prefill gives
its first token (TTFT), and it decodes its other ``output - 1`` tokens one per step.

The model is exact for these rules, not a fluid approximation: between events (a prefill or
decode completion, a new admission, an arrival) every step has the same composition, and the
context grows by ``n`` tokens a step, so ``k`` steps last ``k * A + b3 * n * k * (k - 1) / 2``
seconds (``A`` the first step's time). A replica jumps over those steps in O(1); a request
costs O(log n) (one heap push and pop on its replica's decode heap), whatever its length.
Arrivals join at the next step boundary, as in an iteration-level scheduler.

Routing: ``least_loaded`` sends a request to the active replica holding the fewest KV tokens
(running plus queued), ``round_robin`` cycles through them. The slot model (``serving:
slots``) instead pools every slot behind one queue: it never leaves a request queued at one
replica while another is idle, so it understates waiting when routing is unbalanced.

Days: requests still running or queued when the day ends are carried into the next day's
replicas as ghosts with their remaining work, so the next day's arrivals find the load
they would; the carried requests' own latencies are completed at the end of their day as if
no later request came (a drain at the overnight trough).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from sim.engine import event_heap as events
from sim.engine.abandonment import abandon
from sim.engine.compiled import no_refcount
from sim.world.rules import ROUTER_ROUND_ROBIN

# columns of the replica state ``rs`` (float64, one row a replica; list heads as whole numbers)
NOW = 0  # the replica's clock: its next step boundary while it works (s)
VSTEP = 1  # steps run since the day's reset
NDEC = 2  # requests decoding
SCTX = 3  # sum over decoding requests of (context at step 0): context = SCTX + NDEC * VSTEP
KV = 4  # KV tokens reserved by requests in the batch
RUN = 5  # requests in the batch (prefilling or decoding)
PRE_TOT = 6  # prefill tokens ever queued in the batch since the reset
PRE_DONE = 7  # prefill tokens processed since the reset
WAIT_KV = 8  # KV tokens asked by the requests queued at the replica (the router's load)
NEXT = 9  # time of the replica's next prefill or decode completion (inf if idle)
HEAP_OFF = 10  # first row of its decode heap
POOL = 11  # its pool
CARRY_NOW = 12  # its clock when the day ended (where the next day resumes it)
ROLE = 13  # ROLE_MIXED, or ROLE_PREFILL / ROLE_DECODE in a disaggregated pool
PF_HEAD = 14  # prefill FIFO: head, then tail (entry index, -1 if empty)
WQ0 = 16  # queue of priority k: head at WQ0 + 2k, tail at WQ0 + 2k + 1
ROLE_MIXED = 0  # prefills and decodes in the same steps
ROLE_PREFILL = 1  # prefills only; hands each request's KV cache to a decode replica
ROLE_DECODE = 2  # decodes only the requests handed to it
# columns of the pool parameters ``pp`` (float64, one row a pool)
P_BATCHED = 0  # 1.0 when the pool runs serving: batched
P_B0 = 1  # base step time (s)
P_B1 = 2  # step time per prefill token (s)
P_B2 = 3  # step time per decoding request (s)
P_B3 = 4  # step time per context token held (s)
P_CHUNK = 5  # prefill tokens a step carries
P_KV = 6  # KV budget of a replica (tokens)
P_MAXB = 7  # requests a replica runs at once
P_ROUTER = 8  # sim.world.rules router code
P_REP0 = 9  # its first replica's row in rs
P_REPS = 10  # replicas allocated to it (the most it has in any month)
P_RR = 11  # round-robin counter
P_DISAGG = 12  # 1.0 when the pool prefills and decodes on separate replicas
P_DREP0 = 13  # its first decode replica's row in rs
P_DREPS = 14  # decode replicas allocated to it
P_DACT = 15  # decode replicas working this month (set at each month start)
P_DRR = 16  # round-robin counter of its decode replicas
P_XFER_TOK = 17  # KV transfer time per context token (s)
P_XFER_LAT = 18  # fixed time of one KV transfer (s)
N_PP = 19
# columns of the entries ``ent`` (float64, one row a request of the day or a carried ghost)
E_PRE = 0  # prefill tokens (decode ghosts: 0)
E_OUT = 1  # output tokens (decode ghosts: steps left)
E_IN = 2  # input tokens (decode ghosts: context held at their next step)
E_KV = 3  # KV tokens reserved in the batch
E_PEND = 4  # cumulative prefill position of its last token on its replica
E_SD = 5  # its share of SCTX while decoding
E_SUB = 6  # subscriber
E_PRIO = 7  # queue rank
E_NEXT = 8  # list link (queue, then prefill FIFO), -1 at the end
E_PHASE = 9  # ghosts: PH_WAITING, PH_PREFILL or PH_DECODE
E_REP = 10  # ghosts: replica
E_SRC = 11  # ghosts: the entry it was on the day it was carried from
E_DSTART = 12  # disaggregated pools: when it joined a decode replica's batch (s)
E_HAND = 13  # disaggregated pools, carried in transfer: when its KV reaches decode (s)
E_POOL = 14  # its pool (where a disaggregated pool's handoff goes)
N_ENT = 15
PH_WAITING = 0
PH_PREFILL = 1
PH_DECODE = 2
PH_TRANSFER = 3  # its KV cache on its way from a prefill to a decode replica

NEVER = 1 << 62
"""Step count standing for 'no such event'."""

TOKEN_EPS = 1e-6
"""Prefill tokens left below this count as done (token counts are floats)."""

TIME_EPS = 1e-6
"""A step that ends this close after a time counts as ended by it (s): far below any step
time, and above the rounding of clocks that reach 3e7 s in a year-long run."""

# The kernels below take their arrays as plain arguments, never unpacked from tuples: numba
# reference-counts every array taken out of a tuple (two atomic operations each), which cost
# more than the whole batching model did (measured with perf, issue 11).


class BatchState:
    """Replicas of the batched pools, their parameters and the requests carried between days.

    ``replicas[pl]`` is the most replicas pool ``pl`` has in any month (0 for slot pools;
    a disaggregated pool's prefill replicas), ``decode_replicas[pl]`` the most decode
    replicas (disaggregated pools only); the other arrays are the pools' parameters as in
    :class:`sim.world.arrays.Pools` (``step``: base, prefill, per-request and per-context
    step times, prefill chunk and KV budget; ``transfer``: KV transfer time per token and
    fixed; ``batched`` and ``disaggregated``: which pools are).
    """

    def __init__(
        self,
        replicas: NDArray[np.int64],
        decode_replicas: NDArray[np.int64],
        max_batch: NDArray[np.int64],
        n_prio: int,
        step: tuple[NDArray[np.float64], ...],
        transfer: tuple[NDArray[np.float64], NDArray[np.float64]],
        router: NDArray[np.int8],
        batched: NDArray[np.bool_],
        disaggregated: NDArray[np.bool_],
    ):
        n_pool = len(replicas)
        b0, b1, b2, b3, chunk, kv = step
        decode_replicas = np.where(disaggregated, decode_replicas, 0)
        rep0 = np.zeros(n_pool, dtype=np.int64)
        rep0[1:] = np.cumsum(replicas)[:-1]
        drep0 = int(np.sum(replicas)) + np.concatenate(([0], np.cumsum(decode_replicas)[:-1]))
        columns = {
            P_BATCHED: batched,
            P_B0: b0,
            P_B1: b1,
            P_B2: b2,
            P_B3: b3,
            P_CHUNK: chunk,
            P_KV: kv,
            P_MAXB: max_batch,
            P_ROUTER: router,
            P_REP0: rep0,
            P_REPS: replicas,
            P_RR: np.zeros(n_pool),
            P_DISAGG: disaggregated,
            P_DREP0: drep0,
            P_DREPS: decode_replicas,
            P_DACT: decode_replicas,
            P_DRR: np.zeros(n_pool),
            P_XFER_TOK: transfer[0],
            P_XFER_LAT: transfer[1],
        }
        self.pp = np.ascontiguousarray(
            np.column_stack([np.asarray(columns[c], np.float64) for c in range(N_PP)])
        )
        pool_of = np.concatenate(
            (np.repeat(np.arange(n_pool), replicas), np.repeat(np.arange(n_pool), decode_replicas))
        )
        role = np.concatenate(
            (
                np.repeat(np.where(disaggregated, ROLE_PREFILL, ROLE_MIXED), replicas),
                np.full(int(np.sum(decode_replicas)), ROLE_DECODE),
            )
        )
        n_rep = len(pool_of)
        self.active = n_rep > 0
        self.disaggregated = bool(np.any(disaggregated))
        per = np.asarray(max_batch)[pool_of]
        self.heap = np.zeros((max(int(per.sum()), 1), 2), dtype=np.int64)  # (target step, entry)
        self.rs = np.zeros((max(n_rep, 1), WQ0 + 2 * n_prio))
        if n_rep:
            self.rs[1:n_rep, HEAP_OFF] = np.cumsum(per)[:-1]
            self.rs[:n_rep, POOL] = pool_of
            self.rs[:n_rep, ROLE] = role
        self.ghosts = np.zeros((0, N_ENT))
        self.count = np.zeros(1, dtype=np.int64)

    def arena(
        self,
        uncached: NDArray[np.float64],
        inp: NDArray[np.float64],
        output: NDArray[np.float64],
        sub: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """The day's entries: its requests, then yesterday's ghosts.

        Without batched pools, a one-row placeholder the kernel never reads.
        """
        if not self.active:
            return np.zeros((1, N_ENT))
        n = len(uncached)
        ent = np.zeros((n + len(self.ghosts), N_ENT))
        ent[:n, E_PRE] = np.maximum(uncached, 1.0)
        ent[:n, E_OUT] = output
        ent[:n, E_IN] = inp
        ent[:n, E_KV] = inp + output
        ent[:n, E_SUB] = sub
        ent[:n, E_DSTART] = np.nan
        ent[:, E_NEXT] = -1.0
        ent[n:] = self.ghosts
        ent[n:, E_NEXT] = -1.0
        return ent

    def set_decode_replicas(self, working: NDArray[np.int64]) -> None:
        """Set each disaggregated pool's working decode replicas for the month."""
        self.pp[:, P_DACT] = np.minimum(working, self.pp[:, P_DREPS])

    def handoffs(self, entries: int) -> NDArray[np.float64]:
        """The day's heap of KV transfers under way: size in row 0, then (arrival s, entry)."""
        return np.zeros((entries + 1 if self.disaggregated else 1, 2))

    def decode_starts(self, ent: NDArray[np.float64], n: int) -> NDArray[np.float64]:
        """When each of the day's n requests joined a decode replica (NaN if it did not)."""
        if not self.disaggregated:
            return np.full(1, np.nan)
        return ent[:n, E_DSTART].copy()

    def carry_buffer(self, entries: int) -> NDArray[np.float64]:
        """Rows the kernel fills with the requests alive at the day's end (at most one each)."""
        return np.zeros((entries if self.active else 1, N_ENT))

    def keep_ghosts(self, carry: NDArray[np.float64], outcome: NDArray[np.int8], abandoned: int):
        """Keep the requests alive at the day's end, less those that left the queue in the drain."""
        rows = carry[: int(self.count[0])]
        src = rows[:, E_SRC].astype(np.int64)
        day = src < len(outcome)
        keep = np.ones(len(rows), dtype=bool)
        keep[day] = outcome[src[day]] != abandoned
        self.ghosts = rows[keep].copy()


# --------------------------------------------------------------------------- step arithmetic


@nb.njit(cache=True, inline="always")
def _steps_time(first, growth, k):
    """Seconds of ``k`` steps whose times are first, first + growth, ... (context grows)."""
    return k * first + growth * k * (k - 1) / 2.0


@nb.njit(cache=True, inline="always")
def _steps_to_cover(first, growth, span):
    """Fewest steps (>= 1) that last at least ``span`` seconds (NEVER if they cannot)."""
    if span <= 0.0:
        return 0
    if not np.isfinite(span) or (first <= 0.0 and growth <= 0.0):
        return NEVER
    if growth <= 0.0:
        x = span / first
    else:
        b = first - growth / 2.0
        x = (-b + np.sqrt(b * b + 2.0 * growth * span)) / growth
    if x >= NEVER:
        return NEVER
    k = max(int(np.ceil(x)), 1)
    while k > 1 and _steps_time(first, growth, k - 1) >= span:
        k -= 1
    while _steps_time(first, growth, k) < span:
        k += 1
    return k


@nb.njit(cache=True, inline="always")
def _composition(r, pp, rs, heap, ent):
    """(first step time, growth per step, prefill tokens a step, steps to the next event)."""
    pl = int(rs[r, POOL])
    n = rs[r, NDEC]
    chunk = pp[pl, P_CHUNK]
    backlog = rs[r, PRE_TOT] - rs[r, PRE_DONE]
    if backlog < TOKEN_EPS:
        backlog = 0.0
    c = min(chunk, backlog)
    b3 = pp[pl, P_B3]
    first = pp[pl, P_B0] + pp[pl, P_B1] * c + pp[pl, P_B2] * n
    first += b3 * (rs[r, SCTX] + n * rs[r, VSTEP])
    growth = b3 * n
    k = NEVER
    if n > 0:
        k = heap[int(rs[r, HEAP_OFF]), 0] - int(rs[r, VSTEP])
    if backlog > 0.0:
        if backlog <= chunk:
            kp = 1
        else:
            left = ent[int(rs[r, PF_HEAD]), E_PEND] - rs[r, PRE_DONE]
            kp = min(max(int(np.ceil((left - TOKEN_EPS) / chunk)), 1), int(backlog // chunk))
        k = min(k, kp)
    return first, growth, c, k


@nb.njit(cache=True, inline="always")
def _set_next(r, pp, rs, heap, ent):
    """Cache the time of replica r's next completion (inf when it has nothing in its batch)."""
    first, growth, _, k = _composition(r, pp, rs, heap, ent)
    rs[r, NEXT] = np.inf if k == NEVER else rs[r, NOW] + _steps_time(first, growth, k)


# --------------------------------------------------------------------------- batch changes


@nb.njit(cache=True, inline="always")
def _link(rs, ent, r, col, j):
    """Append entry j to replica r's list whose head is in column col (tail in col + 1)."""
    tail = int(rs[r, col + 1])
    if tail >= 0:
        ent[tail, E_NEXT] = j
    else:
        rs[r, col] = j
    rs[r, col + 1] = j


@nb.njit(cache=True, inline="always")
def _unlink_head(rs, ent, r, col):
    """Remove and return the head of replica r's list in column col."""
    j = int(rs[r, col])
    rs[r, col] = ent[j, E_NEXT]
    if rs[r, col] < 0:
        rs[r, col + 1] = -1.0
    ent[j, E_NEXT] = -1.0
    return j


@nb.njit(cache=True, inline="always")
def _need(rs, r, ent, j):
    """KV tokens request j reserves on replica r.

    Its input on a prefill-only replica (its KV leaves at the handoff), input + output elsewhere.
    """
    return ent[j, E_IN] if rs[r, ROLE] == ROLE_PREFILL else ent[j, E_KV]


@nb.njit(cache=True, inline="always")
def _release(r, j, rs, ent):
    """Request j leaves replica r's batch: its KV is freed."""
    rs[r, KV] -= _need(rs, r, ent, j)
    rs[r, RUN] -= 1.0


@nb.njit(cache=True, inline="always")
def _finish(r, j, rs, ent, end, n_day, inflight, limited):
    """Request j's last token, on replica r at the replica's clock: it leaves the batch."""
    _release(r, j, rs, ent)
    if j < n_day:
        end[j] = rs[r, NOW]
        if limited:
            inflight[int(ent[j, E_SUB])] -= 1


@nb.njit(cache=True, inline="always")
def _start_decoding(r, j, steps, rs, heap, ent):
    """Request j decodes ``steps`` more tokens on replica r from its next step.

    It holds its input + 1 + (steps since) tokens of context.
    """
    v = int(rs[r, VSTEP])
    sd = ent[j, E_IN] + 1.0 - v
    ent[j, E_SD] = sd
    rs[r, SCTX] += sd
    n = int(rs[r, NDEC])
    _push(heap, int(rs[r, HEAP_OFF]), n, v + steps, j)
    rs[r, NDEC] = n + 1


@no_refcount
def _admit_waiting(r, n_prio, pp, rs, heap, ent, start, deadline, n_day, acct):
    """Move queued requests into replica r's batch while it has room (strict priority, FIFO).

    A queued request whose first token can no longer come within its user's patience
    (``deadline``, the latest start) leaves instead (see sim.engine.abandonment); on a
    decode replica the first token has come already, so none leaves.
    """
    pl = int(rs[r, POOL])
    kvcap, maxb = pp[pl, P_KV], pp[pl, P_MAXB]
    now = rs[r, NOW]
    decode = rs[r, ROLE] == ROLE_DECODE
    for k in range(n_prio):
        col = WQ0 + 2 * k
        while rs[r, col] >= 0:
            j = int(rs[r, col])
            need = _need(rs, r, ent, j)
            late = not decode and now > deadline[j]
            if not late and (rs[r, RUN] >= maxb or rs[r, KV] + need > kvcap):
                return
            _unlink_head(rs, ent, r, col)
            rs[r, WAIT_KV] -= need
            if late:
                abandon(j, acct)
                continue
            rs[r, KV] += need
            rs[r, RUN] += 1.0
            if decode:
                ent[j, E_DSTART] = now
                _start_decoding(r, j, int(np.ceil(ent[j, E_OUT])) - 1, rs, heap, ent)
                continue
            if j < n_day:
                start[j] = now
            rs[r, PRE_TOT] += ent[j, E_PRE]
            ent[j, E_PEND] = rs[r, PRE_TOT]
            _link(rs, ent, r, PF_HEAD, j)


@no_refcount
def advance_replica(
    r, until, strict, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day,
    acct,
):  # fmt: skip
    """Run replica r's steps up to ``until`` and handle the completions they bring.

    ``strict``: only the steps that end by ``until`` (the state at ``until``, which the router
    and concurrency limits read); otherwise also the step in progress at ``until`` (the state
    an arrival at ``until`` joins at its next boundary). A prefill-only replica hands each
    finished prefill to ``hand`` (the transfers under way) instead of decoding it.
    """
    inflight, limited = acct[8], acct[9]
    off = int(rs[r, HEAP_OFF])
    pl = int(rs[r, POOL])
    prefill_only = rs[r, ROLE] == ROLE_PREFILL
    while rs[r, NOW] < until:
        first, growth, c, ke = _composition(r, pp, rs, heap, ent)
        if ke == NEVER:  # nothing in the batch: the replica idles
            return
        span = until - rs[r, NOW]
        ku = _steps_to_cover(first, growth, span)
        if strict and ku != NEVER and _steps_time(first, growth, ku) > span + TIME_EPS:
            ku -= 1
        k = min(ke, ku)
        if k == 0:
            return
        rs[r, NOW] += _steps_time(first, growth, k)
        rs[r, VSTEP] += k
        rs[r, PRE_DONE] += k * c
        if k < ke:
            return
        v = int(rs[r, VSTEP])
        # prefill completions: the step that ends a prefill gives the first token
        while rs[r, PF_HEAD] >= 0 and ent[int(rs[r, PF_HEAD]), E_PEND] <= (
            rs[r, PRE_DONE] + TOKEN_EPS
        ):
            j = _unlink_head(rs, ent, r, PF_HEAD)
            if j < n_day:
                first_tok[j] = rs[r, NOW]
            steps = int(np.ceil(ent[j, E_OUT])) - 1
            if steps <= 0:
                _finish(r, j, rs, ent, end, n_day, inflight, limited)
            elif prefill_only:  # its KV cache leaves for a decode replica
                _release(r, j, rs, ent)
                xfer = pp[pl, P_XFER_LAT] + pp[pl, P_XFER_TOK] * ent[j, E_IN]
                events.push(hand, rs[r, NOW] + xfer, j)
            else:
                _start_decoding(r, j, steps, rs, heap, ent)
        # decode completions
        while rs[r, NDEC] > 0 and heap[off, 0] <= v:
            j = heap[off, 1]
            n = int(rs[r, NDEC])
            _pop(heap, off, n)
            rs[r, NDEC] = n - 1
            rs[r, SCTX] -= ent[j, E_SD]
            _finish(r, j, rs, ent, end, n_day, inflight, limited)
        if rs[r, NDEC] == 0:
            rs[r, SCTX] = 0.0  # no rounding residue left behind
        _admit_waiting(r, n_prio, pp, rs, heap, ent, start, deadline, n_day, acct)


@nb.njit(cache=True, inline="always")
def _bring_to(
    r, until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
):  # fmt: skip
    """Replica r as of ``until``: the completions due by then handled, if it has any."""
    if rs[r, NEXT] <= until + TIME_EPS:
        advance_replica(
            r, until, True, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline,
            n_day, acct,
        )  # fmt: skip
        _set_next(r, pp, rs, heap, ent)


@no_refcount
def sync_handoffs(until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct):  # fmt: skip  # noqa: E501
    """Run the disaggregated pools up to ``until``, event by event in time order.

    The next event is the earliest prefill completion on a prefill replica or KV arrival at
    a decode side; a completion adds its transfer to ``hand``, an arrival is routed to a
    decode replica. Decode replicas are only ever moved on here (or after it), so each sees
    its handoffs in time order, however lazily the prefill replicas were brought up to date.
    """
    n_pool = pp.shape[0]
    while True:
        th = events.top_time(hand, np.inf)
        horizon = min(until, th)
        best = -1
        t_best = np.inf
        for pl in range(n_pool):
            if pp[pl, P_DISAGG] > 0.0:
                r0 = int(pp[pl, P_REP0])
                for r in range(r0, r0 + int(pp[pl, P_REPS])):
                    if rs[r, NEXT] < t_best:
                        t_best = rs[r, NEXT]
                        best = r
        if best >= 0 and t_best <= horizon + TIME_EPS:
            before = rs[best, VSTEP]
            advance_replica(
                best, t_best, True, n_prio, pp, rs, heap, hand, ent, start, first_tok, end,
                deadline, n_day, acct,
            )  # fmt: skip
            if rs[best, VSTEP] == before:  # a clock rounding left the step undone: run it
                advance_replica(
                    best, t_best, False, n_prio, pp, rs, heap, hand, ent, start, first_tok, end,
                    deadline, n_day, acct,
                )  # fmt: skip
            _set_next(best, pp, rs, heap, ent)
            continue
        if events.size(hand) == 0 or th > until:
            return
        j = int(hand[1, 1])
        events.pop(hand)
        _deliver(j, th, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct)  # fmt: skip  # noqa: E501


@nb.njit(cache=True, inline="always")
def _route(
    first_rep, n_active, rr_col, pl, now, n_prio, pp, rs, heap, hand, ent, start, first_tok,
    end, deadline, n_day, acct,
):  # fmt: skip
    """The replica among ``first_rep`` .. + ``n_active`` that pool pl's router picks at now."""
    if pp[pl, P_ROUTER] == ROUTER_ROUND_ROBIN:
        r = first_rep + int(pp[pl, rr_col]) % n_active
        pp[pl, rr_col] += 1.0
        return r
    # least loaded, as of ``now``: completions due by then are counted, none after
    r = -1
    best = np.inf
    for q in range(first_rep, first_rep + n_active):
        _bring_to(
            q, now, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
        )
        load = rs[q, KV] + rs[q, WAIT_KV]
        if load < best:
            best = load
            r = q
    return r


@no_refcount
def _enqueue(
    r, j, prio, now, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day,
    acct,
):  # fmt: skip
    """Queue request j (rank ``prio``) at replica r from ``now``, and admit what fits."""
    advance_replica(
        r, now, False, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day,
        acct,
    )  # fmt: skip
    if rs[r, NOW] < now:  # idle replica: its next step starts now
        rs[r, NOW] = now
    ent[j, E_PRIO] = prio
    ent[j, E_REP] = r
    rs[r, WAIT_KV] += _need(rs, r, ent, j)
    _link(rs, ent, r, WQ0 + 2 * prio, j)
    _admit_waiting(r, n_prio, pp, rs, heap, ent, start, deadline, n_day, acct)
    _set_next(r, pp, rs, heap, ent)


@no_refcount
def _deliver(j, now, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct):  # fmt: skip  # noqa: E501
    """Request j's KV cache reaches its pool's decode side at ``now``: route and queue it.

    With no decode replica working this month (a carried request), the first one takes it.
    """
    pl = int(ent[j, E_POOL])
    n_active = max(min(int(pp[pl, P_DACT]), int(pp[pl, P_DREPS])), 1)
    r = _route(
        int(pp[pl, P_DREP0]), n_active, P_DRR, pl, now, n_prio, pp, rs, heap, hand, ent, start,
        first_tok, end, deadline, n_day, acct,
    )  # fmt: skip
    _enqueue(
        r, j, int(ent[j, E_PRIO]), now, n_prio, pp, rs, heap, hand, ent, start, first_tok, end,
        deadline, n_day, acct,
    )  # fmt: skip


@no_refcount
def bring_replica(
    r, until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
):
    """Bring replica r to ``until``, the admissions due by then made.

    What tells whether a queued request started before its patience deadline.
    """
    _bring_to(r, until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct)  # fmt: skip  # noqa: E501


@nb.njit(cache=True, inline="always")
def copy_entry(ent, j, row):
    """Make entry ``row`` a fresh copy of request j's sizes and subscriber (a retry of it)."""
    for c in (E_PRE, E_OUT, E_IN, E_KV, E_SUB, E_POOL):
        ent[row, c] = ent[j, c]
    ent[row, E_NEXT] = -1.0
    ent[row, E_DSTART] = np.nan


@no_refcount
def advance_pool(
    pl, until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
):
    """Bring every replica of pool pl to its state at ``until`` (what concurrency limits read)."""
    if pp[pl, P_DISAGG] > 0.0:
        sync_handoffs(
            until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
        )
        r0 = int(pp[pl, P_DREP0])
        for r in range(r0, r0 + int(pp[pl, P_DREPS])):
            _bring_to(
                r, until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline,
                n_day, acct,
            )  # fmt: skip
    r0 = int(pp[pl, P_REP0])
    for r in range(r0, r0 + int(pp[pl, P_REPS])):
        _bring_to(
            r, until, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day,
            acct,
        )  # fmt: skip


@no_refcount
def arrive(
    j, pl, prio, now, n_active, n_prio, pp, rs, heap, hand, ent, start, first_tok, end,
    deadline, n_day, acct,
):  # fmt: skip
    """Route request j (queue rank ``prio``) to a replica of pool pl and queue it there.

    A disaggregated pool's prefill replicas take it; it remembers its pool for the handoff.
    """
    if pp[pl, P_DISAGG] > 0.0:
        sync_handoffs(
            now, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
        )
        ent[j, E_POOL] = pl
    r = _route(
        int(pp[pl, P_REP0]), n_active, P_RR, pl, now, n_prio, pp, rs, heap, hand, ent, start,
        first_tok, end, deadline, n_day, acct,
    )  # fmt: skip
    _enqueue(
        r, j, prio, now, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day,
        acct,
    )  # fmt: skip


# --------------------------------------------------------------------------- days


@no_refcount
def load_ghosts(day_start, pp, rs, heap, hand, ent, n_day):
    """Reset every replica at the day's start and put back the requests carried from yesterday."""
    for r in range(rs.shape[0]):
        resume = max(day_start, rs[r, CARRY_NOW])
        for c in range(rs.shape[1]):
            if c != HEAP_OFF and c != POOL and c != ROLE:
                rs[r, c] = -1.0 if c >= PF_HEAD else 0.0
        rs[r, NOW] = resume
    hand[0, 0] = 0.0
    for j in range(n_day, ent.shape[0]):
        phase = int(ent[j, E_PHASE])
        if phase == PH_TRANSFER:
            events.push(hand, ent[j, E_HAND], j)
            continue
        r = int(ent[j, E_REP])
        if phase == PH_WAITING:
            rs[r, WAIT_KV] += _need(rs, r, ent, j)
            _link(rs, ent, r, WQ0 + 2 * int(ent[j, E_PRIO]), j)
            continue
        rs[r, KV] += _need(rs, r, ent, j)
        rs[r, RUN] += 1.0
        if phase == PH_PREFILL:
            rs[r, PRE_TOT] += ent[j, E_PRE]
            ent[j, E_PEND] = rs[r, PRE_TOT]
            _link(rs, ent, r, PF_HEAD, j)
        else:  # decoding: E_OUT holds its steps left, E_IN the context it holds
            n = int(rs[r, NDEC])
            _push(heap, int(rs[r, HEAP_OFF]), n, int(ent[j, E_OUT]), j)
            rs[r, NDEC] = n + 1
            ent[j, E_SD] = ent[j, E_IN]
            rs[r, SCTX] += ent[j, E_IN]
    for r in range(rs.shape[0]):
        _set_next(r, pp, rs, heap, ent)


@nb.njit(cache=True, inline="always")
def _carry(carry, k, j, r, phase, ent):
    """Write entry j of replica r as carried row k."""
    for c in range(N_ENT):
        carry[k, c] = ent[j, c]
    carry[k, E_NEXT] = -1.0
    carry[k, E_PHASE] = phase
    carry[k, E_REP] = r
    carry[k, E_SRC] = j


@no_refcount
def end_day(
    day_end, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct,
    carry, count,
):  # fmt: skip
    """At the day's end: carry what is alive into ``carry``, then drain the day's requests.

    Each replica runs up to the day's end; its queued, prefilling and decoding requests are
    written to ``carry`` with the work they have left (queued ones in queue order, so they
    keep their place), and so are KV transfers under way; ``count`` gets their number. Then
    everything runs with no new arrivals until empty, which completes the day's requests'
    latencies.
    """
    sync_handoffs(
        day_end, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
    )
    k = 0
    for r in range(rs.shape[0]):
        if rs[r, POOL] < 0:
            continue
        advance_replica(
            r, day_end, False, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline,
            n_day, acct,
        )  # fmt: skip
        rs[r, CARRY_NOW] = rs[r, NOW]
        v = int(rs[r, VSTEP])
        for q in range(n_prio):
            j = int(rs[r, WQ0 + 2 * q])
            while j >= 0:
                _carry(carry, k, j, r, PH_WAITING, ent)
                k += 1
                j = int(ent[j, E_NEXT])
        j = int(rs[r, PF_HEAD])
        while j >= 0:
            _carry(carry, k, j, r, PH_PREFILL, ent)
            left = min(ent[j, E_PRE], ent[j, E_PEND] - rs[r, PRE_DONE])
            carry[k, E_PRE] = max(left, 1.0)
            k += 1
            j = int(ent[j, E_NEXT])
        off = int(rs[r, HEAP_OFF])
        for h in range(int(rs[r, NDEC])):
            j = heap[off + h, 1]
            _carry(carry, k, j, r, PH_DECODE, ent)
            carry[k, E_PRE] = 0.0
            carry[k, E_OUT] = float(heap[off + h, 0] - v)
            carry[k, E_IN] = ent[j, E_SD] + v
            k += 1
    for h in range(1, events.size(hand) + 1):  # transfers under way, with their arrival time
        j = int(hand[h, 1])
        _carry(carry, k, j, -1, PH_TRANSFER, ent)
        carry[k, E_HAND] = hand[h, 0]
        k += 1
    count[0] = k
    # the drain: prefill sides first (their handoffs reach the decode sides in time order)
    sync_handoffs(
        np.inf, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline, n_day, acct
    )
    for r in range(rs.shape[0]):
        if rs[r, POOL] < 0:
            continue
        advance_replica(
            r, np.inf, False, n_prio, pp, rs, heap, hand, ent, start, first_tok, end, deadline,
            n_day, acct,
        )  # fmt: skip
        rs[r, NEXT] = np.inf


# --------------------------------------------------------------------------- decode heap


@nb.njit(cache=True, inline="always")
def _push(heap, off, n, v, j):
    """Add (target step v, entry j) to the heap of size n stored from row ``off``."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if heap[off + parent, 0] <= v:
            break
        heap[off + i, 0] = heap[off + parent, 0]
        heap[off + i, 1] = heap[off + parent, 1]
        i = parent
    heap[off + i, 0] = v
    heap[off + i, 1] = j


@nb.njit(cache=True, inline="always")
def _pop(heap, off, n):
    """Remove the root of a heap of size n >= 1 (the caller reads the root first)."""
    n -= 1
    v = heap[off + n, 0]
    j = heap[off + n, 1]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and heap[off + c + 1, 0] < heap[off + c, 0]:
            c += 1
        if heap[off + c, 0] >= v:
            break
        heap[off + i, 0] = heap[off + c, 0]
        heap[off + i, 1] = heap[off + c, 1]
        i = c
    heap[off + i, 0] = v
    heap[off + i, 1] = j
