"""Pools as the sizing search sees them: replica size, slots, and scenarios at given counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.scenario.loading import validate_data
from sim.scenario.schema import Scenario
from sim.world.build import WORKING_CARDS_TOLERANCE


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
    """A pool as the search sees it: its replica size, slots and the share of cards down."""

    name: str
    index: int
    gpus_per_replica: int
    slots_per_replica: int
    unavailable_share: float
    tpot_s: float


def pool_specs(s: Scenario) -> list[PoolSpec]:
    """Every pool of the scenario with its serving constants (from the catalog)."""
    models = {m.name: m for m in s.catalog.models}
    out = []
    for j, p in enumerate(s.cluster.pools):
        sv = next(v for v in models[p.model].serving if v.gpu == p.gpu)
        out.append(
            PoolSpec(
                name=p.name,
                index=j,
                gpus_per_replica=sv.gpus_per_replica,
                slots_per_replica=sv.batch_slots_per_replica,
                unavailable_share=p.unavailable_share,
                tpot_s=sv.batch_slots_per_replica
                / (sv.decode_tokens_per_s_per_gpu * sv.gpus_per_replica),
            )
        )
    return out


def with_counts(s: Scenario, counts: dict[str, tuple[int, ...]], specs: list[PoolSpec]) -> Scenario:
    """The scenario with each named pool at ``counts[pool]`` replicas by month.

    A constant count replaces the pool's procurement schedule; a count by month becomes the
    pool's ``gpus`` (month 0) and one schedule step per change.
    """
    data = s.model_dump(mode="json")
    by_name = {p.name: p for p in specs}
    for pool in data["cluster"]["pools"]:
        if pool["name"] not in counts:
            continue
        g = by_name[pool["name"]].gpus_per_replica
        gpus = [n * g for n in counts[pool["name"]]]
        pool["gpus"] = gpus[0]
        pool["schedule"] = [
            {"month": m, "gpus": v} for m, v in enumerate(gpus) if m > 0 and v != gpus[m - 1]
        ]
    return validate_data(data)


def paid_for(working: int, p: PoolSpec, cap: int) -> int:
    """The fewest paid replicas that give ``working`` serving replicas (capped)."""
    n = max(working, 1)
    while n < cap and working_replicas(n, p.gpus_per_replica, p.unavailable_share) < working:
        n += 1
    return n
