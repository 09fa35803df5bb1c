"""Tune scenario fields for an objective under constraints, coping with simulation noise.

The search is optuna's TPE sampler (seeded, with constraints) driven by ask-and-tell; this
module only evaluates the points it asks for:

1. **The scenario as given** (the incumbent, trial 0) is simulated first; when its values lie
   in the ranges the sampler is told it as its first trial.
2. **Search.** Points are asked ``batch`` at a time and each is simulated on replications
   0..R-1, replication r of every point on the random streams of (seed, r): common random
   numbers, so two points differ by their fields, not by their luck. The sampler is told each
   point's mean objective and its constraints' relative violations (sim.pricing.objectives).
3. **Re-evaluation.** The best few search points (feasible first, by mean) and the incumbent
   are simulated again on F fresh replications R..R+F-1 (new draws, the same at every point),
   so a point that led the search by luck (the winner's curse) is judged again; the answer is
   chosen on these only and reported as a paired difference against the incumbent with its
   95% interval (sim.pricing.answer).

Replications run on a dask cluster when a client is given (sim.experiments.distributed),
each finished one going to the journal (sim.pricing.journal) at once; a tune run again with
``resume`` replays the seeded sampler and takes every replication the journal holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.pricing import journal as jr
from sim.pricing.answer import (
    ROLE_INCUMBENT,
    ROLE_SEARCH,
    Tuning,
    decide,
    figure,
    pareto_front,
    reevaluation_table,
    search_ranking,
    trials_table,
)
from sim.pricing.defaults import (
    DEFAULT_BATCH,
    DEFAULT_BUDGET,
    DEFAULT_FINAL_REPLICATIONS,
    DEFAULT_REPLICATIONS,
    DEFAULT_TOP,
)
from sim.pricing.objectives import (
    PARETO_METRICS,
    Constraint,
    Objective,
    TuneError,
    measure,
)
from sim.pricing.question import prepare
from sim.pricing.sampler import (
    distributions,
    make_sampler,
    on_grid,
    quiet_optuna,
    startup_trials,
    tell,
)
from sim.pricing.space import (
    Parameter,
    Point,
    edge_notes,
    incumbent_values,
    point_key,
    scenario_at,
    shadowing_notes,
)
from sim.results.atomic import atomic_file
from sim.scenario.errors import ScenarioError
from sim.scenario.schema import Scenario

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client


class _Evaluator:
    """Simulates points' replications (journal first), in process or on the dask cluster."""

    def __init__(
        self,
        base: Scenario,
        seed: int,
        journal: jr.Journal,
        client: Client | None,
        say: Callable[[str], object],
    ):
        self.base, self.seed, self.journal, self.client, self.say = base, seed, journal, client, say
        self.run_count = 0
        self.reused = 0

    def run(self, points: Sequence[Point], reps: Sequence[int]) -> None:
        """Make sure every valid point has every replication of ``reps`` in the journal."""
        todo: dict[tuple[tuple[float, ...], int], tuple[Point, int]] = {}
        for p in points:
            if p.error is not None:
                continue
            for r in reps:
                if self.journal.get(p, r) is None:
                    todo.setdefault((p.key, r), (p, r))
                elif (p.key, r) not in todo:
                    self.reused += 1
        if not todo:
            return
        tasks = list(todo.values())
        scenarios = {p.key: scenario_at(self.base, p.values) for p, _ in tasks}
        args = [(scenarios[p.key], self.seed, r) for p, r in tasks]
        self.run_count += len(args)
        if self.client is None:
            results: Iterator[tuple[int, dict[str, float]]] = (
                (i, measure(*a)) for i, a in enumerate(args)
            )
        else:
            from sim.experiments.distributed import map_unordered

            keys = [f"tune-{scenarios[p.key].digest()[:12]}-s{self.seed}-r{r}" for p, r in tasks]
            results = map_unordered(self.client, measure, args, keys=keys)
        for i, metrics in results:
            p, r = tasks[i]
            self.journal.add(p.trial, p.values, r, metrics)
            self.journal.flush()


def _point(
    base: Scenario, params: Sequence[Parameter], trial: int, role: str, values: dict[str, Any]
) -> Point:
    """A point with its identity; ``error`` when the scenario does not validate there."""
    error = None
    try:
        scenario_at(base, values)
    except ScenarioError as e:
        error = "; ".join(f"{w}: {m}" for w, m in e.problems)
    return Point(trial, role, values, point_key(params, values), error)


def tune(
    scenario: Scenario,
    vary: Sequence[str] | Mapping[str, tuple[float, float]],
    *,
    objective: str = "margin",
    constraints: Sequence[str | Constraint] = (),
    budget: int = DEFAULT_BUDGET,
    replications: int = DEFAULT_REPLICATIONS,
    final_replications: int = DEFAULT_FINAL_REPLICATIONS,
    top: int = DEFAULT_TOP,
    batch: int = DEFAULT_BATCH,
    seed: int | None = None,
    client: Client | None = None,
    out: Path | None = None,
    resume: bool = False,
    plots: bool = True,
    log: Callable[[str], object] | None = None,
) -> Tuning:
    """Search the fields of ``vary`` for the best ``objective`` meeting ``constraints``.

    ``vary``: ``PATH=LOW..HIGH[:STEP]`` texts or a mapping path -> (low, high);
    ``objective``: margin, revenue, subscribers or ltv (sim.pricing.objectives.OBJECTIVES);
    ``constraints``: ``METRIC<=VALUE`` / ``METRIC>=VALUE`` on a point's mean; ``budget``:
    points searched besides the scenario as given; ``replications``: per point in the search;
    ``final_replications``: fresh ones for the ``top`` best and the scenario as given;
    ``batch``: points asked at once (simulated in parallel on ``client``); ``seed``: of the
    simulations and the sampler (default the scenario's). With ``out`` the journal is kept
    there as replications finish and the complete tune folder replaces it at the end
    (sim.pricing.output); ``resume`` continues a tune folder of the same question. Raises
    TuneError, before anything is simulated or written, for a question it cannot ask.
    """
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    ask = prepare(
        scenario,
        vary,
        objective=objective,
        constraints=constraints,
        budget=budget,
        replications=replications,
        final_replications=final_replications,
        top=top,
        batch=batch,
        seed=seed,
    )
    goal, cons, params, seed, q = (
        ask.objective,
        ask.constraints,
        ask.parameters,
        ask.seed,
        ask.record,
    )
    journal = jr.Journal(params, out)
    if out is not None:
        jr.check_folder(out, q, resume)
        reused = journal.load()
        if reused:
            say(f"resume: {reused} replications in the journal of {out}")
        atomic_file(Path(out) / jr.TUNE_JSON, jr.json_text(jr.manifest(q, jr.STATUS_RUNNING)))
    ev = _Evaluator(scenario, seed, journal, client, say)
    search = range(replications)
    incumbent = _point(scenario, params, 0, ROLE_INCUMBENT, incumbent_values(scenario, params))
    say(f"trial 0: {scenario.name} as given, {replications} replication(s)")
    ev.run([incumbent], search)
    found = _search(scenario, params, goal, cons, (budget, batch, seed), search, ev, say)
    points = [incumbent, *found]
    ranked = search_ranking(points, journal, goal, cons, replications)
    candidates = ranked[:top]
    fresh = list(range(replications, replications + final_replications))
    say(
        f"re-evaluating the scenario as given and {len(candidates)} best point(s) on"
        f" {final_replications} fresh replications ({fresh[0]}..{fresh[-1]})"
    )
    ev.run([incumbent, *candidates], fresh)
    answer = decide(candidates, incumbent, journal, goal, cons, params, fresh, scenario.currency)
    trials = trials_table(points, journal, goal, cons, replications)
    result = Tuning(
        base=scenario,
        scenario=scenario_at(scenario, answer.chosen.values),
        objective=goal,
        constraints=cons,
        parameters=params,
        question=q,
        budget=budget,
        trials=trials,
        reevaluation=reevaluation_table(
            candidates, incumbent, journal, goal, cons, fresh, answer.chosen
        ),
        pareto=pareto_front(trials),
        replications=journal.table(),
        answer=answer.record,
        simulations_run=ev.run_count,
        simulations_reused=ev.reused,
        wall_s=time.perf_counter() - t0,
        sampler=f"optuna TPESampler(seed={seed}, n_startup_trials={startup_trials(budget)},"
        " multivariate=True, constant_liar=True)",
        notes=shadowing_notes(scenario, params) + _edge(trials, params, answer.chosen),
    )
    if out is not None:
        from sim.pricing.output import write_tune

        write_tune(result, Path(out), plot=plots)
    return result


def _edge(trials: pd.DataFrame, params: Sequence[Parameter], chosen: Point) -> list[str]:
    """Edge warnings (sim.pricing.space.edge_notes) from the feasible points of the search."""
    ok = trials[(trials["role"] == ROLE_SEARCH) & trials["feasible"].astype(bool)]
    searched = ok[[p.path for p in params]].to_dict(orient="records")
    return edge_notes(params, searched, chosen.values, chosen.role == ROLE_INCUMBENT)


def _search(
    base: Scenario,
    params: Sequence[Parameter],
    goal: Objective,
    cons: Sequence[Constraint],
    plan: tuple[int, int, int],
    reps: range,
    ev: _Evaluator,
    say: Callable[[str], object],
) -> list[Point]:
    """Ask, simulate and tell the search's points; the points in order.

    ``plan`` is (budget, batch, seed): ``budget`` points, ``batch`` at a time, from a sampler
    seeded with ``seed``, each simulated on ``reps``.
    """
    import optuna

    budget, batch, seed = plan
    with quiet_optuna():
        study = optuna.create_study(
            direction="maximize", sampler=make_sampler(seed, budget, bool(cons))
        )
        dists = distributions(params)
        given = incumbent_values(base, params)
        if on_grid(params, given):  # tell the sampler what the scenario as given scores
            study.enqueue_trial(dict(given))
            trial = study.ask(dists)
            incumbent = _point(base, params, 0, ROLE_INCUMBENT, given)
            tell(study, trial, incumbent, ev.journal, goal, cons, reps)
        points: list[Point] = []
        while len(points) < budget:
            asked = [study.ask(dists) for _ in range(min(batch, budget - len(points)))]
            batch_points = [
                _point(
                    base,
                    params,
                    len(points) + i + 1,
                    ROLE_SEARCH,
                    {p.path: p.value(t.params[p.path]) for p in params},
                )
                for i, t in enumerate(asked)
            ]
            ev.run(batch_points, reps)
            for t, p in zip(asked, batch_points, strict=True):
                tell(study, t, p, ev.journal, goal, cons, reps)
            points += batch_points
            say(_progress(points, budget, ev, goal, cons, reps))
    return points


def _progress(
    points: Sequence[Point],
    budget: int,
    ev: _Evaluator,
    goal: Objective,
    cons: Sequence[Constraint],
    reps: range,
) -> str:
    """One log line after a batch: points done, the best feasible mean so far."""
    best = search_ranking(points, ev.journal, goal, cons, len(reps))
    text = f"searched {len(points)}/{budget} points ({ev.run_count} simulated, {ev.reused} reused)"
    if best:
        b = best[0]
        values = ", ".join(f"{k}={v:g}" for k, v in b.values.items())
        mean = figure(ev.journal, b, reps, goal.metric)[0]
        text += f"; best so far trial {b.trial}: {values} -> {goal.metric} {mean:,.4g}"
    return text


__all__ = ["PARETO_METRICS", "TuneError", "Tuning", "tune"]
