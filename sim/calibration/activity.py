"""Fitting API customers' arrival process to ServeGen: activity spells and renewal starts.

Two fits: the activity spells across 10-minute windows (``activity_fit``, below) and the Gamma
renewal CV of session starts within a window (``arrival_cv_fit``, at the end).

The model (``activity_sigma``, ``activity_timescale_s``; see :mod:`sim.engine.demand`) multiplies
each customer's rate by A = exp(sigma Z - sigma^2/2) (mean 1), with Z a stationary
Ornstein-Uhlenbeck process stepped once per 10-minute window: an AR(1) with coefficient
phi = exp(-600 s / timescale) and unit variance. Customers are independent.

The fit is by the simulated method of moments on the aggregate rate divided by its hour-of-day
shape (:func:`sim.traces.stats.rate_after_hour_shape`), the statistic capacity depends on:

* moments: its CV, and its autocorrelation at lags of 10 minutes to ``FIT_MAX_LAG_S``;
* model: ``FIT_REPLICATIONS`` simulated weeks of the trace's own customers (their request
  shares over the period) each with an activity process, measured exactly like the trace,
  so that the bias of a week-long sample (the hour-of-day means absorb part of the slow
  variation) is the same on both sides; common random numbers (seed ``ACTIVITY_SEED``);
* objective: squared log ratio of the CVs plus the squared differences of the
  autocorrelations (``ACF_WEIGHT`` each), minimised by Nelder-Mead from the closed-form start
  sigma^2 = ln(1 + CV^2 / HHI) (HHI: Herfindahl index of the shares).

Standard errors by a bootstrap over customers (``ACTIVITY_BOOTSTRAP`` resamples, each fitted
again). Fitting on the aggregate rather than on each customer's own series is deliberate:
ServeGen's customers co-vary negatively (the sum of their variances is about twice the
aggregate's), so per-customer spreads would overstate the platform's burstiness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.optimize import brentq, minimize
from scipy.signal import lfilter

from sim.engine.resolution import ACTIVITY_WINDOW_S
from sim.traces.stats import (
    DAY_S,
    RATE_WINDOW_S,
    autocorrelation,
    rate_after_hour_shape,
    weighted_median,
)
from sim.units import SECONDS_PER_HOUR

FIT_MAX_LAG_S = int(6 * SECONDS_PER_HOUR)
"""Longest lag of the autocorrelation moments (s): beyond 6 h a week of data is dominated by a
handful of customers' daily habits."""
FIT_LAGS = np.arange(1, FIT_MAX_LAG_S // RATE_WINDOW_S + 1)
"""Lags of the autocorrelation moments (windows of 10 min)."""
ACF_WEIGHT = 1.0 / len(FIT_LAGS)
"""Weight of each autocorrelation moment: all lags together weigh as much as the CV."""
FIT_REPLICATIONS = 16
"""Simulated weeks per evaluation of the model's moments."""
ACTIVITY_BOOTSTRAP = 30
"""Bootstrap resamples of customers for the standard errors."""
ACTIVITY_SEED = 20250514
"""Seed of the simulated weeks and the bootstrap (ServeGen's arXiv date, 2025-05-14)."""


@dataclass(frozen=True)
class ActivityFit:
    """The fitted activity process and the statistics it was fitted on."""

    sigma: float  # ln units
    timescale_s: float  # s
    sigma_se: float
    timescale_se_s: float
    hhi: float  # Herfindahl index of the customers' request shares
    cv_after_hour_shape: float  # the trace's, the first moment


def client_windows(
    arrivals: pd.DataFrame,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Requests per (customer, 10-min window) of one model's ServeGen arrivals, whole days.

    Returns the matrix [customers, windows] (0 where a customer has no row) and the windows'
    start times (s from midnight of day 0).
    """
    reqs = arrivals["rate_rps"].to_numpy(dtype=float) * RATE_WINDOW_S
    start = arrivals["window_start_s"].to_numpy(dtype=np.int64)
    first_day, last_day = start.min() // DAY_S, start.max() // DAY_S
    grid = np.arange(first_day * DAY_S, (last_day + 1) * DAY_S, RATE_WINDOW_S)
    clients, ci = np.unique(arrivals["client"].to_numpy(), return_inverse=True)
    x = np.zeros((len(clients), len(grid)))
    np.add.at(x, (ci, (start - grid[0]) // RATE_WINDOW_S), reqs)
    return x, grid


def _moments(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """[CV, autocorrelation at FIT_LAGS] of (rows of) rates after the hour shape (NaN = gap)."""
    cv = np.nanstd(r, axis=-1) / np.nanmean(r, axis=-1)
    return np.stack([cv, *(autocorrelation(r, int(k)) for k in FIT_LAGS)], axis=-1)


class _Model:
    """Expected moments of the aggregate of customers with shares ``share`` (CRN draws)."""

    def __init__(self, share: NDArray[np.float64], grid: NDArray[np.int64], seed: int):
        rng = np.random.default_rng(seed)
        self.share = share
        self.grid = grid
        self.eps = rng.standard_normal((FIT_REPLICATIONS, len(share), len(grid)))
        self.z0 = rng.standard_normal((FIT_REPLICATIONS, len(share)))

    def moments(self, sigma: float, phi: float) -> NDArray[np.float64]:
        innov = np.sqrt(1.0 - phi * phi)
        z = lfilter([innov], [1.0, -phi], self.eps, axis=-1, zi=phi * self.z0[..., None])[0]
        a = np.exp(sigma * z - 0.5 * sigma * sigma)
        agg = np.einsum("c,rcw->rw", self.share, a)
        return _moments(rate_after_hour_shape(agg, self.grid)).mean(axis=0)


def _fit(x: NDArray[np.float64], grid: NDArray[np.int64], seed: int) -> tuple[float, ...]:
    """(sigma, timescale_s, hhi, cv) from a [customers, windows] matrix."""
    tot = x.sum(axis=1)
    share = tot / tot.sum()
    hhi = float((share**2).sum())
    real = _moments(rate_after_hour_shape(x.sum(axis=0), grid))
    model = _Model(share, grid, seed)
    w = np.r_[1.0, np.full(len(FIT_LAGS), ACF_WEIGHT)]

    def loss(p: NDArray[np.float64]) -> float:
        sigma, phi = np.exp(p[0]), 1.0 / (1.0 + np.exp(-p[1]))
        m = model.moments(float(sigma), float(phi))
        diff = np.r_[np.log(m[0] / real[0]), m[1:] - real[1:]]
        return float((w * diff**2).sum())

    s0 = np.sqrt(np.log1p(real[0] ** 2 / hhi))  # the closed form (independent customers)
    phi0 = np.exp(-ACTIVITY_WINDOW_S / SECONDS_PER_HOUR)  # a start of one hour
    res = minimize(
        loss,
        [np.log(s0), np.log(phi0 / (1 - phi0))],
        method="Nelder-Mead",
        options={"xatol": 1e-3, "fatol": 1e-7},
    )
    sigma, phi = float(np.exp(res.x[0])), float(1.0 / (1.0 + np.exp(-res.x[1])))
    return sigma, -ACTIVITY_WINDOW_S / float(np.log(phi)), hhi, float(real[0])


def activity_fit(arrivals: pd.DataFrame) -> ActivityFit:
    """Fit sigma and the timescale to one model's ServeGen arrivals (see the module doc)."""
    x, grid = client_windows(arrivals)
    sigma, tau, hhi, cv = _fit(x, grid, ACTIVITY_SEED)
    rng = np.random.default_rng(ACTIVITY_SEED)
    boot = np.array(
        [
            _fit(x[rng.integers(0, len(x), len(x))], grid, ACTIVITY_SEED + 1 + b)[:2]
            for b in range(ACTIVITY_BOOTSTRAP)
        ]
    )
    return ActivityFit(sigma, tau, float(boot[:, 0].std()), float(boot[:, 1].std()), hhi, cv)


ARRIVAL_FIT_ROWS = 1000
"""(customer, window) rows drawn, in proportion to their requests, to simulate the model's
request-weighted median inter-arrival CV."""
ARRIVAL_CV_BRACKET = (0.3, 5.0)
"""Search interval of the renewal CV (1)."""


@dataclass(frozen=True)
class ArrivalCvFit:
    """The fitted renewal CV of session starts and the statistic it reproduces."""

    cv: float
    cv_se: float
    median_iat_cv: float  # the trace's request-weighted median within-window CV


def _window_cv(n: int, cv: float, rng: np.random.Generator) -> float:
    """Sample CV of the gaps of a Gamma renewal (gap CV ``cv``) with n expected points in a window.

    The process starts in equilibrium (a uniform share of a length-biased gap), as a customer
    already active before the window.
    """
    shape, scale = 1.0 / cv**2, cv**2 * RATE_WINDOW_S / n
    t = np.array([rng.random() * rng.gamma(shape + 1.0, scale)])
    batch = int(n + 6 * np.sqrt(n) * cv) + 1  # about n gaps fill the window; draw until they do
    while t[-1] < RATE_WINDOW_S:
        t = np.concatenate([t, t[-1] + np.cumsum(rng.gamma(shape, scale, batch))])
    g = np.diff(t[t < RATE_WINDOW_S])
    return float(g.std() / g.mean()) if len(g) >= 2 and g.mean() > 0 else float("nan")


def _model_median(counts: NDArray[np.int64], cv: float) -> float:
    rng = np.random.default_rng(ACTIVITY_SEED)
    return float(np.nanmedian([_window_cv(int(n), cv, rng) for n in counts]))


def arrival_cv_fit(arrivals: pd.DataFrame) -> ArrivalCvFit:
    """Gamma renewal CV whose windows reproduce the trace's request-weighted median IAT CV.

    ServeGen gives each (customer, 10-min window) its requests' inter-arrival CV. The model's
    request-weighted median is simulated on ``ARRIVAL_FIT_ROWS`` rows drawn in proportion to
    their requests (so a plain median estimates the weighted one), each a renewal with the
    row's request count in the window; the CV solves model = trace (Brent, common random
    numbers). Standard error: the trace median's bootstrap over customers, divided by the
    model median's slope in the CV.
    """
    n = arrivals["rate_rps"].to_numpy(dtype=float) * RATE_WINDOW_S
    iat = arrivals["iat_cv"].to_numpy(dtype=float)
    real = weighted_median(iat, n)
    rng = np.random.default_rng(ACTIVITY_SEED)
    counts = np.rint(n[rng.choice(len(n), ARRIVAL_FIT_ROWS, p=n / n.sum())]).astype(np.int64)
    lo, hi = (_model_median(counts, c) - real for c in ARRIVAL_CV_BRACKET)
    if not lo * hi < 0:  # (also NaN: windows too sparse to have an inter-arrival CV)
        raise ValueError(
            f"the trace's median inter-arrival CV in a 10-min window ({real:.3g}) is outside"
            f" what a Gamma renewal with CV {ARRIVAL_CV_BRACKET[0]}-{ARRIVAL_CV_BRACKET[1]}"
            " gives: too little or too bursty a part of a trace to fit (give the whole trace)"
        )
    cv = float(brentq(lambda c: _model_median(counts, c) - real, *ARRIVAL_CV_BRACKET, xtol=1e-3))
    clients = arrivals["client"].to_numpy()
    ids = np.unique(clients)
    rows = [np.flatnonzero(clients == c) for c in ids]
    boot = []
    for _ in range(ACTIVITY_BOOTSTRAP):
        pick = np.concatenate([rows[j] for j in rng.integers(0, len(ids), len(ids))])
        boot.append(weighted_median(iat[pick], n[pick]))
    step = 0.05
    slope = (_model_median(counts, cv + step) - _model_median(counts, cv - step)) / (2 * step)
    return ArrivalCvFit(cv, float(np.std(boot) / abs(slope)), real)
