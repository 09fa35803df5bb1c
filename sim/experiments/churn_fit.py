"""Churn calibration: fit each segment's ``churn_intercept`` to a target monthly churn.

The quantity fitted is the one the product reports: a segment's *monthly churn* is, for each
calendar month with renewal decisions, churned / renewal decisions of that segment (summed over
plans, the ``churned`` and ``renewals`` columns of ``monthly_by_plan_segment.csv``), averaged
over the months (as ``churn_rate_monthly`` in :mod:`sim.results` averages the whole book), then
over replications with a Student-t 95% confidence interval.

The fit is a damped Newton (secant) iteration on the logit scale, per segment::

    b[k+1] = b[k] + (logit(target) - logit(observed[k])) / slope[k]

with ``slope[0] = 1`` (the observed churn moves by less than the intercept on the logit scale:
the other churn terms spread the subscribers' probabilities, and churners leave the book) and
``slope[k]`` the secant estimate of d logit(observed) / d b from the last two iterations when
it lies in [``SLOPE_MIN``, ``SLOPE_MAX``] (outside, noise dominated the difference, e.g. a
segment of few subscribers whose intercept barely moved, and the last slope is kept). Every
iteration runs the scenario with the same seed and replications (common random numbers,
:mod:`sim.engine.streams`), so the observed churn is a nearly deterministic function of the
intercepts and the iteration converges in a few runs.
Segments interact only weakly (through the shared cluster's congestion), so each segment takes
its own step from the same run.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.engine.replication import ReplicationResult
from sim.experiments.runner import run_scenario
from sim.results.kpis import mean_ci
from sim.results.tables import RunResult
from sim.scenario.schema import Scenario

DEFAULT_TOLERANCE = 0.005
"""Stop when every segment's observed monthly churn is within this of its target (share;
0.005 = 0.5 percentage points, the acceptance band of the churn calibration)."""
DEFAULT_MAX_ITERATIONS = 8
"""Simulation runs the fit may spend before it gives up (runs)."""
SLOPE_MIN = 0.3
"""Smallest secant slope d logit(churn) / d intercept believed; a smaller (or negative) one is
noise and the previous slope is kept."""
SLOPE_MAX = 1.5
"""Largest secant slope believed."""
MAX_STEP = 2.0
"""Largest change of an intercept in one iteration (logit units)."""
PROB_FLOOR = 1e-4
"""Observed churn is clipped to [PROB_FLOOR, 1 - PROB_FLOOR] before its logit."""


def logit(p: float) -> float:
    """ln(p / (1 - p)) of a share, clipped away from 0 and 1."""
    q = min(max(p, PROB_FLOOR), 1.0 - PROB_FLOOR)
    return math.log(q / (1.0 - q))


def replication_segment_churn(r: ReplicationResult) -> dict[str, float]:
    """Mean over calendar months of churned / renewal decisions, per segment (share/month).

    Months without renewal decisions of a segment are skipped; NaN if it never had any.
    """
    churned = r.acc.monthly["churned"].sum(axis=1)  # [months, S]
    renewals = r.acc.monthly["renewals"].sum(axis=1)
    out: dict[str, float] = {}
    for s, name in enumerate(r.world.seg.names):
        has = renewals[:, s] > 0
        rates = churned[has, s] / renewals[has, s]
        out[name] = float(rates.mean()) if len(rates) else float("nan")
    return out


@dataclass(frozen=True)
class SegmentChurn:
    """A segment's monthly churn over replications: mean and 95% CI (share/month)."""

    mean: float
    ci95_low: float
    ci95_high: float
    by_replication: tuple[float, ...]


def segment_churn(result: RunResult) -> dict[str, SegmentChurn]:
    """Monthly churn per segment of a run: mean over replications and its 95% CI."""
    per_rep = [replication_segment_churn(r) for r in result.replications]
    out: dict[str, SegmentChurn] = {}
    for name in result.replications[0].world.seg.names:
        x = np.array([d[name] for d in per_rep], dtype=float)
        m, lo, hi = mean_ci(x)
        out[name] = SegmentChurn(m, lo, hi, tuple(float(v) for v in x))
    return out


@dataclass
class Iteration:
    """One simulation run of the fit: the intercepts tried and the churn they gave."""

    intercepts: dict[str, float]
    churn: dict[str, SegmentChurn]
    wall_s: float


@dataclass
class FitResult:
    """Outcome of :func:`fit_churn`."""

    scenario: Scenario
    """The input scenario with the fitted intercepts (those of the best iteration)."""
    targets: dict[str, float]
    tolerance: float
    seed: int
    replications: int
    converged: bool
    iterations: list[Iteration] = field(default_factory=list)

    @property
    def best(self) -> Iteration:
        """The iteration whose largest |observed - target| is smallest."""
        return min(self.iterations, key=lambda it: _worst_gap(it, self.targets))

    @property
    def intercepts(self) -> dict[str, float]:
        """Fitted intercept per target segment (logit units)."""
        return {k: self.best.intercepts[k] for k in self.targets}

    def report(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-ready) of the fit: targets, intercepts, churn, history."""
        best = self.best
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "replications": self.replications,
            "tolerance": self.tolerance,
            "converged": self.converged,
            "segments": {
                k: {
                    "target": t,
                    "churn_intercept": round(best.intercepts[k], 4),
                    "monthly_churn": round(best.churn[k].mean, 5),
                    "ci95": [_r(best.churn[k].ci95_low), _r(best.churn[k].ci95_high)],
                    "by_replication": [round(v, 5) for v in best.churn[k].by_replication],
                }
                for k, t in self.targets.items()
            },
            "iterations": [
                {
                    "wall_s": round(it.wall_s, 1),
                    **{
                        k: {
                            "churn_intercept": round(it.intercepts[k], 4),
                            "monthly_churn": round(it.churn[k].mean, 5),
                        }
                        for k in self.targets
                    },
                }
                for it in self.iterations
            ],
        }


def _r(x: float) -> float | None:
    return round(x, 5) if math.isfinite(x) else None


def _worst_gap(it: Iteration, targets: Mapping[str, float]) -> float:
    return max(abs(it.churn[k].mean - t) for k, t in targets.items())


def fit_churn(  # noqa: C901 - the secant loop with its stopping and best-iteration rules; to split
    scenario: Scenario,
    targets: Mapping[str, float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    seed: int | None = None,
    replications: int | None = None,
    log: Callable[[str], object] | None = None,
    digits: int = 3,
) -> FitResult:
    """Fit ``churn_intercept`` of the segments in ``targets`` (share/month) to hit them.

    Each iteration runs the whole scenario (``replications`` replications with ``seed``;
    defaults: the scenario's own) and steps every target segment's intercept by the secant
    rule of the module docstring. Stops when every segment is within ``tolerance`` (share) of
    its target, or after ``max_iterations`` runs (``converged`` False; the best iteration is
    kept). Intercepts are rounded to ``digits`` decimals before each run, so the values written
    into a file (:func:`apply_intercepts`) are exactly those simulated. The input scenario is not
    modified. ``log`` receives one line per iteration.
    """
    names = [g.name for g in scenario.segments]
    for k, t in targets.items():
        if k not in names:
            raise ValueError(f"unknown segment '{k}' (segments: {', '.join(names)})")
        if not 0.0 < t < 1.0:
            raise ValueError(f"target churn of '{k}' must be a share in (0, 1), got {t}")
    if max_iterations < 1:
        raise ValueError("max_iterations must be >= 1")
    seed = scenario.seed if seed is None else seed
    reps = scenario.replications if replications is None else replications
    work = scenario.model_copy(deep=True)
    seg_of = {g.name: g for g in work.segments}
    b = {k: round(seg_of[k].churn_intercept, digits) for k in targets}
    result = FitResult(
        scenario=work,
        targets=dict(targets),
        tolerance=tolerance,
        seed=seed,
        replications=reps,
        converged=False,
    )
    slope = dict.fromkeys(targets, 1.0)
    for i in range(max_iterations):
        for k, v in b.items():
            seg_of[k].churn_intercept = v
        t0 = time.perf_counter()
        churn = segment_churn(run_scenario(work, seed=seed, replications=reps))
        it = Iteration(intercepts=dict(b), churn=churn, wall_s=time.perf_counter() - t0)
        result.iterations.append(it)
        if log is not None:
            cells = ", ".join(
                f"{k} b={b[k]:+.4f} churn={churn[k].mean:.4f} (target {t:.4f})"
                for k, t in targets.items()
            )
            log(f"iteration {i + 1}: {cells} [{it.wall_s:.0f} s]")
        if _worst_gap(it, targets) <= tolerance:
            result.converged = True
            break
        if i > 0:
            prev = result.iterations[-2]
            for k in targets:
                db = it.intercepts[k] - prev.intercepts[k]
                if abs(db) > 1e-9:
                    s = (logit(churn[k].mean) - logit(prev.churn[k].mean)) / db
                    if SLOPE_MIN <= s <= SLOPE_MAX:  # else noise dominated: keep the last slope
                        slope[k] = s
        for k, t in targets.items():
            gap = logit(t) - logit(churn[k].mean)
            if abs(churn[k].mean - t) > tolerance / 4:  # leave segments already on target
                b[k] = round(b[k] + max(-MAX_STEP, min(MAX_STEP, gap / slope[k])), digits)
    best = result.best
    for k in targets:
        seg_of[k].churn_intercept = best.intercepts[k]
    return result


_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def apply_intercepts(text: str, intercepts: Mapping[str, float], digits: int = 3) -> str:
    """Rewrite the ``churn_intercept`` of the named segments in a scenario file's text.

    Edits only the number on the first ``churn_intercept:`` line after each ``- name: SEG``
    item of the ``segments:`` list, so comments, anchors and layout are kept. Raises
    ValueError if a segment or its intercept line is not found.
    """
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if re.match(r"^segments:\s*(#.*)?$", ln))
    except StopIteration:
        raise ValueError("no top-level 'segments:' key") from None
    for name, value in intercepts.items():
        item = re.compile(rf"^\s*-\s+name:\s*['\"]?{re.escape(name)}['\"]?\s*(#.*)?$")
        pos = next((i for i in range(start, len(lines)) if item.match(lines[i])), None)
        if pos is None:
            raise ValueError(f"segment '{name}' not found")
        for j in range(pos + 1, len(lines)):
            if re.match(r"^\s*-\s+name:", lines[j]) or re.match(r"^\S", lines[j]):
                raise ValueError(f"segment '{name}' has no churn_intercept line")
            new, n = re.subn(
                rf"^(\s*churn_intercept:\s*){_NUMBER}", rf"\g<1>{value:.{digits}f}", lines[j]
            )
            if n:
                lines[j] = new
                break
        else:
            raise ValueError(f"segment '{name}' has no churn_intercept line")
    return "".join(lines)


def update_scenario_file(path: Path, intercepts: Mapping[str, float], digits: int = 3) -> None:
    """Write ``intercepts`` into a scenario file in place (see :func:`apply_intercepts`)."""
    path.write_text(apply_intercepts(path.read_text(encoding="utf-8"), intercepts, digits))


def parse_targets(items: list[str]) -> dict[str, float]:
    """``["chat=0.07", "coder=7%"]`` -> {"chat": 0.07, "coder": 0.07}; raise ValueError."""
    out: dict[str, float] = {}
    for it in items:
        name, sep, val = it.partition("=")
        if not sep or not name:
            raise ValueError(f"target '{it}' is not SEGMENT=SHARE")
        val = val.strip()
        try:
            share = float(val[:-1]) / 100 if val.endswith("%") else float(val)
        except ValueError:
            raise ValueError(f"target '{it}': '{val}' is not a number") from None
        out[name.strip()] = share
    return out
