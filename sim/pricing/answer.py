"""The tuning answer as tables and words: trials, re-evaluation, Pareto front, the choice.

Every figure is a mean over a point's replications with its 95% Student-t interval
(:func:`sim.results.kpis.mean_ci`). Replication r of every point draws from the random streams
of (seed, r) (common random numbers), so the difference between two points is taken
replication by replication and its interval is that of the paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim.pricing.journal import TRIAL, Journal
from sim.pricing.objectives import (
    METRICS,
    PARETO_METRICS,
    Constraint,
    Objective,
)
from sim.pricing.space import Parameter, Point
from sim.results.kpis import mean_ci
from sim.scenario.schema import Scenario

ROLE_INCUMBENT = "incumbent"
"""Role of trial 0, the scenario as given."""
ROLE_SEARCH = "search"
"""Role of the points the sampler asked for."""
BETTER = "better"
"""Answer status: the chosen point beats the scenario as given, its paired interval above 0."""
NOT_SIGNIFICANT = "not_significant"
"""Answer status: the chosen point's mean is higher, but the paired interval includes 0."""
INCUMBENT_BEST = "incumbent_best"
"""Answer status: no re-evaluated point beats the scenario as given on fresh replications."""
RESTORES_FEASIBILITY = "restores_feasibility"
"""Answer status: the scenario as given breaks a constraint and the chosen point meets them."""
INFEASIBLE = "infeasible"
"""Answer status: no re-evaluated point meets every constraint (the scenario is kept)."""


def metric_values(journal: Journal, point: Point, reps: Sequence[int], metric: str) -> np.ndarray:
    """The metric's value in each of ``reps`` (NaN where a replication is missing)."""
    out = []
    for r in reps:
        m = journal.get(point, r)
        out.append(math.nan if m is None else float(m.get(metric, math.nan)))
    return np.array(out, dtype=float)


def figure(journal: Journal, point: Point, reps: Sequence[int], metric: str) -> tuple[float, ...]:
    """Mean and 95% interval of a metric over ``reps``."""
    return mean_ci(metric_values(journal, point, reps, metric))


def violation(
    journal: Journal, point: Point, reps: Sequence[int], constraints: Sequence[Constraint]
) -> float:
    """Sum of the constraints' positive violations at the point (0: feasible)."""
    total = 0.0
    for c in constraints:
        v = c.violation(figure(journal, point, reps, c.metric)[0])
        total += max(v, 0.0)
    return total


def is_feasible(
    journal: Journal, point: Point, reps: Sequence[int], constraints: Sequence[Constraint]
) -> bool:
    """True when the point's mean over ``reps`` meets every constraint."""
    return all(c.holds(figure(journal, point, reps, c.metric)[0]) for c in constraints)


def shown_metrics(objective: Objective, constraints: Sequence[Constraint]) -> list[str]:
    """Metrics the tables show: the objective's, the constraints', the Pareto axes."""
    return list(
        dict.fromkeys([objective.metric, *(c.metric for c in constraints), *PARETO_METRICS])
    )


def _figures(
    journal: Journal, point: Point, reps: Sequence[int], metrics: Sequence[str]
) -> dict[str, float]:
    row: dict[str, float] = {}
    for m in metrics:
        mean, lo, hi = figure(journal, point, reps, m)
        row[m], row[f"{m} ci95_low"], row[f"{m} ci95_high"] = mean, lo, hi
    return row


def trials_table(
    points: Sequence[Point],
    journal: Journal,
    objective: Objective,
    constraints: Sequence[Constraint],
    replications: int,
) -> pd.DataFrame:
    """One row per point of the search (on the search's replications 0..R-1)."""
    reps = range(replications)
    rows = []
    for p in points:
        values = metric_values(journal, p, reps, objective.metric)
        rows.append(
            {
                TRIAL: p.trial,
                "role": p.role,
                **p.values,
                "replications": int(np.isfinite(values).sum()),
                **{f"{objective.metric} r{r}": v for r, v in zip(reps, values, strict=True)},
                **_figures(journal, p, reps, shown_metrics(objective, constraints)),
                "feasible": p.error is None and is_feasible(journal, p, reps, constraints),
                "violation": violation(journal, p, reps, constraints) if p.error is None else None,
                "error": p.error or "",
            }
        )
    table = pd.DataFrame(rows)
    table["pareto"] = table[TRIAL].isin(pareto_front(table)[TRIAL])
    return table


def pareto_front(trials: pd.DataFrame) -> pd.DataFrame:
    """Points that no other point beats on both axes: more gross margin and less monthly churn.

    From the search's figures (every point on the same replications); points without a value
    on either axis are left out. Sorted by churn.
    """
    margin, churn = PARETO_METRICS
    ok = trials[
        np.isfinite(trials[margin].astype(float)) & np.isfinite(trials[churn].astype(float))
    ]
    m = ok[margin].to_numpy(dtype=float)
    c = ok[churn].to_numpy(dtype=float)
    keep = []
    for i in range(len(ok)):
        dominated = ((m >= m[i]) & (c <= c[i]) & ((m > m[i]) | (c < c[i]))).any()
        keep.append(not dominated)
    front = ok[np.array(keep, dtype=bool)] if len(ok) else ok
    return front.sort_values([churn, margin], ascending=[True, False]).reset_index(drop=True)


def search_ranking(
    points: Sequence[Point],
    journal: Journal,
    objective: Objective,
    constraints: Sequence[Constraint],
    replications: int,
) -> list[Point]:
    """Distinct search points, best first (the scenario as given is left out).

    Feasible ones by mean objective, then the others by how little they violate the constraints.
    """
    reps = range(replications)
    seen = {p.key for p in points if p.role == ROLE_INCUMBENT}
    ranked = []
    for p in points:
        if p.error is not None or p.key in seen:
            continue
        seen.add(p.key)
        mean = figure(journal, p, reps, objective.metric)[0]
        if not math.isfinite(mean):
            continue
        v = violation(journal, p, reps, constraints)
        ranked.append((v > 0, v, -mean, p.trial, p))
    ranked.sort(key=lambda t: t[:4])
    return [t[-1] for t in ranked]


def reevaluation_table(
    candidates: Sequence[Point],
    incumbent: Point,
    journal: Journal,
    objective: Objective,
    constraints: Sequence[Constraint],
    fresh: Sequence[int],
    chosen: Point | None,
) -> pd.DataFrame:
    """The scenario as given and the best few on the fresh replications, with paired differences."""
    base = metric_values(journal, incumbent, fresh, objective.metric)
    rows = []
    for p in [incumbent, *candidates]:
        values = metric_values(journal, p, fresh, objective.metric)
        d, dlo, dhi = mean_ci(values - base)
        rows.append(
            {
                TRIAL: p.trial,
                "role": p.role,
                **p.values,
                "replications": int(np.isfinite(values).sum()),
                "first_replication": fresh[0],
                **_figures(journal, p, fresh, shown_metrics(objective, constraints)),
                "difference": d,
                "difference ci95_low": dlo,
                "difference ci95_high": dhi,
                "feasible": is_feasible(journal, p, fresh, constraints),
                "chosen": chosen is not None and p.key == chosen.key,
            }
        )
    return pd.DataFrame(rows)


def _num(x: float) -> str:
    """A figure for a sentence: thousands with separators, small numbers to 4 digits."""
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _change(params: Sequence[Parameter], point: Point, incumbent: Point) -> str:
    parts = []
    for p in params:
        new, old = point.values[p.path], incumbent.values[p.path]
        if new != old:
            parts.append(f"{p.path} = {_num(float(new))} (as given: {_num(float(old))})")
    return ", ".join(parts) or "the values as given"


@dataclass
class Answer:
    """The choice and the evidence for it (tune.json's ``answer``)."""

    status: str
    chosen: Point
    reason: str
    record: dict[str, Any] = field(default_factory=dict)


def decide(
    candidates: Sequence[Point],
    incumbent: Point,
    journal: Journal,
    objective: Objective,
    constraints: Sequence[Constraint],
    params: Sequence[Parameter],
    fresh: Sequence[int],
    currency: str,
) -> Answer:
    """Choose among the scenario as given and the best few, on the fresh replications only.

    The fresh replications are draws the search never saw, so a point that led the search by
    luck (the winner's curse) is judged again on equal terms. The choice is the feasible point
    with the highest mean; the evidence is its paired difference against the scenario as
    given, with its 95% interval.
    """
    pool = [incumbent, *candidates]
    feasible = [p for p in pool if is_feasible(journal, p, fresh, constraints)]
    means = {p.trial: figure(journal, p, fresh, objective.metric)[0] for p in pool}
    chosen = max(feasible, key=lambda p: (means[p.trial], -p.trial)) if feasible else incumbent
    base = metric_values(journal, incumbent, fresh, objective.metric)
    d, dlo, dhi = mean_ci(metric_values(journal, chosen, fresh, objective.metric) - base)
    unit = METRICS[objective.metric][0].replace("currency", currency)
    n = len(fresh)
    incumbent_ok = incumbent in feasible
    evidence = (
        f"{_num(d)} {unit} [{_num(dlo)}, {_num(dhi)}] in {objective.words}, paired over {n}"
        f" fresh replications (the same random draws for both)"
    )
    if not feasible:
        status = INFEASIBLE
        worst = ", ".join(
            f"{c.label} ({_num(figure(journal, incumbent, fresh, c.metric)[0])})"
            for c in constraints
        )
        reason = (
            f"No point re-evaluated meets every constraint (as given: {worst}); the scenario"
            " is kept. Widen the ranges, relax a constraint, or raise --budget."
        )
    elif chosen is incumbent:
        status = INCUMBENT_BEST
        reason = (
            f"None of the {len(candidates)} best points of the search beats the scenario as given"
            f" on fresh replications: keep it ({objective.words}"
            f" {_num(means[incumbent.trial])} {unit})."
        )
    elif not incumbent_ok:
        status = RESTORES_FEASIBILITY
        broken = ", ".join(
            c.label
            for c in constraints
            if not c.holds(figure(journal, incumbent, fresh, c.metric)[0])
        )
        reason = (
            f"The scenario as given breaks {broken}; {_change(params, chosen, incumbent)} meets"
            f" every constraint, changing {evidence}."
        )
    elif math.isfinite(dlo) and dlo > 0:
        status = BETTER
        reason = (
            f"{_change(params, chosen, incumbent)} raises {evidence}; the interval lies above 0,"
            " so the gain is real at 95% confidence."
        )
    else:
        status = NOT_SIGNIFICANT
        reason = (
            f"{_change(params, chosen, incumbent)} has the highest mean, {evidence}; the interval"
            " includes 0, so it is not shown to beat the scenario as given (more"
            " --final-replications would narrow it)."
        )
    notes = []
    for c in constraints:
        mean, lo, hi = figure(journal, chosen, fresh, c.metric)
        if c.holds(mean) and not (c.holds(lo) and c.holds(hi)):
            notes.append(
                f"{c.label} holds on the mean ({_num(mean)}) but its 95% interval"
                f" [{_num(lo)}, {_num(hi)}] crosses the bound"
            )
    if notes:
        reason += " Note: " + "; ".join(notes) + "."
    record = {
        "status": status,
        "trial": chosen.trial,
        "values": chosen.values,
        "incumbent": incumbent.values,
        "objective": objective.name,
        "metric": objective.metric,
        "unit": unit,
        "mean": means[chosen.trial],
        "incumbent_mean": means[incumbent.trial],
        "difference": d,
        "difference_ci95_low": dlo,
        "difference_ci95_high": dhi,
        "pairs": int(np.isfinite(base).sum()),
        "first_fresh_replication": fresh[0],
        "constraints": [
            dict(
                zip(
                    ("constraint", "mean", "ci95_low", "ci95_high"),
                    (c.label, *figure(journal, chosen, fresh, c.metric)),
                    strict=True,
                ),
                holds=c.holds(figure(journal, chosen, fresh, c.metric)[0]),
            )
            for c in constraints
        ],
        "reason": reason,
    }
    return Answer(status, chosen, reason, record)


@dataclass
class Tuning:
    """What :func:`sim.pricing.tune.tune` found: the tables, the answer, the cost.

    ``trials`` (one row per point of the search), ``reevaluation`` (the scenario as given and
    the best few on fresh replications), ``pareto`` (gross margin against churn),
    ``replications`` (the journal: every simulated replication), ``answer`` (tune.json's) and
    ``scenario`` (the scenario at the chosen point), ``notes`` (warnings on the question, e.g.
    a searched fee an event overrides).
    """

    base: Scenario
    scenario: Scenario
    objective: Objective
    constraints: list[Constraint]
    parameters: list[Parameter]
    question: dict[str, Any]
    budget: int
    trials: pd.DataFrame
    reevaluation: pd.DataFrame
    pareto: pd.DataFrame
    replications: pd.DataFrame
    answer: dict[str, Any]
    simulations_run: int
    simulations_reused: int
    wall_s: float
    sampler: str = ""
    notes: list[str] = field(default_factory=list)
