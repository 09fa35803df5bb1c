"""Can a run be held in memory? An estimate of subscribers, requests per day and memory.

Every number of a scenario is bounded (:mod:`sim.scenario.limits`), but bounds that a real
market may reach can still multiply into a run no machine holds: a billion subscribers making
a hundred requests a day each. Before simulating, :func:`check_run_size` estimates what one
replication holds at its peak and refuses a run above the limit with a ScenarioError naming
the segments' and pools' fields that make it large.

The estimate is a lower bound of the engine's own arrays (subscriber columns, one day's
requests and their outcomes, the pools' batch slots), not of everything a run allocates: a run
it refuses would not fit. The limit is :data:`~sim.scenario.limits.MAX_RUN_MEMORY_GB`; the
environment variable :data:`~sim.scenario.limits.MEMORY_LIMIT_ENV` (GB) changes it for a
machine with more memory. ``--demand-scale`` makes a large market smaller.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from sim.scenario.errors import ScenarioError
from sim.scenario.limits import MAX_RUN_MEMORY_GB, MEMORY_LIMIT_ENV
from sim.scenario.schema import Bass, Scenario, Segment

BYTES_PER_SUBSCRIBER = 300
"""Memory of one subscriber's columns (bytes): ~38 eight-byte columns (plan terms, kernel state,
the month's counters) in sim.engine.population, before per-model token counters."""

BYTES_PER_MODEL_COUNTER = 24
"""Memory of one subscriber's token counters per catalog model (bytes): three float64."""

BYTES_PER_REQUEST = 200
"""Memory of one request of the day being simulated (bytes): its columns (time, subscriber,
model, tokens) and the kernels' outcome columns (outcome, pool, start, first token, end, ...)."""

BYTES_PER_SLOT = 16
"""Memory of one batch slot of a pool (bytes): its place in the free-slot heap (time, slot)."""

GB = 1e9
"""Bytes in a gigabyte (decimal, as the limit is stated)."""


@dataclass(frozen=True)
class RunSize:
    """What one replication holds at its peak (an estimate, lower bound)."""

    subscribers: list[float]
    """Most subscribers of each segment over the horizon (subscribers)."""
    requests_per_day: list[float]
    """Expected requests per day of each segment at that size (requests/day)."""
    slots: list[float]
    """Most batch slots of each pool over the horizon (slots)."""
    n_models: int

    @property
    def memory_bytes(self) -> float:
        """Estimated peak memory (bytes)."""
        per_sub = BYTES_PER_SUBSCRIBER + BYTES_PER_MODEL_COUNTER * self.n_models
        return (
            sum(self.subscribers) * per_sub
            + sum(self.requests_per_day) * BYTES_PER_REQUEST
            + sum(self.slots) * BYTES_PER_SLOT
        )


def peak_subscribers(s: Scenario, g: Segment) -> float:
    """Most subscribers ``g`` can have over the horizon (subscribers).

    Initial subscribers (the book's, where it counts them) plus the acquisition: the Bass
    market size, or the constant sign-ups per month over every month.
    """
    initial = float(g.initial_subscribers)
    if s.book is not None and s.book.entries:
        initial = max(initial, sum(e.subscribers for e in s.book.entries if e.segment == g.name))
    acq = g.acquisition
    if isinstance(acq, Bass):
        return initial + acq.market_size
    return initial + acq.per_month * s.horizon_months


def requests_per_subscriber_day(g: Segment) -> float:
    """Expected requests per subscriber on the busiest weekday at full engagement (requests/day).

    members x sessions_per_day x requests_per_session x the larger engagement multiplier x the
    busiest weekday's weight over the mean. 0 for a replayed segment (its trace sets its
    requests, bounded by the trace file's size).
    """
    if g.replay is not None or g.sessions_per_day is None:
        return 0.0
    week = g.weekday_profile
    busiest = max(week) / (sum(week) / len(week)) if sum(week) > 0 else 1.0
    engaged = max(g.engagement.start, g.engagement.target)
    return g.members * g.sessions_per_day * g.requests_per_session * engaged * busiest


def estimate(s: Scenario) -> RunSize:
    """The run's size: subscribers and requests per segment, slots per pool."""
    subs = [peak_subscribers(s, g) for g in s.segments]
    reqs = [n * requests_per_subscriber_day(g) for n, g in zip(subs, s.segments, strict=True)]
    models = {m.name: m for m in s.catalog.models}
    slots: list[float] = []
    for p in s.cluster.pools:
        sv = next((v for v in models[p.model].serving if v.gpu == p.gpu), None)
        if sv is None:
            slots.append(0.0)
            continue
        cards = [p.gpus, *(c.gpus for c in p.schedule)]
        if p.disaggregated is not None:
            d = p.disaggregated
            cards += [d.decode_gpus, *(c.gpus for c in d.decode_schedule)]
        slots.append(max(cards) / sv.gpus_per_replica * sv.batch_slots_per_replica)
    return RunSize(subs, reqs, slots, len(s.catalog.models))


def memory_limit_gb() -> float:
    """The limit (GB): :data:`MEMORY_LIMIT_ENV` if set to a positive number, else the default.

    Raises ScenarioError naming the variable when it is set to anything else.
    """
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text is None or not text.strip():
        return MAX_RUN_MEMORY_GB
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ScenarioError([(MEMORY_LIMIT_ENV, f"'{text}': expected a positive number of GB")])
    return v


def check_run_size(s: Scenario) -> RunSize:
    """Refuse a run whose estimated memory exceeds the limit; name the fields that make it large.

    Returns the estimate of a run that fits. The problems name each segment or pool holding at
    least a tenth of the estimate, with the fields to lower.
    """
    size = estimate(s)
    limit = memory_limit_gb()
    total = size.memory_bytes
    if total <= limit * GB:
        return size
    per_sub = BYTES_PER_SUBSCRIBER + BYTES_PER_MODEL_COUNTER * size.n_models
    problems = [
        (
            "(scenario)",
            f"one replication would hold about {total / GB:,.1f} GB (more than the"
            f" {limit:g} GB limit): {sum(size.subscribers):,.0f} subscribers at most and"
            f" {sum(size.requests_per_day):,.0f} requests/day; scale it down with"
            f" --demand-scale, or set {MEMORY_LIMIT_ENV} (GB) on a machine with more memory",
        )
    ]
    for k, g in enumerate(s.segments):
        mem = size.subscribers[k] * per_sub + size.requests_per_day[k] * BYTES_PER_REQUEST
        if mem >= total / 10:
            problems.append(
                (
                    f"segments[{k}]",
                    f"'{g.name}': up to {size.subscribers[k]:,.0f} subscribers (initial_subscribers"
                    f" + acquisition) making {size.requests_per_day[k]:,.0f} requests/day"
                    " (members x sessions_per_day x requests_per_session): about"
                    f" {mem / GB:,.1f} GB",
                )
            )
    for i, p in enumerate(s.cluster.pools):
        mem = size.slots[i] * BYTES_PER_SLOT
        if mem >= total / 10:
            problems.append(
                (
                    f"cluster.pools[{i}].gpus",
                    f"'{p.name}': {size.slots[i]:,.0f} batch slots (gpus / gpus_per_replica x"
                    f" batch_slots_per_replica): about {mem / GB:,.1f} GB",
                )
            )
    raise ScenarioError(problems)
