"""What the search sizes (cells), the simulations behind them, and the verdict rule.

A cell is a pool (over every month) or a pool in one month; a disaggregated pool's prefill and
decode replicas are two pools here (sim.capacity.pools). A cell's probes gallop from the
analytic guess (a part of a disaggregated pool: from the scenario's count), then bisect
(:meth:`Cell.record`). A verdict on a count compares the 95%
Student-t interval of the busy-hour quantile over replications with each target's bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.capacity.measure import Measurement
from sim.capacity.pools import PoolSpec
from sim.capacity.queueing import AnalyticSize, PoolLoad, SloTarget
from sim.results.kpis import mean_ci

MEETS, FAILS, UNSURE = "meets", "fails", "unsure"
"""Verdicts on a count: every target met, one missed, or an interval that straddles a bound."""


@dataclass
class Cell:
    """One quantity sized: a pool (``month`` None: every month) or a pool in one month.

    ``pool`` may be a part of a disaggregated pool (its prefill or its decode replicas).
    """

    pool: PoolSpec
    month: int | None
    guess: AnalyticSize | None = None
    load: PoolLoad | None = None  # the busy-hour load the guess was made for
    first_guess: int | None = None  # the analytic guess in paid replicas
    pilot_figures: tuple[float, float] = (math.nan, math.nan)  # busy-hour and peak utilisation
    meets_at: int | None = None  # smallest count known to meet
    fails_at: int = 0  # largest count known to fail (0 replicas serve nothing)
    probe: int = 1
    step: int = 1
    unsure_at: set[int] = field(default_factory=set)
    unreachable: bool = False

    @property
    def done(self) -> bool:
        """Resolved: the meeting count is one above a failing one, or nothing meets."""
        return self.unreachable or (
            self.meets_at is not None and self.meets_at - self.fails_at <= 1
        )

    def record(self, count: int, verdict: str, cap: int) -> None:
        """Take a verdict at ``count`` and choose the next probe (gallop, then bisect)."""
        if verdict == MEETS:
            self.meets_at = count if self.meets_at is None else min(self.meets_at, count)
        else:
            self.fails_at = max(self.fails_at, count)
            if verdict == UNSURE:
                self.unsure_at.add(count)
        if self.done:
            return
        if self.meets_at is None:
            if self.fails_at >= cap:
                self.unreachable = True
                return
            self.probe = min(self.fails_at + self.step, cap)
            self.step *= 2
        elif self.fails_at == 0 and verdict == MEETS and self.step > 0:
            self.probe = max(self.meets_at - self.step, 1)
            self.step *= 2
        else:
            self.step = 0  # bisect from here on
            self.probe = (self.fails_at + self.meets_at) // 2

    @property
    def label(self) -> str:
        """Pool name, with the month for a cell by month."""
        return self.pool.name if self.month is None else f"{self.pool.name}@{self.month}"


@dataclass
class Evaluation:
    """A count vector and the replications run at it."""

    counts: dict[str, tuple[int, ...]]
    measurements: list[Measurement] = field(default_factory=list)
    judged: bool = False  # settled by the search (the pilot's vector may never be probed)


def _finite_or_nan(fn: Callable[[np.ndarray], Any], x: np.ndarray) -> float:
    """``fn`` of the finite values of x (the worst month), NaN when there are none."""
    x = np.atleast_1d(x)
    x = x[np.isfinite(x)]
    return float(fn(x)) if len(x) else float("nan")


def _verdict(values: np.ndarray, bound: float) -> tuple[str, float, float, float]:
    """Verdict on one target from per-replication values (NaN: no request, so it holds)."""
    v = np.where(np.isnan(values), 0.0, values)
    mean, lo, hi = mean_ci(v)
    if not math.isfinite(lo):
        lo = hi = mean
    lo = max(lo, 0.0)  # a latency is never negative
    if hi <= bound:
        return MEETS, mean, lo, hi
    if lo > bound:
        return FAILS, mean, lo, hi
    return UNSURE, mean, lo, hi


def _cell_values(ms: list[Measurement], cell: Cell, k: int) -> np.ndarray:
    """Per replication, target k's busy-hour quantile for the cell (worst month if all)."""
    j = cell.pool.index
    if cell.month is None:
        return np.array([np.nanmax(np.append(m.metric_values[k, :, j], -np.inf)) for m in ms])
    return np.array([m.metric_values[k, cell.month, j] for m in ms])


def judge(
    ms: list[Measurement], cell: Cell, targets: list[SloTarget]
) -> tuple[str, dict[str, Any]]:
    """The cell's verdict over every target that judges it, and the figures behind it.

    A part of a disaggregated pool is judged only on the metrics its count moves
    (sim.capacity.pools.PART_METRICS: wait and TTFT the prefill part, TPOT the decode part,
    end-to-end both); the other targets' figures are NaN in its row. The busy-hour goodput,
    utilisation and offered load are the whole pool's (both parts').
    """
    row: dict[str, Any] = {}
    verdicts = []
    for k, t in enumerate(targets):
        if not cell.pool.judged_on(t.metric):
            row[t.label] = row[f"{t.label} ci95_low"] = row[f"{t.label} ci95_high"] = np.nan
            continue
        vals = _cell_values(ms, cell, k)
        vals = np.where(np.isneginf(vals), np.nan, vals)
        verdict, mean, lo, hi = _verdict(vals, t.bound_s)
        verdicts.append(verdict)
        row[t.label] = mean
        row[f"{t.label} ci95_low"] = lo
        row[f"{t.label} ci95_high"] = hi
    j = cell.pool.index
    sl = slice(None) if cell.month is None else cell.month
    for name, worst in (
        ("goodput", np.min),
        ("utilisation", np.max),
        ("offered_load_erlangs", np.max),
    ):
        per = np.array([_finite_or_nan(worst, getattr(m, name)[sl, j]) for m in ms])
        row[f"busy_hour_{name}"] = float(np.nanmean(per)) if np.isfinite(per).any() else np.nan
    if FAILS in verdicts:
        return FAILS, row
    if UNSURE in verdicts:
        return UNSURE, row
    return MEETS, row


def count_of(c: Cell, counts: dict[str, tuple[int, ...]]) -> int:
    """The cell's replica count in a count vector (its month's, or the pool's)."""
    v = counts[c.pool.name]
    return v[0] if c.month is None else v[c.month]
