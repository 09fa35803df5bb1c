"""The statistics behind the workload presets: token-length tables and fits, arrival fits.

Every fitted number of a preset comes from here: empirical token-length tables and their
lognormal maximum-likelihood alternative, the simulated method of moments for the cluster
arrival process with its delta-method standard errors, and the Gamma intensity shape of
API customers. ``Fit`` records one fitted parameter with its source and method. Kept apart
from reading the input files (``sim.calibration.calibrate``) and from the preset files
(``sim.calibration.presets``) so that the statistics can be read and tested on their own; the method
is summarised in ``sim.calibration.calibrate`` and explained in ``docs/calibration.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.traces.stats import counts_in_windows

TABLE_PROBS: tuple[float, ...] = (*tuple(k / 50 for k in range(50)), 0.99, 0.995, 0.999, 1.0)
"""Cumulative probabilities of the empirical token tables: every 2% plus the upper tail."""
SMM_SEED = 20231116
"""Seed of the simulated method of moments (fixed: the presets are reproducible byte for
byte); the date of the Azure 2023 traces."""
SMM_REPLICATIONS = 3
"""Simulated traces averaged per candidate parameter set (common random numbers)."""
SMM_BOOTSTRAP = 30
"""Parametric-bootstrap traces for the covariance of the moments (standard errors)."""
SMM_WEIGHTS = {"iat_cv": 3.0, "idc_60s": 3.0}
"""Weights of the squared log differences (others 1): the headline burstiness statistics, the
inter-arrival CV and the dispersion of counts per minute, count three times as much as the
short-window dispersions that pin the think time down."""
M_GRID = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0, 80.0, 120.0, 200.0, 300.0)
"""Coarse grid of requests per session."""
TAU_GRID = tuple(float(10**e) for e in np.linspace(-2.0, 2.5, 10))
"""Coarse grid of mean think times (s): 0.01 to 316 s, log-spaced."""
CV_GRID = (0.5, 1.0, 2.0, 4.0)
"""Coarse grid of think-time CVs."""


class CalibrationError(ValueError):
    """Missing or unusable calibration input; the message says which file or preset."""


def round_sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (stable YAML)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


@dataclass
class Fit:
    """One fitted parameter: value, unit, source, method, standard error (None: not fitted)."""

    value: Any
    unit: str
    source: str
    method: str
    se: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """YAML form."""
        d: dict[str, Any] = {
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "method": self.method,
        }
        if self.se is not None:
            d["se"] = round_sig(self.se, 3)
        return d


# --------------------------------------------------------------------------- token lengths


def token_table(x: NDArray[np.float64]) -> dict[str, Any]:
    """An empirical token-length field from a sample (linear percentiles at TABLE_PROBS)."""
    q = np.percentile(np.asarray(x, dtype=float), [100 * p for p in TABLE_PROBS])
    q = np.maximum.accumulate(np.round(q, 1))
    return {"dist": "empirical", "quantiles": [float(v) for v in q], "probs": list(TABLE_PROBS)}


def pmf_table(values: NDArray[np.float64], probs: NDArray[np.float64]) -> dict[str, Any]:
    """An empirical token-length field from a value/probability table.

    A quantile is the first value whose cumulative probability reaches p (stats.py's PMF rule).
    """
    o = np.argsort(values, kind="stable")
    v, c = values[o], np.cumsum(probs[o] / probs.sum())
    q = [float(v[min(int(np.searchsorted(c, p - 1e-12)), len(v) - 1)]) for p in TABLE_PROBS]
    q[0] = float(v[0])
    return {"dist": "empirical", "quantiles": q, "probs": list(TABLE_PROBS)}


def lognormal_fit(
    x: NDArray[np.float64], n: float | None = None, probs: NDArray[np.float64] | None = None
) -> tuple[float, float, float, float]:
    """Lognormal ML fit: mu, sigma (of ln tokens) and their standard errors.

    The errors are sigma/sqrt(n) and sigma/sqrt(2n); ``probs`` weights a PMF's values (then
    ``n`` is the sample size behind it).
    """
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if probs is None else np.asarray(probs, dtype=float)
    pos = x > 0
    lx, w = np.log(x[pos]), w[pos] / w[pos].sum()
    mu = float((w * lx).sum())
    sigma = float(np.sqrt((w * (lx - mu) ** 2).sum()))
    n_eff = float(pos.sum()) if n is None else n
    return mu, sigma, sigma / math.sqrt(n_eff), sigma / math.sqrt(2 * n_eff)


def token_fits(
    name: str, mu: float, sigma: float, se_mu: float, se_sigma: float, src: str, n: float
) -> dict[str, Fit]:
    """The fits of one token-length field: lognormal median and sigma, and the quantile table.

    ``mu``, ``sigma`` and their standard errors come from ``lognormal_fit`` on ``n`` requests
    of the source ``src``; ``name`` prefixes the parameter names (e.g. ``input_tokens``).
    """
    how = f"lognormal maximum likelihood on {int(n):,} requests: mu, sigma = mean, sd of ln x"
    return {
        f"{name}.lognormal_median": Fit(
            round_sig(math.exp(mu)), "tokens", src, how + "; median = exp(mu)", math.exp(mu) * se_mu
        ),
        f"{name}.lognormal_sigma": Fit(round_sig(sigma), "ln tokens", src, how, se_sigma),
        f"{name}.quantiles": Fit(
            "table above",
            "tokens",
            src,
            "empirical quantile table (linear percentiles at `probs`), sampled by inverse CDF",
        ),
    }


# --------------------------------------------------------------------------- arrivals


def _moments(t: NDArray[np.float64], keys: tuple[str, ...]) -> NDArray[np.float64]:
    """The named arrival statistics of sorted times ``t`` (stats.py definitions)."""
    out = np.empty(len(keys))
    gaps = np.diff(t)
    for k, key in enumerate(keys):
        if key == "iat_cv":
            out[k] = gaps.std() / gaps.mean()
        else:  # idc_Ws
            w = float(key[4:-1])
            c = counts_in_windows(t, w)
            out[k] = c.var() / c.mean() if c is not None and c.mean() > 0 else np.nan
    return out


def simulate_cluster(
    rng: np.random.Generator, rate: float, m: float, tau: float, cv: float, span: float
) -> NDArray[np.float64]:
    """Sorted arrival times (s) in [0, span) of a stationary cluster process.

    Poisson sessions at rate/m per s, Geometric(mean m) requests each, Gamma(mean tau, CV cv)
    gaps: the law of ``sim.engine.demand._sessions`` within one hour of constant rate.
    """
    pad = min(4.0 * tau * max(m - 1.0, 0.0), 4.0 * span)
    n_s = int(rng.poisson(rate / m * (span + pad)))
    starts = rng.uniform(-pad, span, n_s)
    sizes = np.ones(n_s, dtype=np.int64) if m <= 1.0 else rng.geometric(1.0 / m, n_s)
    total = int(sizes.sum())
    shape = 1.0 / (cv * cv)
    gaps = rng.exponential(tau, total) if cv == 1.0 else rng.gamma(shape, tau / shape, total)
    first = np.cumsum(sizes) - sizes
    gaps[first] = 0.0
    cs = np.cumsum(gaps)
    sid = np.repeat(np.arange(n_s), sizes)
    t = starts[sid] + cs - cs[first][sid]
    t = np.sort(t[(t >= 0) & (t < span)])
    return t


@dataclass
class ArrivalFit:
    """Fitted cluster process and how well it reproduces the trace's moments."""

    m: float
    tau: float
    cv: float
    rate: float
    keys: tuple[str, ...]
    real: NDArray[np.float64]
    fitted: NDArray[np.float64]
    se: dict[str, float | None]


MIN_FIT_REQUESTS = 100
"""Fewest requests of a trace whose arrivals calibrate fits."""
MIN_FIT_SPAN_S = 600.0
"""Shortest span of a trace whose arrivals calibrate fits (s): ten 60-s count windows."""


def fit_arrivals(  # noqa: C901 - grid then two refinements, one loop each; to split
    t: NDArray[np.float64], keys: tuple[str, ...], fit_cv: bool = True
) -> ArrivalFit:
    """Simulated method of moments for (m, tau, cv) on the trace's arrival times (s)."""
    t = np.sort(np.asarray(t, dtype=float))
    t = t - t[0]
    span = float(t[-1])
    if len(t) < MIN_FIT_REQUESTS or span < MIN_FIT_SPAN_S:
        raise CalibrationError(
            f"{len(t)} requests over {span:.0f} s: fitting arrivals needs at least"
            f" {MIN_FIT_REQUESTS} requests over {MIN_FIT_SPAN_S:.0f} s"
        )
    rate = len(t) / span
    real = _moments(t, keys)
    lreal = np.log(real)
    weights = np.array([SMM_WEIGHTS.get(k, 1.0) for k in keys])
    ss = np.random.SeedSequence(SMM_SEED)
    seeds = ss.spawn(SMM_REPLICATIONS + SMM_BOOTSTRAP)

    def model(m: float, tau: float, cv: float, which: range) -> NDArray[np.float64]:
        sims = [
            _moments(
                simulate_cluster(np.random.default_rng(seeds[i]), rate, m, tau, cv, span), keys
            )
            for i in which
        ]
        return np.asarray(sims)

    reps = range(SMM_REPLICATIONS)

    def loss(m: float, tau: float, cv: float) -> float:
        mom = model(m, tau, cv, reps).mean(axis=0)
        if not np.all(np.isfinite(mom)) or np.any(mom <= 0):
            return np.inf
        return float((weights * (np.log(mom) - lreal) ** 2).sum())

    cvs = CV_GRID if fit_cv else (1.0,)
    best = (loss(1.0, 1.0, 1.0), 1.0, 1.0, 1.0)
    for m in M_GRID[1:]:
        for tau in TAU_GRID:
            for cv in cvs:
                v = loss(m, tau, cv)
                if v < best[0]:
                    best = (v, m, tau, cv)
    step = (1.5, 10 ** (4.5 / 9 / 2), 1.41)  # half the coarse grid's ratios
    for _ in range(2):
        _, m0, t0, c0 = best
        if m0 == 1.0:
            break
        for fm in (1 / step[0], 1.0, step[0]):
            for ft in (1 / step[1], 1.0, step[1]):
                for fc in (1 / step[2], 1.0, step[2]) if fit_cv else (1.0,):
                    m, tau, cv = max(m0 * fm, 1.0), t0 * ft, c0 * fc
                    v = loss(m, tau, cv)
                    if v < best[0]:
                        best = (v, m, tau, cv)
        step = tuple(math.sqrt(s) for s in step)  # type: ignore[assignment]
    _, m, tau, cv = best
    fitted = model(m, tau, cv, reps).mean(axis=0)
    se = _smm_se(model, m, tau, cv, fit_cv, range(SMM_REPLICATIONS, len(seeds)), reps)
    se["rate"] = _rate_se(t, rate)
    return ArrivalFit(m, tau, cv, rate, keys, real, fitted, se)


def _rate_se(t: NDArray[np.float64], rate: float) -> float:
    """Standard error of the request rate from the dispersion of counts per 60 s (1/s)."""
    c = counts_in_windows(t, 60.0)
    if c is None:
        return rate / math.sqrt(len(t))
    return float(math.sqrt(c.var() * len(c)) / (len(c) * 60.0))


def _smm_se(
    model: Callable[[float, float, float, range], NDArray[np.float64]],
    m: float,
    tau: float,
    cv: float,
    fit_cv: bool,
    boot: range,
    reps: range,
) -> dict[str, float | None]:
    """Delta-method standard errors of (m, tau, cv) (None where not identified)."""
    if m <= 1.0:
        return {"m": None, "tau": None, "cv": None}
    names = ["m", "tau", "cv"] if fit_cv else ["m", "tau"]
    theta = np.log([m, tau, cv][: len(names)])
    sims = np.log(model(m, tau, cv, boot))
    cov = np.cov(sims[np.all(np.isfinite(sims), axis=1)].T)
    h = 0.1
    jac = []
    for k in range(len(names)):
        up, dn = theta.copy(), theta.copy()
        up[k] += h
        dn[k] -= h
        pu, pd_ = [*np.exp(up), 1.0][:3], [*np.exp(dn), 1.0][:3]
        mu_up = np.log(model(max(pu[0], 1.0), pu[1], pu[2], reps).mean(axis=0))
        mu_dn = np.log(model(max(pd_[0], 1.0), pd_[1], pd_[2], reps).mean(axis=0))
        jac.append((mu_up - mu_dn) / (2 * h))
    J = np.array(jac).T
    try:
        bread = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        return dict.fromkeys(["m", "tau", "cv"], None)
    var = np.diag(bread @ J.T @ cov @ J @ bread)
    out: dict[str, float | None] = {"cv": None}
    for k, nm in enumerate(names):
        out[nm] = float(math.exp(theta[k]) * math.sqrt(var[k])) if var[k] >= 0 else None
    return out


def arrival_fits(a: ArrivalFit, src: str, requests_per_day: Fit) -> dict[str, Fit]:
    """The fits of a segment's arrivals from a fitted cluster process, for source ``src``.

    Requests per session, think time mean and CV, the trace's request rate, and sessions per
    day = ``requests_per_day`` / requests per session.
    """
    moments = ", ".join(
        f"{k} {r:.3g} (model {f:.3g})" for k, r, f in zip(a.keys, a.real, a.fitted, strict=True)
    )
    how = f"simulated method of moments on {moments}"
    sessions = requests_per_day.value / a.m
    return {
        "requests_per_session": Fit(round_sig(a.m), "requests", src, how, a.se["m"]),
        "think_time_s": Fit(round_sig(a.tau), "s", src, how, a.se["tau"]),
        "think_time_cv": Fit(
            round_sig(a.cv),
            "1",
            src,
            how
            if ("cv" in a.se and a.se["cv"] is not None) or a.cv != 1
            else "fixed at 1 (exponential): not identified by the moments used",
            a.se["cv"],
        ),
        "sessions_per_day": Fit(
            round_sig(sessions),
            "sessions/day",
            src,
            "requests per subscriber per day / requests_per_session",
        ),
        "requests_per_subscriber_per_day": requests_per_day,
        "trace_request_rate": Fit(
            round_sig(a.rate), "requests/s", src, "requests / span of the trace", a.se["rate"]
        ),
    }


INTENSITY_BOOTSTRAP = 500
"""Bootstrap resamples of customers for the standard error of intensity_shape."""


def intensity_shape_fit(requests_per_client: NDArray[np.float64]) -> tuple[float, float]:
    """Gamma shape of the intensity (mean 1) matching the CV of per-customer request counts.

    Returns the shape 1/CV^2 (population CV) and its bootstrap standard error (customers
    resampled with replacement, seed ``SMM_SEED``).
    """
    n = np.asarray(requests_per_client, dtype=float)

    def shape(x: NDArray[np.float64]) -> float:
        return float((x.mean() / x.std()) ** 2)

    rng = np.random.default_rng(SMM_SEED)
    boot = [shape(rng.choice(n, len(n))) for _ in range(INTENSITY_BOOTSTRAP)]
    return shape(n), float(np.std(boot))


def top_shares(weights: NDArray[np.float64], ks: tuple[int, ...] = (1, 5, 10)) -> list[float]:
    """Shares of the total held by the largest 1, 5 and 10 weights (e.g. customers' requests)."""
    s = np.sort(np.asarray(weights, dtype=float))[::-1] / float(np.sum(weights))
    return [float(s[:k].sum()) for k in ks]
