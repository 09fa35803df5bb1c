"""Size GPU pools: the fewest whole replicas that meet every SLO at every month's busy hour.

The answer comes from simulations with the whole demand loop running (renewal, churn driven
by congestion, acquisition), so that the demand a pool size meets is the demand that pool
size leaves. The search:

1. **Pilot.** One replication of the scenario as given. Its busy-hour offered load on each
   day and a sample of each pool's requests (service times, prefill times) feed the analytic
   estimate (:mod:`sim.capacity.queueing`: Erlang C with an M/G/c wait tail, mixed over the
   month's days), one first guess per *cell* (:mod:`sim.capacity.cells`: a pool, or a pool x
   month with ``by_month``) at the month with the most offered load.
2. **Search on simulations.** Every round runs one count vector (each unresolved cell at its
   next probe, resolved cells at their answer) with ``replications`` replications. The
   probes gallop from the guess (+-1, 2, 4 replicas) until a meeting and a failing count are
   known, then bisect. Every replication uses the random streams of (seed, r), so counts
   are compared on the same demand draws (common random numbers).
3. **Verdicts with intervals.** A cell meets a target at a count when the 95% Student-t
   interval of the busy-hour quantile over replications lies at or below the bound, fails
   when it lies above, and is *unsure* otherwise; an unsure count is run again with more
   replications (up to ``max_replications``), then counted as failing (the cautious side)
   and reported with low confidence.
4. **Reuse.** Each count vector is simulated once; a repeated vector adds replications only,
   and the pilot is replication 0 of the scenario's own count vector when it is one.

The answer's tables, schedule and notes are built in :mod:`sim.capacity.answer`.

A disaggregated pool is two pools to the search, its prefill and its decode replicas
(:mod:`sim.capacity.pools`), each judged only on the targets its count moves; they have no
analytic guess, and their probes gallop from the scenario's own counts.

Pools interact only through subscribers (a churned coder leaves every pool), so they are
searched together, one simulation per round for all of them; the final answer is run once
more as a whole and its intervals reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.capacity.answer import answer_table, evaluation_table, procurement
from sim.capacity.cells import UNSURE, Cell, Evaluation, count_of, judge
from sim.capacity.defaults import (
    DEFAULT_MAX_REPLICAS,
    DEFAULT_MAX_REPLICATIONS,
    DEFAULT_REPLICATIONS,
)
from sim.capacity.measure import Measurement, ServiceSample, measure
from sim.capacity.pools import (
    PART_METRICS,
    PoolSpec,
    paid_for,
    paid_gpus_by_month,
    pool_specs,
    with_counts,
)
from sim.capacity.queueing import (
    AnalyticSize,
    PoolLoad,
    SloTarget,
    parse_slo,
    smallest_replicas,
)
from sim.scenario.schema import Scenario

if TYPE_CHECKING:
    from distributed import Client

PILOT_REPLICATIONS = 1
"""Replications of the scenario as given that feed the analytic first guess (its busy-hour
offered load and request sample); the guess needs a level, not an interval."""
PREFILL_MARGIN = 0.05
"""Relative margin by which the pilot's sampled prefill quantile must exceed a TTFT bound
before the target is called unreachable without a search (sampling error of a quantile from
a few thousand requests is a few percent)."""
MAX_ROUNDS = 40
"""Rounds of simulations after which the search stops (a guard; the galloping search over
up to DEFAULT_MAX_REPLICAS needs about 2 log2(256) = 16)."""


class SizingError(ValueError):
    """The sizing question cannot be answered as asked (unknown pool, unreachable target)."""


@dataclass
class Sizing:
    """The answer of :func:`size`: per cell the count, its confidence, and the evidence.

    ``answer`` (one row per cell), ``evaluations`` (one row per count vector x cell), the
    procurement ``schedule`` (by month) and the simulated months spent.
    """

    scenario: Scenario
    targets: list[SloTarget]
    answer: pd.DataFrame
    evaluations: pd.DataFrame
    schedule: dict[str, list[dict[str, int]]]
    orders: pd.DataFrame
    replications_run: int
    simulated_months: int
    wall_s: float
    notes: list[str]


def _cells(
    s: Scenario,
    specs: list[PoolSpec],
    pools: Sequence[str] | None,
    by_month: bool,
    targets: list[SloTarget],
) -> tuple[list[Cell], list[str]]:
    """The cells to size, and notes on the parts of disaggregated pools left as given.

    ``pools`` names pools or parts (``big:decode``); a disaggregated pool's own name means
    both its parts. A part no target judges (sim.capacity.pools.PART_METRICS) keeps the
    scenario's count. SizingError for an unknown name, or when no target judges anything asked.
    """
    by_pool: dict[str, list[PoolSpec]] = {}
    for p in specs:
        by_pool.setdefault(p.pool, []).append(p)
    by_name = {p.name: [p] for p in specs} | by_pool
    chosen = list(pools) if pools else list(by_pool)
    unknown = [p for p in chosen if p not in by_name]
    if unknown:
        raise SizingError(
            f"--pool: unknown pool(s) {', '.join(unknown)} (known: {', '.join(by_name)})"
        )
    asked = list(dict.fromkeys(p for name in chosen for p in by_name[name]))
    sized = [p for p in asked if any(p.judged_on(t.metric) for t in targets)]
    why = {
        p.name: f"{p.name} is judged on {', '.join(sorted(PART_METRICS[str(p.part)]))} only"
        for p in asked
        if p not in sized
    }
    if not sized:
        raise SizingError(
            f"--slo: no target judges {', '.join(chosen)} ({'; '.join(why.values())})"
        )
    notes = [
        f"{p.name}: not sized, as no target judges it ({why[p.name]}); it keeps the"
        f" scenario's {_by_month(paid_gpus_by_month(s, p))} GPUs"
        for p in asked
        if p.name in why
    ]
    months: list[int | None] = list(range(s.horizon_months)) if by_month else [None]
    return [Cell(pool=p, month=m) for p in sized for m in months], notes


def _analytic(
    cell: Cell,
    pilot: list[Measurement],
    samples: dict[str, ServiceSample],
    targets: list[SloTarget],
    cap: int,
) -> tuple[AnalyticSize, PoolLoad] | None:
    """The analytic first guess for a cell, at the busy hour of its most loaded month.

    None without a pilot sample, and for a part of a disaggregated pool: the M/G/c slot
    approximation describes a replica that prefills and decodes, not one side of the pair.
    """
    p = cell.pool
    sample = samples.get(p.pool)
    if sample is None or p.part is not None:
        return None
    load = np.nanmean([m.offered_load_erlangs[:, p.index] for m in pilot], axis=0)
    if not np.isfinite(load).any():
        return None
    month = cell.month if cell.month is not None else int(np.nanargmax(load))
    a = float(load[month])
    if not a > 0:
        return None
    day_load = np.nanmean([m.day_load_erlangs[month, :, p.index] for m in pilot], axis=0)
    shares = day_load / day_load.sum() if day_load.sum() > 0 else np.full(len(day_load), 1.0)
    shares = shares / shares.sum()
    cell.pilot_figures = (
        float(np.nanmean([m.utilisation[month, p.index] for m in pilot])),
        float(np.nanmean([m.peak_utilisation[month, p.index] for m in pilot])),
    )
    # the analytic search counts working replicas; the paid count follows
    working_slots = p.slots_per_replica
    pool_load = PoolLoad(
        arrival_rate_per_s=a / sample.mean_service_s,
        mean_service_s=sample.mean_service_s,
        scv_service=sample.scv_service,
        prefill_values_s=sample.prefill_values_s,
        prefill_weights=np.full(len(sample.prefill_values_s), 1.0 / len(sample.prefill_values_s)),
        slots_per_replica=working_slots,
        gpus_per_replica=p.gpus_per_replica,
        tpot_s=p.tpot_s,
        load_factors=day_load / a,
        load_weights=shares,
    )
    return smallest_replicas(pool_load, targets, max_replicas=cap), pool_load


def size(
    scenario: Scenario,
    slos: Sequence[str | SloTarget],
    *,
    pools: Sequence[str] | None = None,
    by_month: bool = False,
    lead_months: int = 0,
    seed: int | None = None,
    replications: int = DEFAULT_REPLICATIONS,
    max_replications: int = DEFAULT_MAX_REPLICATIONS,
    max_replicas: int = DEFAULT_MAX_REPLICAS,
    client: Client | None = None,
    log: Callable[[str], object] | None = None,
) -> Sizing:
    """Size the scenario's pools for the SLO targets (see the module docstring).

    ``slos``: expressions such as ``"ttft_p95<=1.0"`` (sim.capacity.queueing.parse_slo) or
    SloTarget values; ``pools``: the pools to size (default all; the others keep their
    counts), where a disaggregated pool's name means both its parts (``POOL:prefill``, judged
    on wait, TTFT and end-to-end targets, and ``POOL:decode``, judged on TPOT and end-to-end
    targets; a part no target judges keeps its count) and a part's name that part;
    ``by_month``: a count per month (a procurement schedule) instead of one count;
    ``lead_months``: months between ordering and the cards serving, for the order dates.
    Raises SizingError for unknown pools, bad options, or targets no count up to
    ``max_replicas`` meets.
    """
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    targets = _check_options(slos, replications, max_replications, lead_months, max_replicas)
    seed = scenario.seed if seed is None else seed
    specs = pool_specs(scenario)
    cells, notes = _cells(scenario, specs, pools, by_month, targets)
    _check_tpot(cells, targets)
    months = scenario.horizon_months
    evals: dict[tuple[tuple[str, tuple[int, ...]], ...], Evaluation] = {}
    runner = _Runner(scenario, seed, targets, specs, client)

    # 1. pilot: the scenario as given, one replication
    say(f"pilot: {scenario.name} as given, {PILOT_REPLICATIONS} replication(s)")
    pilot = runner.run_pilot(PILOT_REPLICATIONS)
    _check_prefill(cells, pilot[0].samples or {}, targets)
    for c in cells:
        if c.pool.part is not None:  # no analytic estimate: start from the scenario's count
            c.probe = _own_count(scenario, c, max_replicas)
            notes.append(
                f"{c.label}: no analytic estimate for one side of a disaggregated pool; the"
                f" search started from the scenario's own {c.probe} replica(s)"
            )
            say(f"  {c.label}: first probe {c.probe} replicas, the scenario's own")
            continue
        est = _analytic(c, pilot, pilot[0].samples or {}, targets, max_replicas)
        if est is not None:
            c.guess, c.load = est
        working = 1 if c.guess is None else (c.guess.replicas or max_replicas)
        c.probe = paid_for(working, c.pool, max_replicas)
        if c.guess is not None and c.guess.replicas is not None:
            c.first_guess = c.probe
        say(f"  {c.label}: analytic first guess {c.probe} replicas")
    given = _given_counts(scenario, cells, specs)
    if given is not None:  # the pilot is replication 0 of the scenario's own count vector
        evals[tuple(sorted(given.items()))] = Evaluation(given, list(pilot))

    # 2. search
    for round_ in range(MAX_ROUNDS):
        open_cells = [c for c in cells if not c.done]
        if not open_cells:
            break
        counts = _vector(cells, months)
        ev = evals.setdefault(tuple(sorted(counts.items())), Evaluation(counts))
        verdicts = _settle(ev, open_cells, targets, runner, replications, max_replications, say)
        say(f"round {round_ + 1}: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
        for c in open_cells:
            c.record(count_of(c, counts), verdicts[c.label], max_replicas)
    unreachable = [c.label for c in cells if c.unreachable or c.meets_at is None]
    if unreachable:
        raise SizingError(
            f"unreachable: no count up to {max_replicas} replicas meets"
            f" {', '.join(t.label for t in targets)} for {', '.join(unreachable)}"
            " (raise --max-replicas, or relax the target)"
        )

    # 3. the answer, run as a whole
    final = _vector(cells, months, answer=True)
    key = tuple(sorted(final.items()))
    ev = evals.setdefault(key, Evaluation(final))
    if len(ev.measurements) < replications:
        say(f"answer: {_describe(final)} x {replications} replications")
        ev.measurements += runner.run(final, range(len(ev.measurements), replications))
    ev.judged = True
    answer, disagreements = answer_table(cells, evals, final, targets)
    table = evaluation_table(evals, cells, targets)
    schedule, orders = procurement(final, specs, lead_months)
    return Sizing(
        scenario=with_counts(scenario, final, specs),
        targets=targets,
        answer=answer,
        evaluations=table,
        schedule=schedule,
        orders=orders,
        replications_run=runner.replications_run,
        simulated_months=runner.replications_run * months,
        wall_s=time.perf_counter() - t0,
        notes=notes + disagreements,
    )


def _given_counts(
    s: Scenario, cells: list[Cell], specs: list[PoolSpec]
) -> dict[str, tuple[int, ...]] | None:
    """The scenario's own counts as a count vector of the sized pools, if it is one.

    It is when every sized pool (or part) pays for whole replicas in every month (and, sized
    over the whole horizon, the same number each month): then ``with_counts`` of it is the
    scenario itself, and the pilot's replications are that vector's.
    """
    out: dict[str, tuple[int, ...]] = {}
    for c in cells:
        p = c.pool
        col = paid_gpus_by_month(s, p)
        if any(v % p.gpus_per_replica for v in col):
            return None
        if c.month is None and len(set(col)) != 1:
            return None
        out[p.name] = tuple(v // p.gpus_per_replica for v in col)
    return out if with_counts(s, out, specs).digest() == s.digest() else None


def _check_options(
    slos: Sequence[str | SloTarget],
    replications: int,
    max_replications: int,
    lead_months: int,
    max_replicas: int,
) -> list[SloTarget]:
    """The parsed SLO targets; SizingError naming the option that is unusable."""
    targets = []
    for t in slos:
        try:
            targets.append(t if isinstance(t, SloTarget) else parse_slo(t))
        except ValueError as e:
            raise SizingError(f"--slo: {e}") from None
    if not targets:
        raise SizingError("--slo: give at least one target, e.g. ttft_p95<=1.0")
    if not 1 <= replications <= max_replications:
        raise SizingError("--replications must be between 1 and --max-replications")
    if lead_months < 0:
        raise SizingError("--lead-months must be >= 0")
    if max_replicas < 1:
        raise SizingError("--max-replicas must be >= 1")
    return targets


def _own_count(s: Scenario, c: Cell, cap: int) -> int:
    """Whole replicas the scenario pays for in the cell's month (whole horizon: its most)."""
    gpus = paid_gpus_by_month(s, c.pool)
    n = max(gpus) if c.month is None else gpus[c.month]
    return min(max(n // c.pool.gpus_per_replica, 1), cap)


def _check_tpot(cells: list[Cell], targets: list[SloTarget]) -> None:
    """Refuse, before any simulation, a TPOT target a slot pool misses at every size.

    Only ``serving: slots`` pools decode at the catalog's constant TPOT; a batched pool's
    (and a decode part's) TPOT follows its batch and its step times, so no constant refuses it.
    """
    for c in cells:
        if c.pool.batched:
            continue
        for t in targets:
            if t.metric == "tpot" and c.pool.tpot_s > t.bound_s:
                raise SizingError(
                    f"unreachable: pool {c.pool.name} decodes at {c.pool.tpot_s:.4g} s per"
                    f" token, above {t.label} at any size (TPOT does not fall with more"
                    " replicas in this serving model)"
                )


def _check_prefill(
    cells: list[Cell], samples: dict[str, ServiceSample], targets: list[SloTarget]
) -> None:
    """Refuse a TTFT target below the prefill time alone (TTFT = wait + prefill >= prefill).

    Read from the pilot's request sample, with PREFILL_MARGIN for its sampling error. Only
    for ``serving: slots`` pools, which prefill at the replica's full speed whatever the load:
    a batched pool's prefill (a disaggregated pool's too) shares its steps with the batch, so
    the pilot's prefill times at the scenario's count bound nothing at other counts.
    """
    for c in cells:
        sample = samples.get(c.pool.name)
        if sample is None or c.pool.batched:
            continue
        for t in targets:
            if t.metric != "ttft":
                continue
            q = float(np.quantile(sample.prefill_values_s, t.quantile))
            if q > t.bound_s * (1.0 + PREFILL_MARGIN):
                raise SizingError(
                    f"unreachable: in pool {c.pool.name} the prefill alone takes {q:.3g} s at"
                    f" p{t.quantile * 100:g} ({sample.requests} sampled requests), above"
                    f" {t.label} at any size: more replicas shorten queues, not prefill"
                )


def _settle(
    ev: Evaluation,
    cells: list[Cell],
    targets: list[SloTarget],
    runner: _Runner,
    replications: int,
    max_replications: int,
    say: Callable[[str], object],
) -> dict[str, str]:
    """Verdicts of the cells at ``ev``, running or adding replications while one is unsure.

    A finished evaluation is reused as it is; an unsure verdict doubles the replications up to
    ``max_replications``, after which it stands (and counts as a failure).
    """
    while True:
        have = len(ev.measurements)
        enough = have >= replications
        verdicts = {c.label: judge(ev.measurements, c, targets)[0] for c in cells} if enough else {}
        if enough and (UNSURE not in verdicts.values() or have >= max_replications):
            ev.judged = True
            return verdicts
        need = replications - have if not enough else min(have, max_replications - have)
        say(f"  simulating {_describe(ev.counts)}: replications {have}..{have + need - 1}")
        ev.measurements += runner.run(ev.counts, range(have, have + need))


class _Runner:
    """Runs count vectors' replications, in process or on dask, counting what it ran."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        targets: list[SloTarget],
        specs: list[PoolSpec],
        client: Client | None,
    ):
        self.scenario, self.seed, self.targets = scenario, seed, targets
        self.specs, self.client = specs, client
        self.replications_run = 0

    def _map(self, s: Scenario, reps: range, pilot: bool) -> list[Measurement]:
        args = [(s, self.seed, r, self.targets, pilot and r == 0) for r in reps]
        self.replications_run += len(args)
        if self.client is None:
            return [measure(*a) for a in args]
        from sim.experiments.distributed import map_unordered

        tag = f"size-{s.digest()[:10]}-s{self.seed}"
        done = dict(map_unordered(self.client, measure, args, keys=[f"{tag}-r{r}" for r in reps]))
        return [done[i] for i in range(len(args))]

    def run_pilot(self, replications: int) -> list[Measurement]:
        return self._map(self.scenario, range(replications), pilot=True)

    def run(self, counts: dict[str, tuple[int, ...]], reps: range) -> list[Measurement]:
        return self._map(with_counts(self.scenario, counts, self.specs), reps, pilot=False)


def _vector(cells: list[Cell], months: int, answer: bool = False) -> dict[str, tuple[int, ...]]:
    """Replicas by month of every sized pool: open cells at their probe, done ones at the answer."""
    out: dict[str, list[int]] = {}
    for c in cells:
        n = (c.meets_at or c.probe) if (c.done or answer) else c.probe
        row = out.setdefault(c.pool.name, [n] * months)
        if c.month is None:
            out[c.pool.name] = [n] * months
        else:
            row[c.month] = n
    return {k: tuple(v) for k, v in out.items()}


def _describe(counts: dict[str, tuple[int, ...]]) -> str:
    """Counts for a log line: ``pool=n`` or ``pool=n0/n1/...`` by month."""
    return ", ".join(f"{pool}={_by_month(v)}" for pool, v in counts.items()) + " replicas"


def _by_month(v: Sequence[int]) -> str:
    """``n`` when a count is the same every month, else ``n0/n1/...``."""
    return str(v[0]) if len(set(v)) == 1 else "/".join(map(str, v))
