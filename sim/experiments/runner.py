"""Run a validated scenario: build the world, run its replications, collect results.

Replications run in this process one after another, or as independent tasks
on a dask cluster (:mod:`sim.experiments.distributed`) when a client is given; the results
are the same either way because replication r always draws from the named
random streams of (seed, r) (see :mod:`sim.engine.streams`). An optional stopping rule
(:class:`Precision`) keeps adding replications until the confidence interval
of one KPI is narrow enough.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.engine.replication import ReplicationResult, run_replication
from sim.results.kpis import KPIS, mean_ci, replication_kpis
from sim.results.tables import RunResult
from sim.scenario.schema import Scenario
from sim.world.arrays import World
from sim.world.build import build

if TYPE_CHECKING:
    from distributed import Client

MIN_REPLICATIONS_FOR_CI = 2
"""A confidence interval needs at least this many replications."""


@dataclass(frozen=True)
class Precision:
    """Stopping rule: add replications until ``kpi``'s 95% CI half-width / |mean| <= target.

    ``max_replications`` caps the run whatever the width (the run then reports
    the width it reached).
    """

    kpi: str
    rel_halfwidth: float
    max_replications: int

    def __post_init__(self) -> None:
        if self.kpi not in KPIS:
            raise ValueError(f"unknown KPI '{self.kpi}' (known: {', '.join(KPIS)})")
        if not self.rel_halfwidth > 0:
            raise ValueError("the relative half-width must be > 0")
        if self.max_replications < MIN_REPLICATIONS_FOR_CI:
            raise ValueError(f"the cap must allow at least {MIN_REPLICATIONS_FOR_CI} replications")


def relative_halfwidth(values: np.ndarray) -> float:
    """Half-width of the 95% t-interval of the mean divided by |mean| (inf if undefined)."""
    mean, lo, hi = mean_ci(np.asarray(values, dtype=float))
    if not math.isfinite(lo) or not math.isfinite(hi):
        return math.inf
    half = (hi - lo) / 2
    if mean == 0:
        return 0.0 if half == 0 else math.inf
    return half / abs(mean)


_WORLDS: dict[str, World] = {}
"""Worlds built in this process, by scenario digest (a worker builds each scenario once)."""
_WORLDS_KEPT = 4


def _world(scenario: Scenario) -> World:
    key = scenario.digest()
    if key not in _WORLDS:
        if len(_WORLDS) >= _WORLDS_KEPT:
            _WORLDS.pop(next(iter(_WORLDS)))
        _WORLDS[key] = build(scenario)
    return _WORLDS[key]


def replicate(
    scenario: Scenario, seed: int, replication: int, export_days: tuple[int, int] | None = None
) -> ReplicationResult:
    """One replication of a scenario (the unit of work sent to a dask worker)."""
    return run_replication(_world(scenario), seed, replication, None, export_days)


def _run_batch(
    scenario: Scenario,
    seed: int,
    reps: range,
    progress: Callable[[int], object] | None,
    export_days: tuple[int, int] | None,
    client: Client | None,
) -> list[ReplicationResult]:
    exports = [export_days if r == 0 else None for r in reps]
    if client is None:
        world = _world(scenario)
        return [
            run_replication(world, seed, r, progress, e) for r, e in zip(reps, exports, strict=True)
        ]
    from sim.experiments.distributed import map_unordered

    days = scenario.horizon_months * scenario.days_per_month
    tag = f"{scenario.name}-{scenario.digest()[:10]}-s{seed}"
    args = [(scenario, seed, r, e) for r, e in zip(reps, exports, strict=True)]
    done: dict[int, ReplicationResult] = {}
    for i, res in map_unordered(client, replicate, args, keys=[f"{tag}-r{r}" for r in reps]):
        done[i] = res
        if progress is not None:
            progress(days)
    return [done[i] for i in range(len(args))]


def run_scenario(
    scenario: Scenario,
    seed: int | None = None,
    replications: int | None = None,
    progress: Callable[[int], object] | None = None,
    export_days: tuple[int, int] | None = None,
    client: Client | None = None,
    precision: Precision | None = None,
) -> RunResult:
    """Run the scenario's replications (defaults from the scenario) and collect them.

    Replication r uses the named random streams of (seed, r): the same seed
    and scenario give identical tables, in sequence or on a cluster; scenarios
    that differ only in prices share their demand draws (common random numbers).
    ``export_days`` = (first day, days) keeps the first replication's requests of
    that window. ``client``: run the replications as dask tasks. ``precision``:
    after the first ``replications`` (at least 2), add batches (one per worker)
    until the stopping rule holds or its cap is reached. ``progress`` is called
    with the number of simulated days just finished.
    """
    seed = scenario.seed if seed is None else seed
    reps = scenario.replications if replications is None else replications
    t0 = time.perf_counter()
    if precision is not None:
        reps = min(max(reps, MIN_REPLICATIONS_FOR_CI), precision.max_replications)
    results = _run_batch(scenario, seed, range(reps), progress, export_days, client)
    if precision is not None:
        batch = 1 if client is None else max(1, sum(client.nthreads().values()))
        while len(results) < precision.max_replications:
            values = np.array([replication_kpis(r)[precision.kpi] for r in results])
            if relative_halfwidth(values) <= precision.rel_halfwidth:
                break
            more = range(len(results), min(len(results) + batch, precision.max_replications))
            results += _run_batch(scenario, seed, more, progress, None, client)
    return RunResult(scenario=scenario, replications=results, wall_s=time.perf_counter() - t0)
