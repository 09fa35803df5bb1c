"""Estimates from one long simulated run: batch means and Poisson arrival times."""

from __future__ import annotations

import math

import numpy as np

BATCHES = 20
"""Batches of the batch-means standard error."""

Z = 3.5
"""Standard errors a theoretical value may be from the estimate."""


def batch_mean(x: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error from batch means (after a 5% warm-up).

    Batch means still understate the error a little when the series is strongly autocorrelated.
    """
    x = x[len(x) // 20 :]
    b = np.array_split(x, BATCHES)
    m = np.array([v.mean() for v in b])
    return float(m.mean()), float(m.std(ddof=1) / math.sqrt(BATCHES))


def poisson_times(rng: np.random.Generator, lam: float, n: int) -> np.ndarray:
    """``n`` arrival times of a Poisson process of rate ``lam`` (per second) from 0."""
    return np.cumsum(rng.exponential(1 / lam, n))
