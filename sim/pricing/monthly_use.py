"""A subscriber's monthly demand for quota units, and its distribution over a segment.

The demand model is the engine's (``sim.engine.demand``, docs/model.md "Demand"): a
subscriber of intensity G (Gamma, shape ``intensity_shape``, mean 1) and engagement e opens
sessions at ``sessions_per_day x members x G x e`` a day, each holding a geometric number of
requests (mean ``requests_per_session``), each request burning X quota units (its token
lengths, cache hits, model and the plan's weights). Over a billing month of ``days_per_month``
days its demand D is a compound sum. Given G:

* mean: ``M G``, with ``M = sessions a month x e_target x requests per session x E[X]``;
* variance: ``M G (Var S + cv^2 E[S]^2) / E[S] + (M G)^2 ((1 + c_e) V_act + c_e)``, where S is
  one session's units (``E[S] = r E[X]``, ``Var S = r Var X + (r^2 - r) E[X]^2`` for a
  geometric count of mean r), ``cv`` the session starts' ``arrival_cv`` (a renewal process's
  count variance is cv^2 times its mean), ``V_act`` the variance of the month's mean activity
  multiplier (:func:`activity_variance`) and ``c_e`` the squared coefficient of variation of
  engagement in its steady state (:func:`engagement_cv2`).

D given G is taken as a Gamma with that mean and variance (moment matching: the one
approximation of the within-month noise), and G is integrated exactly over
``INTENSITY_CELLS`` cells of its distribution (each cell at its conditional mean, so the
overall mean is exact). A replayed segment's requests go to subscribers uniformly, whatever
their intensity: its D is a compound Poisson sum of the trace's requests per subscriber.
Not modelled here: rollover, the request that crosses the quota (it passes in full), the
weekday mix of a particular billing month (its mean over start days is 1), and the
transient of a new subscriber's engagement (``engagement.start``) before it settles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.signal import fftconvolve
from scipy.special import expit, gammainc, gammaincc, gammaincinv

from sim.units import HOURS_PER_DAY, SECONDS_PER_HOUR
from sim.world.arrays import F64

INTENSITY_CELLS = 800
"""Cells of the intensity integral (count). Numerical, not a model assumption: with 800 cells
the exhaustion share and the mean use agree with scipy's quad over the Gamma law to about 3e-5
relative on the small test scenario (tests/functional/test_explain.py holds them to 1e-3)."""

INTENSITY_LOGIT_SPAN = 20.0
"""Cell edges are evenly spaced in logit(cumulative probability) over +-this span (logit
units), so the tails (probabilities down to 2e-9) get cells as fine as the middle. Numerical."""

QUANTILE_RTOL = 1e-9
"""Relative tolerance of a quantile of monthly demand (share of the quantile). Numerical."""


def intensity_cells(shape: float, cells: int = INTENSITY_CELLS) -> tuple[F64, F64]:
    """Cells of Gamma(``shape``, mean 1): each cell's probability and conditional mean.

    The conditional mean uses E[G; G < x] = F_{shape+1}(x shape) for a Gamma of mean 1, so
    the cells' means average to exactly 1.
    """
    edges_u = np.concatenate(
        [[0.0], expit(np.linspace(-INTENSITY_LOGIT_SPAN, INTENSITY_LOGIT_SPAN, cells - 1)), [1.0]]
    )
    prob = np.diff(edges_u)
    x = gammaincinv(shape, edges_u)  # edges of shape x G (0 ... inf)
    node = np.diff(gammainc(shape + 1.0, x)) / prob
    return prob, node


def engagement_cv2(target: float, tau_months: float, volatility: float) -> float:
    """Squared coefficient of variation of a subscriber's engagement in its steady state (share^2).

    At each renewal the engine moves engagement toward ``target`` by ``exp(-1/tau)`` and
    multiplies it by a mean-1 lognormal shock of log-sd ``volatility``: e' = (t + (e - t) phi) L.
    Its stationary mean is t and its stationary variance t^2 v / (1 - phi^2 (1 + v)), with
    v = exp(volatility^2) - 1 (infinite when phi^2 (1 + v) >= 1: no steady state).
    """
    v = float(np.expm1(volatility**2))
    phi2 = float(np.exp(-2.0 / tau_months))
    den = 1.0 - phi2 * (1.0 + v)
    return v / den if den > 0 else float("inf")


def activity_variance(
    sigma: float,
    timescale_s: float,
    hour_weight: F64,
    weekday_weight: F64,
    start_weekday: int,
    days: int,
    window_s: float,
) -> float:
    """Variance of the month's rate-weighted mean activity multiplier (share^2).

    The engine multiplies a subscriber's session rate in each window of ``window_s`` by
    A = exp(sigma Z - sigma^2 / 2), Z a stationary AR(1) across windows with coefficient
    phi = exp(-window_s / timescale_s), so Cov(A_i, A_j) = exp(sigma^2 phi^|i-j|) - 1. The
    month's sessions follow sum_i w_i A_i with w the hour and weekday weights; the variance of
    that sum over (sum_i w_i)^2 is returned (0 when ``sigma`` is 0).
    """
    if sigma <= 0:
        return 0.0
    per_hour = round(SECONDS_PER_HOUR / window_s)
    per_day = per_hour * HOURS_PER_DAY
    day_of = np.arange(days * per_day) // per_day
    hour_of = (np.arange(days * per_day) // per_hour) % HOURS_PER_DAY
    w = hour_weight[hour_of] * weekday_weight[(start_weekday + day_of) % 7]
    n = len(w)
    lagged = fftconvolve(w, w[::-1])[n - 1 :]  # sum_i w_i w_{i+l}, l = 0 .. n-1
    cov = np.expm1(sigma**2 * np.exp(-window_s / timescale_s) ** np.arange(n))
    total = lagged[0] * cov[0] + 2.0 * float(np.dot(lagged[1:], cov[1:]))
    return max(total, 0.0) / float(w.sum()) ** 2


@dataclass(frozen=True)
class SessionDemand:
    """One segment's demand on one plan: what :func:`conditional_moments` needs."""

    sessions_per_month: float
    """Sessions a month of a subscriber at intensity 1 and engagement 1 (sessions/month)."""
    requests_per_session: float
    """Mean requests per session (geometric; 1 = single requests)."""
    units_mean: float
    """E[X]: mean quota units one request burns (units)."""
    units_second: float
    """E[X^2]: second moment of the units one request burns (units^2)."""
    arrival_cv: float
    """CV of the gaps between session starts (1 = Poisson)."""
    activity_var: float
    """Variance of the month's mean activity multiplier (:func:`activity_variance`)."""
    engagement: float
    """Engagement level the usage is taken at (the segment's target)."""
    engagement_cv2: float
    """Squared CV of engagement around that level (:func:`engagement_cv2`)."""
    follows_intensity: bool = True
    """False for a replayed segment: its requests go to subscribers uniformly."""

    @property
    def requests_at_unit_intensity(self) -> float:
        """Mean requests a month at intensity 1 (requests/month)."""
        return self.sessions_per_month * self.engagement * self.requests_per_session

    @property
    def mean_at_unit_intensity(self) -> float:
        """M: mean quota units a month at intensity 1 (units/month)."""
        return self.requests_at_unit_intensity * self.units_mean


def conditional_moments(d: SessionDemand, intensity: F64) -> tuple[F64, F64]:
    """Mean and variance of a month's demand (units) given each intensity in ``intensity``."""
    scale = intensity if d.follows_intensity else np.ones_like(intensity)
    r = d.requests_per_session
    s_mean = r * d.units_mean
    s_var = r * (d.units_second - d.units_mean**2) + (r * r - r) * d.units_mean**2
    mean = d.mean_at_unit_intensity * scale
    if s_mean <= 0:
        return mean, np.zeros_like(mean)
    within = mean * (s_var + d.arrival_cv**2 * s_mean**2) / s_mean
    spread = (1.0 + d.engagement_cv2) * d.activity_var + d.engagement_cv2
    return mean, within + mean**2 * spread


@dataclass(frozen=True)
class MonthlyUse:
    """Monthly demand D (quota units) as a mixture of Gamma laws over cells.

    Cell j has probability ``weight[j]`` and, given the cell, a Gamma law of mean ``mean[j]``
    and variance ``var[j]`` (a point mass at ``mean[j]`` where either is 0).
    """

    weight: F64
    mean: F64
    var: F64

    @classmethod
    def point(cls, d: float) -> MonthlyUse:
        """Exactly ``d`` units a month."""
        return cls(np.ones(1), np.array([d]), np.zeros(1))

    def reweighted(self, w: F64) -> MonthlyUse:
        """The same cells with weights proportional to ``weight x w`` (e.g. a choice share)."""
        x = self.weight * w
        return MonthlyUse(x / x.sum(), self.mean, self.var)

    def _parts(self) -> tuple[NDArray[np.bool_], F64, F64]:
        """Gamma cells' mask, shape and scale (shape and scale 1 where a point mass)."""
        g = (self.mean > 0) & (self.var > 0)
        safe_mean = np.where(g, self.mean, 1.0)
        safe_var = np.where(g, self.var, 1.0)
        return g, safe_mean**2 / safe_var, safe_var / safe_mean

    def total_mean(self) -> float:
        """E[D] (units)."""
        return float(np.dot(self.weight, self.mean))

    def sf(self, x: float) -> float:
        """P(D > x) (equal to P(D >= x) for the Gamma cells)."""
        g, shape, scale = self._parts()
        gam = gammaincc(shape, x / scale) if x > 0 else np.ones_like(shape)
        return float(np.dot(self.weight, np.where(g, gam, self.mean > x)))

    def excess(self, x: float) -> float:
        """E[(D - x)+] (units)."""
        g, shape, scale = self._parts()
        if x <= 0:
            return self.total_mean() - x
        gam = self.mean * gammaincc(shape + 1.0, x / scale) - x * gammaincc(shape, x / scale)
        return float(np.dot(self.weight, np.where(g, gam, np.maximum(self.mean - x, 0.0))))

    def capped(self, x: float) -> float:
        """E[min(D, x)] (units)."""
        return self.total_mean() - self.excess(x)

    def quantile(self, level: float) -> float:
        """The demand (units) below which a share ``level`` of subscribers stay."""
        if 1.0 - self.sf(0.0) >= level:
            return 0.0
        hi = float(np.max(self.mean + 10.0 * np.sqrt(self.var))) or 1.0
        while 1.0 - self.sf(hi) < level:
            hi *= 2.0
        return float(brentq(lambda x: 1.0 - self.sf(x) - level, 0.0, hi, rtol=QUANTILE_RTOL))


def monthly_use(d: SessionDemand, weight: F64, intensity: F64) -> MonthlyUse:
    """The mixture of monthly demand over intensity cells (``weight``, ``intensity``)."""
    mean, var = conditional_moments(d, intensity)
    return MonthlyUse(weight / weight.sum(), mean, var)
