"""Pools as the sizing search sees them: replica size, slots, and scenarios at given counts.

A disaggregated pool (``Pool.disaggregated``) is two things to size, its *parts*: its prefill
replicas (the pool's ``gpus`` and ``schedule``), named ``POOL:prefill``, and its decode replicas
(``disaggregated.decode_gpus`` and ``decode_schedule``), named ``POOL:decode``. Both parts
carry the pool's index, since measurements are indexed by pool. A part is judged only on the
metrics its count moves (:data:`PART_METRICS`): queue wait and TTFT come from the prefill
replicas, TPOT (which includes the KV transfer and the decode side's queue) from the decode
replicas, and end-to-end latency from both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.scenario.loading import validate_data
from sim.scenario.schema import CapacityChange, Pool, Scenario
from sim.world.build import WORKING_CARDS_TOLERANCE

PREFILL, DECODE = "prefill", "decode"
"""The parts of a disaggregated pool: its prefill replicas and its decode replicas."""
PART_SEPARATOR = ":"
"""Between a pool's name and its part's in a part's name (``big:decode``)."""
PART_METRICS: dict[str, frozenset[str]] = {
    PREFILL: frozenset({"wait", "ttft", "e2e"}),
    DECODE: frozenset({"tpot", "e2e"}),
}
"""The SLO metrics that judge each part: a request waits for and gets its first token on a
prefill replica, so wait and TTFT depend on the prefill count alone; its TPOT runs from the
first token to the last, so it holds the KV transfer, the decode queue and the decode batch;
its end-to-end latency holds both."""


def working_replicas(replicas: int, gpus_per_replica: int, unavailable_share: float) -> int:
    """Replicas that serve when ``replicas`` are paid for and a share of cards is down.

    The same rule as sim.world.build: only whole replicas of working cards serve.
    """
    working = math.floor(
        replicas * gpus_per_replica * (1.0 - unavailable_share) + WORKING_CARDS_TOLERANCE
    )
    return working // gpus_per_replica


@dataclass(frozen=True)
class PoolSpec:
    """A pool, or a part of a disaggregated pool, as the search sees it.

    Its replica size, slots and the share of cards down; ``index``: the pool's index in the
    scenario (and in every measurement); ``part``: PREFILL or DECODE for a part of a
    disaggregated pool, None for a whole pool; ``batched``: the pool's serving is batched.
    """

    name: str
    index: int
    gpus_per_replica: int
    slots_per_replica: int
    unavailable_share: float
    tpot_s: float
    part: str | None = None
    batched: bool = False

    @property
    def pool(self) -> str:
        """The scenario's name of the pool (a part's name without its part)."""
        return self.name if self.part is None else self.name.removesuffix(self.part_suffix)

    @property
    def part_suffix(self) -> str:
        """``:prefill`` or ``:decode`` for a part, empty for a whole pool."""
        return "" if self.part is None else f"{PART_SEPARATOR}{self.part}"

    def judged_on(self, metric: str) -> bool:
        """Whether a target on ``metric`` judges this pool (a part: PART_METRICS)."""
        return self.part is None or metric in PART_METRICS[self.part]


def pool_specs(s: Scenario) -> list[PoolSpec]:
    """Every pool of the scenario with its serving constants (from the catalog).

    A disaggregated pool gives two specs, ``POOL:prefill`` then ``POOL:decode``, with the
    pool's index.
    """
    models = {m.name: m for m in s.catalog.models}
    out = []
    for j, p in enumerate(s.cluster.pools):
        sv = next(v for v in models[p.model].serving if v.gpu == p.gpu)
        parts: list[str | None] = [None] if p.disaggregated is None else [PREFILL, DECODE]
        for part in parts:
            out.append(
                PoolSpec(
                    name=p.name if part is None else f"{p.name}{PART_SEPARATOR}{part}",
                    index=j,
                    gpus_per_replica=sv.gpus_per_replica,
                    slots_per_replica=sv.batch_slots_per_replica,
                    unavailable_share=p.unavailable_share,
                    tpot_s=sv.batch_slots_per_replica
                    / (sv.decode_tokens_per_s_per_gpu * sv.gpus_per_replica),
                    part=part,
                    batched=p.serving == "batched",
                )
            )
    return out


def paid_gpus_by_month(s: Scenario, p: PoolSpec) -> list[int]:
    """The cards the scenario pays for in each month for the pool or part ``p``.

    The same rule as sim.world.build: a schedule step applies from its month on.
    """
    pool = next(q for q in s.cluster.pools if q.name == p.pool)
    level, steps = _cards(pool, p.part)
    changes = {c.month: c.gpus for c in steps}
    out = []
    for month in range(s.horizon_months):
        level = changes.get(month, level)
        out.append(level)
    return out


def _cards(pool: Pool, part: str | None) -> tuple[int, list[CapacityChange]]:
    """A pool's or a part's month-0 cards and schedule steps."""
    if part != DECODE:
        return pool.gpus, pool.schedule
    if pool.disaggregated is None:
        raise ValueError(f"pool {pool.name} has no decode replicas")
    return pool.disaggregated.decode_gpus, pool.disaggregated.decode_schedule


def with_counts(s: Scenario, counts: dict[str, tuple[int, ...]], specs: list[PoolSpec]) -> Scenario:
    """The scenario with each named pool (or part) at ``counts[name]`` replicas by month.

    A constant count replaces the procurement schedule; a count by month becomes the month-0
    cards and one schedule step per change. A whole pool's and a prefill part's counts are the
    pool's ``gpus`` and ``schedule``; a decode part's are its ``disaggregated.decode_gpus`` and
    ``decode_schedule``.
    """
    data = s.model_dump(mode="json")
    pools = {pool["name"]: pool for pool in data["cluster"]["pools"]}
    for p in specs:
        if p.name not in counts:
            continue
        gpus = [n * p.gpus_per_replica for n in counts[p.name]]
        steps = [{"month": m, "gpus": v} for m, v in enumerate(gpus) if m > 0 and v != gpus[m - 1]]
        pool = pools[p.pool]
        if p.part == DECODE:
            pool["disaggregated"]["decode_gpus"] = gpus[0]
            pool["disaggregated"]["decode_schedule"] = steps
        else:
            pool["gpus"] = gpus[0]
            pool["schedule"] = steps
    return validate_data(data)


def paid_for(working: int, p: PoolSpec, cap: int) -> int:
    """The fewest paid replicas that give ``working`` serving replicas (capped)."""
    n = max(working, 1)
    while n < cap and working_replicas(n, p.gpus_per_replica, p.unavailable_share) < working:
        n += 1
    return n
