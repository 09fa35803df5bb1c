"""Confidence intervals over replications that stay inside a quantity's physical range.

A Student-t interval ``mean +- t * se`` is symmetric, so for a share near 0 or 1, or a small
positive quantity with a large spread, it leaves the range the quantity can take (a mean wait
of [-0.0003, 0.0007] s, an SLO attainment up to 100.01%). The product reports the Student-t
interval **intersected with the range** ([0, 1] for shares, [0, inf) for waits, counts,
tokens, revenue and cost; nothing for a margin or a difference).

Why clipping and not a transformed scale: the true mean lies in the range, so the clipped
interval covers it exactly when the Student-t interval does; the coverage is the Student-t
one, the method of simulation output analysis (Law, *Simulation Modeling and Analysis*, 5th
ed., 9.4.1). Log- or logit-scale intervals (delta method) stay inside the range too, but with
3-5 replications and a spread as large as the mean their far end grows without bound (three
replications of a wait at 0, 0 and 1.26 ms give an upper end 14 times the Student-t one), which
reads as a risk the data do not show. A bound reached by the clipped interval means "as low
(or high) as the range allows", and ``summary.json`` names the method per KPI.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

Bounds = Literal["none", "nonneg", "unit"]
"""The range a quantity can take: the real line, [0, inf), or [0, 1]."""

CI_METHODS: dict[str, str] = {
    "none": "student_t",
    "nonneg": "student_t_clipped_at_0",
    "unit": "student_t_clipped_to_0_1",
}
"""The name of each range's interval method, as ``summary.json`` states it per KPI."""

CI_LEVEL = 0.95
"""Confidence level of every interval the product reports."""


def student_t_halfwidth(x: np.ndarray, level: float = CI_LEVEL) -> float:
    """``t * s / sqrt(n)`` of the finite values of ``x`` (NaN with fewer than two)."""
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def bounded_ci(
    x: np.ndarray, bounds: Bounds = "none", level: float = CI_LEVEL
) -> tuple[float, float, float]:
    """Mean and ``level`` confidence interval of the finite values of ``x``, inside ``bounds``.

    NaN bounds with fewer than two values. Values outside the range (a share above 1 in a
    hand-made table) get the plain Student-t interval: the range is then not theirs to clip to.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    half = student_t_halfwidth(x, level)
    if not np.isfinite(half):
        return m, float("nan"), float("nan")
    if bounds == "none":
        return m, m - half, m + half
    if (x < 0).any() or (bounds == "unit" and (x > 1).any()):
        return m, m - half, m + half  # the range does not hold for these values: no clipping
    top = 1.0 if bounds == "unit" else float("inf")
    return m, max(m - half, 0.0), min(m + half, top)
