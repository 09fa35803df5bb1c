"""What ``tune`` maximises and what it must respect: objectives, constraints, one measurement.

An objective is a headline KPI of :data:`sim.results.kpis.KPIS` (or one of
:data:`EXTRA_METRICS`), always maximised; a constraint bounds any of those metrics' mean over a
point's replications (``churn_rate_monthly<=0.06``). :func:`measure` runs one replication on a
worker and returns every metric, a few hundred bytes, so the dask workers send little back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sim.engine.replication import ReplicationResult
from sim.experiments.runner import replicate
from sim.results.kpis import KPIS, replication_kpis
from sim.scenario.schema import Scenario

EXTRA_METRICS: dict[str, tuple[str, str]] = {
    "subscribers_served": (
        "subscribers",
        "subscribers holding a plan at any time of the horizon: those at the start plus every"
        " sign-up",
    ),
    "ltv": (
        "currency/subscriber",
        "gross margin per subscriber served over the horizon: gross_margin / subscribers_served"
        " (a lifetime value cut at the horizon, undiscounted)",
    ),
}
"""Metrics tune adds to the headline KPIs, name -> (unit, description)."""
METRICS: dict[str, tuple[str, str]] = {**KPIS, **EXTRA_METRICS}
"""Every metric an objective or a constraint may name, name -> (unit, description)."""


@dataclass(frozen=True)
class Objective:
    """An objective of ``--objective``: the metric it maximises, in words."""

    name: str
    metric: str
    words: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("margin", "gross_margin", "gross margin (revenue - GPU cost) over the horizon"),
        Objective("revenue", "revenue_total", "revenue (fees, overage, top-ups) over the horizon"),
        Objective("subscribers", "subscribers_end", "active subscribers at the end of the horizon"),
        Objective("ltv", "ltv", "gross margin per subscriber served over the horizon"),
    )
}
"""``--objective`` choices, each maximised."""
PARETO_METRICS = ("gross_margin", "churn_rate_monthly")
"""The Pareto front's two axes: gross margin (more is better) and monthly churn (less is)."""
CONSTRAINT_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*([^\s%]+)\s*(%?)\s*$")
"""``METRIC<=VALUE`` or ``METRIC>=VALUE``; VALUE may end in % (a share given in percent)."""
NEEDS_RENEWALS = ("churn_rate_monthly",)
"""Metrics without a value unless subscribers reach a renewal (a horizon of 2 months or more)."""


class TuneError(ValueError):
    """The tuning question cannot be asked as given (unknown metric, bad range or option)."""


@dataclass(frozen=True)
class Constraint:
    """``metric op bound`` on the mean of a point's replications (op ``<=`` or ``>=``)."""

    metric: str
    op: str
    bound: float

    @property
    def label(self) -> str:
        """The constraint as written on the command line: ``churn_rate_monthly<=0.06``."""
        return f"{self.metric}{self.op}{self.bound:g}"

    def holds(self, mean: float) -> bool:
        """True when the mean meets the bound (a metric without a value does not)."""
        if not math.isfinite(mean):
            return False
        return mean <= self.bound if self.op == "<=" else mean >= self.bound

    def violation(self, mean: float) -> float:
        """How far the mean is past the bound, relative to |bound| (<= 0: met; inf: no value).

        Optuna's constrained TPE ranks infeasible points by the sum of their positive
        violations, so the constraints are put on one dimensionless scale.
        """
        if not math.isfinite(mean):
            return math.inf
        gap = mean - self.bound if self.op == "<=" else self.bound - mean
        return gap / abs(self.bound) if self.bound != 0 else gap


def parse_constraint(text: str) -> Constraint:
    """Parse ``METRIC<=VALUE`` or ``METRIC>=VALUE``; TuneError naming the known metrics."""
    m = CONSTRAINT_PATTERN.match(text)
    if m is None:
        raise TuneError(
            f"--constraint '{text}': expected METRIC<=VALUE or METRIC>=VALUE,"
            " e.g. churn_rate_monthly<=0.06"
        )
    metric, op, value, percent = m.groups()
    if metric not in METRICS:
        raise TuneError(
            f"--constraint '{text}': unknown metric '{metric}' (known: {', '.join(METRICS)})"
        )
    try:
        bound = float(value) / (100.0 if percent else 1.0)
    except ValueError:
        raise TuneError(f"--constraint '{text}': '{value}' is not a number") from None
    if not math.isfinite(bound):
        raise TuneError(f"--constraint '{text}': the bound must be a finite number")
    return Constraint(metric, op, bound)


def objective_of(name: str) -> Objective:
    """The objective called ``name``; TuneError naming the known ones."""
    if name not in OBJECTIVES:
        raise TuneError(f"--objective: unknown objective '{name}' (known: {', '.join(OBJECTIVES)})")
    return OBJECTIVES[name]


def metrics_of(r: ReplicationResult) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one replication."""
    k = replication_kpis(r)
    monthly = r.acc.monthly
    served = float(monthly["subscribers_start"][0].sum() + monthly["new"].sum())
    k["subscribers_served"] = served
    k["ltv"] = k["gross_margin"] / served if served > 0 else math.nan
    return k


def measure(scenario: Scenario, seed: int, replication: int) -> dict[str, float]:
    """Run replication ``replication`` of ``scenario`` and return its metrics (a dask task)."""
    return metrics_of(replicate(scenario, seed, replication))
