"""A plain, step-by-step reference model of batched serving, to check sim.engine.batching against.

The compiled model (:mod:`sim.engine.batching`) jumps over runs of identical steps in closed
form and keeps its batches in heaps and linked lists, which is fast but hard to read. This
module simulates the same rules the obvious way: one Python loop iteration per step of each
replica, the batch a list of request objects, every token counted one at a time. It uses no
code from ``sim``, so the two can only agree if both implement the rules below.

One replica runs continuous batching:

* a step lasts ``base_s + prefill_s * c + request_s * n + context_s * K`` seconds, where ``c``
  is the prefill tokens in the step, ``n`` the requests decoding at the step's start and ``K``
  the context tokens those ``n`` hold at the step's start;
* requests wait FIFO in the replica's queue; at each step boundary (after the completions of
  the step that just ended) and when a request arrives, queued requests join the batch in
  order while the batch has fewer than ``max_batch`` requests and the KV reserved plus the
  head's ``input + output`` tokens fit in ``kv_tokens`` (the head blocks the rest); a request
  reserves ``input + output`` KV tokens when it joins and frees them at its last token;
* an idle replica (nothing in its batch) starts a step when a request arrives; a busy one
  takes an arrival at time ``t`` into the first step starting at or after ``t``;
* each request prefills ``max(uncached, 1)`` tokens, FIFO across the batch's prefilling
  requests, at most ``chunk`` tokens a step; the step holding its last prefill token gives
  its first token at that step's end; it then decodes its other ``output - 1`` tokens one a
  step, starting with the next step, holding ``input + 1`` context tokens at its first decode
  step and one more after each step; its last token ends it.

Across replicas a router picks a replica at each arrival: ``round_robin`` cycles 0, 1, 2, ...;
``least_loaded`` takes the replica with the fewest KV tokens reserved by its batch plus asked
by its queue at the arrival time (every completion at or before the arrival counted, none
after it), the lowest index on ties. A request whose ``input + output`` exceeds ``kv_tokens``
could never join a batch: it is refused (outcome 6, as ``REFUSED_NO_CAPACITY``) and not
routed, so it takes no round-robin turn.

The day's arrivals are sorted; after the last one every replica runs until it is empty (the
kernel harness's midnight drain, since every arrival precedes midnight).

It is slow (a few microseconds per request per step): tests keep to a few thousand requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

SERVED = 0
REFUSED = 6
"""Outcome codes written by :func:`simulate` (the values of sim.engine.outcomes)."""


@dataclass
class Spec:
    """One replica's step-time coefficients (s), chunk (tokens), KV budget and batch size."""

    base_s: float
    prefill_s: float
    request_s: float
    context_s: float
    chunk: float  # a whole number of tokens
    kv_tokens: float
    max_batch: int


@dataclass(eq=False)
class Request:
    """A request's sizes, what it has left to do, and its times (nan until they happen)."""

    index: int
    input: int
    output: int
    kv: int  # input + output: the KV tokens it reserves while in the batch
    prefill_left: int  # prefill tokens not yet processed (max(uncached, 1) at first)
    decode_left: int = 0  # output tokens still to decode after the first
    context: int = 0  # context tokens held while decoding
    start: float = np.nan
    first: float = np.nan
    end: float = np.nan
    decode_start: float = np.nan  # disaggregated: when it joined a decode replica's batch

    @property
    def decoding(self) -> bool:
        return self.prefill_left == 0


@dataclass
class Replica:
    """One replica: its clock, batch (in join order) and FIFO queue.

    ``clock`` is the replica's latest step boundary: the state below is the state right after
    that boundary (its completions and admissions done). While the batch is not empty the
    next step starts at ``clock``; while it is empty the replica idles.
    """

    spec: Spec
    clock: float = 0.0
    batch: list[Request] = field(default_factory=list)
    queue: deque[Request] = field(default_factory=deque)
    kv: int = 0  # KV tokens reserved by the batch
    steps: int = 0
    hand_over: Callable[[Request, float], None] | None = None
    """Prefill-only replicas: takes each prefilled request (and the time) off this replica."""

    def load(self) -> int:
        """The least-loaded router's measure: KV reserved by the batch plus asked by the queue."""
        return self.kv + sum(r.kv for r in self.queue)

    def next_step(self) -> tuple[int, float]:
        """The next step's prefill tokens and duration, from the batch as it is now."""
        s = self.spec
        backlog = sum(r.prefill_left for r in self.batch)
        c = min(int(s.chunk), backlog)
        decoding = [r for r in self.batch if r.decoding]
        n = len(decoding)
        k = sum(r.context for r in decoding)
        return c, s.base_s + s.prefill_s * c + s.request_s * n + s.context_s * k

    def step(self) -> None:
        """Run the step starting at ``clock``, then handle its completions and admissions."""
        c, duration = self.next_step()
        end = self.clock + duration
        decoding = [r for r in self.batch if r.decoding]  # the n requests of the step's start
        # prefill: c tokens, first come first served across the prefilling requests
        prefilled = []
        budget = c
        for r in self.batch:
            if budget == 0:
                break
            if r.decoding:
                continue
            take = min(budget, r.prefill_left)
            r.prefill_left -= take
            budget -= take
            if r.prefill_left == 0:
                prefilled.append(r)
        # decode: one token for each request that was decoding at the step's start
        for r in decoding:
            r.decode_left -= 1
            r.context += 1
        self.clock = end
        self.steps += 1
        for r in decoding:
            if r.decode_left == 0:
                self.finish(r)
        # the step that ends a prefill gives the first token; decoding starts next step
        for r in prefilled:
            r.first = end
            if r.output <= 1:
                self.finish(r)
            elif self.hand_over is not None:  # leaves with its KV for a decode replica
                self.batch.remove(r)
                self.kv -= r.kv
                self.hand_over(r, end)
            else:
                r.decode_left = r.output - 1
                r.context = r.input + 1
        self.admit()

    def finish(self, r: Request) -> None:
        """Request r's last token at ``clock``: it leaves the batch and frees its KV."""
        r.end = self.clock
        self.batch.remove(r)
        self.kv -= r.kv

    def admit(self) -> None:
        """Move queued requests into the batch, FIFO, while there is room (the head blocks)."""
        s = self.spec
        while self.queue:
            head = self.queue[0]
            if len(self.batch) >= s.max_batch or self.kv + head.kv > s.kv_tokens:
                return
            self.queue.popleft()
            if head.decoding:  # handed over from a prefill replica
                head.decode_start = self.clock
            else:
                head.start = self.clock
            self.batch.append(head)
            self.kv += head.kv

    def receive_decoding(self, r: Request, t: float) -> None:
        """A prefilled request (``prefill_left`` 0) arrives at time t to decode here."""
        assert r.decoding
        self.receive(r, t)

    def run_steps_ending_by(self, t: float) -> None:
        """Run the steps that end at or before t (the replica's state at time t)."""
        while self.batch and self.clock + self.next_step()[1] <= t:
            self.step()

    def run_steps_starting_before(self, t: float) -> None:
        """Run the steps that start before t, so an arrival at t joins the step at ``clock``."""
        while self.batch and self.clock < t:
            self.step()

    def receive(self, r: Request, t: float) -> None:
        """Request r arrives at time t: queue it and let it join at the next step boundary."""
        self.run_steps_starting_before(t)
        if not self.batch:  # idle: a step starts at the arrival (or at the boundary past it)
            self.clock = max(self.clock, t)
        self.queue.append(r)
        self.admit()

    def drain(self) -> None:
        """Run until the batch and the queue are empty (no more arrivals)."""
        while self.batch:
            self.step()
        assert not self.queue


def simulate(
    t: NDArray,
    input_tokens: NDArray,
    uncached: NDArray,
    output: NDArray,
    spec: Spec,
    replicas: int = 1,
    router: str = "least_loaded",
) -> dict[str, NDArray]:
    """Serve requests arriving at the sorted times ``t`` on ``replicas`` replicas of ``spec``.

    Token counts are rounded to integers. Returns per-request ``start`` (joined a batch),
    ``first`` (first token), ``end`` (last token), ``outcome`` (0 served, 6 refused),
    ``replica`` (where it was routed, -1 if refused), and ``steps`` (steps run per replica).
    """
    t = np.asarray(t, dtype=float)
    assert np.all(np.diff(t) >= 0), "arrivals must be sorted"
    if router not in ("least_loaded", "round_robin"):
        raise ValueError(router)
    inp = np.rint(input_tokens).astype(int)
    unc = np.rint(uncached).astype(int)
    out = np.rint(output).astype(int)
    reps = [Replica(spec) for _ in range(replicas)]
    requests = []
    outcome = np.full(len(t), SERVED, dtype=np.int8)
    routed = np.full(len(t), -1, dtype=np.int64)
    turn = 0
    for i in range(len(t)):
        r = Request(
            index=i,
            input=int(inp[i]),
            output=int(out[i]),
            kv=int(inp[i] + out[i]),
            prefill_left=max(int(unc[i]), 1),
        )
        requests.append(r)
        if r.kv > spec.kv_tokens:
            outcome[i] = REFUSED
            continue
        if router == "round_robin":
            q = turn % replicas
            turn += 1
        else:
            loads = []
            for rep in reps:
                rep.run_steps_ending_by(t[i])
                loads.append(rep.load())
            q = int(np.argmin(loads))  # the first of the least loaded
        routed[i] = q
        reps[q].receive(r, float(t[i]))
    for rep in reps:
        rep.drain()
    return {
        "start": np.array([r.start for r in requests]),
        "first": np.array([r.first for r in requests]),
        "end": np.array([r.end for r in requests]),
        "outcome": outcome,
        "replica": routed,
        "steps": np.array([rep.steps for rep in reps]),
    }


def simulate_disaggregated(
    t: NDArray,
    input_tokens: NDArray,
    uncached: NDArray,
    output: NDArray,
    spec: Spec,
    prefill_replicas: int,
    decode_replicas: int,
    transfer_s_per_token: float = 0.0,
    transfer_latency_s: float = 0.0,
    router: str = "least_loaded",
) -> dict[str, NDArray]:
    """Serve the requests on separate prefill and decode replicas of ``spec``.

    The rules above hold on each replica, with these changes:

    * a request is routed to a prefill replica at its arrival; there it reserves only its
      ``input`` KV tokens; the step that ends its prefill gives its first token and it leaves
      that batch (freeing them); a single-token request ends there;
    * its KV then crosses to the decode side, arriving ``transfer_latency_s + input x
      transfer_s_per_token`` seconds later; it is routed (same router rule, its own
      round-robin turn) to a decode replica and queued there as an arrival; it joins a batch
      reserving ``input + output`` tokens and decodes its ``output - 1`` other tokens from the
      next step, holding ``input + 1`` context tokens at its first decode step;
    * time runs event by event over the whole system: the earliest of (a prefill replica's
      step end, a KV arrival, a request arrival) happens next; on ties a step end comes
      first, then a KV arrival, then a request arrival.

    Returns ``start``, ``first``, ``end``, ``outcome`` as :func:`simulate`, and
    ``decode_start`` (when it joined a decode batch; nan for single-token requests).
    """
    import heapq

    t = np.asarray(t, dtype=float)
    assert np.all(np.diff(t) >= 0), "arrivals must be sorted"
    inp = np.rint(input_tokens).astype(int)
    unc = np.rint(uncached).astype(int)
    out = np.rint(output).astype(int)
    transfers: list[tuple[float, int]] = []  # (KV arrival time, request index)

    def hand_over(r: Request, when: float) -> None:
        arrival = when + transfer_latency_s + r.input * transfer_s_per_token
        heapq.heappush(transfers, (arrival, r.index))

    pre = [Replica(spec, hand_over=hand_over) for _ in range(prefill_replicas)]
    dec = [Replica(spec) for _ in range(decode_replicas)]
    requests: list[Request] = []
    outcome = np.full(len(t), SERVED, dtype=np.int8)
    decode_start = np.full(len(t), np.nan)
    turns = {"pre": 0, "dec": 0}

    def route(reps: list[Replica], side: str, when: float) -> Replica:
        if router == "round_robin":
            q = turns[side] % len(reps)
            turns[side] += 1
            return reps[q]
        loads = []
        for rep in reps:
            rep.run_steps_ending_by(when)
            loads.append(rep.load())
        return reps[int(np.argmin(loads))]

    i = 0
    while True:
        t_arr = t[i] if i < len(t) else np.inf
        t_kv = transfers[0][0] if transfers else np.inf
        horizon = min(t_arr, t_kv)
        ends = [(rep.clock + rep.next_step()[1], q) for q, rep in enumerate(pre) if rep.batch]
        if ends and min(ends)[0] <= horizon:
            pre[min(ends)[1]].step()
            continue
        if transfers and t_kv <= t_arr:
            _, j = heapq.heappop(transfers)
            r = requests[j]
            # on the decode side: input + output reserved, decoding from the next step
            r.kv = r.input + r.output
            r.decode_left = r.output - 1
            r.context = r.input + 1
            rep = route(dec, "dec", t_kv)
            rep.receive_decoding(r, t_kv)
            continue
        if i >= len(t):
            break
        r = Request(
            index=i,
            input=int(inp[i]),
            output=int(out[i]),
            kv=int(inp[i]),
            prefill_left=max(int(unc[i]), 1),
        )
        requests.append(r)
        i += 1
        if r.input + r.output > spec.kv_tokens:
            outcome[r.index] = REFUSED
            continue
        rep = route(pre, "pre", t[r.index])
        rep.receive(r, float(t[r.index]))
    for rep in dec:
        rep.drain()
    for r in requests:
        decode_start[r.index] = r.decode_start
    return {
        "start": np.array([r.start for r in requests]),
        "first": np.array([r.first for r in requests]),
        "end": np.array([r.end for r in requests]),
        "outcome": outcome,
        "decode_start": decode_start,
    }
