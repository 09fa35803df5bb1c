"""Workload presets fitted on real LLM traces (``tokensim calibrate``).

Each preset is the demand part of a segment (kind, sessions, think times, profiles, token
lengths, cache-hit share), written as a YAML anchor under a top-level ``x-`` key so that a
scenario can paste the file at its top and merge it into a segment with ``<<: *name``; a
second ``x-fit-NAME`` key lists, per parameter, its value, unit, source file, fitting method
and standard error. ``docs/calibration.md`` explains every step; in short:

* **token lengths**: an empirical quantile table (``dist: empirical``) at the probabilities
  ``TABLE_PROBS`` (numpy's linear percentiles of the trace; for ServeGen the first value whose
  cumulative probability reaches p), and the lognormal maximum-likelihood fit (mu, sigma =
  mean and sd of ln x) with standard errors sigma/sqrt(n) and sigma/sqrt(2n) as an
  alternative;
* **arrivals**: the segment's cluster process (Poisson sessions, geometric requests per
  session, Gamma think times) fitted by the simulated method of moments: requests per session
  m, think time mean tau and CV c minimise the squared log differences between the trace's
  and the model's inter-arrival CV and indices of dispersion of counts per 3, 10 and 60 s
  (Mooncake: 10 and 60 s only, c fixed at 1, because its times sit on 3-s slots), with the
  session rate set so that the request rate equals the trace's; the model's moments are
  averaged over ``SMM_REPLICATIONS`` simulated traces of the trace's span with common random
  numbers; a coarse grid then two local refinements. Standard errors by the delta method:
  the covariance of the log moments over ``SMM_BOOTSTRAP`` parametric-bootstrap traces,
  mapped through the Jacobian of the log moments in the log parameters (finite differences);
* **profiles**: hour-of-day and weekday shapes of the digitised Azure 2024 week (UTC; code
  for coders, conversation for chat) and ServeGen's hour-of-day shape for API customers;
* **cache-hit shares**: Mooncake's prefix hashes (unbounded cache), Copilot's cached-prompt
  share and DeepSeek's on-disk cache share (``published_aggregates.json``);
* **requests per subscriber per day** (not identifiable from an aggregate trace): named
  assumptions below, except ServeGen (mean rate per active customer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from numpy.typing import NDArray

from sim import tracestats as TS
from sim.traces import (
    Trace,
    TraceError,
    azure_class,
    detect,
    read_json,
    read_table,
    read_trace,
)

TABLE_PROBS: tuple[float, ...] = tuple(k / 50 for k in range(50)) + (0.99, 0.995, 0.999, 1.0)
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

CHAT_REQUESTS_PER_DAY = 4.5
"""Requests per chat subscriber per day (requests/day). Assumption: the baseline chat
segment's 1.5 sessions x 3 requests; no per-user rate is published in the traces."""
CODER_REQUESTS_PER_DAY_DEFAULT = 30.93
"""Requests per coder per day when published_aggregates.json is not given (requests/day):
the GitHub Copilot coding agent's LLM calls per session (June 2026 dataset card), at one
session per day (assumption)."""
CHAT_CACHE_HIT_DEFAULT = 0.358
"""Chat cache-hit share when no Mooncake trace is given: its unbounded prefix-cache token hit
ratio (shared/data README, section 2)."""
MOONCAKE_WINDOW_START_S = 12 * 3600.0
"""Time of day at which the validation compares the Mooncake trace's window (s): the trace
has no clock; noon is an arbitrary, documented choice."""


class CalibrationError(ValueError):
    """Missing or unusable calibration input; the message says which file or preset."""


# --------------------------------------------------------------------------- helpers


def _sig(x: float, digits: int = 4) -> float:
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
        d: dict[str, Any] = {"value": self.value, "unit": self.unit, "source": self.source,
                             "method": self.method}  # fmt: skip
        if self.se is not None:
            d["se"] = _sig(self.se, 3)
        return d


@dataclass
class Preset:
    """A fitted demand preset: the segment fragment, its fits and its validation targets."""

    name: str
    description: str
    segment: dict[str, Any]
    fits: dict[str, Fit]
    sources: list[str]
    real: dict[str, Any] = field(default_factory=dict)  # real statistics for validation
    window: tuple[float, float] | None = None  # time of day (s) of the real arrival window
    lognormal: dict[str, tuple[float, float]] = field(default_factory=dict)  # mu, sigma

    def yaml(self) -> str:
        """The preset file's text: header comments, the anchored fragment, the fits."""
        head = [
            f"# tokensim workload preset '{self.name}': {self.description}",
            "# Generated by `tokensim calibrate` from: " + ", ".join(self.sources),
            "# Do not edit: re-run the command (docs/calibration.md). Use: paste this file at",
            "# the top of a scenario, then in `segments:` write a segment as",
            f"#   - <<: *{self.name}",
            "#     name: ..., plans: [...], initial_subscribers: ..., model_preference: {...},",
            "#     value_per_mtok: ..., churn_intercept: ...",
            "# `x-` keys are ignored by the schema; x-fit lists each parameter's source and fit.",
        ]
        body = yaml.safe_dump(self.segment, sort_keys=False, default_flow_style=None, width=96)
        fits = yaml.safe_dump(
            {k: f.as_dict() for k, f in self.fits.items()}, sort_keys=False, width=96
        )
        return (
            "\n".join(
                head
                + [f"x-{self.name}: &{self.name}"]
                + ["  " + line for line in body.rstrip().splitlines()]
                + [f"x-fit-{self.name}:"]
                + ["  " + line for line in fits.rstrip().splitlines()]
            )
            + "\n"
        )


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


def _token_fits(
    name: str, mu: float, sigma: float, se_mu: float, se_sigma: float, src: str, n: float
) -> dict[str, Fit]:
    how = f"lognormal maximum likelihood on {int(n):,} requests: mu, sigma = mean, sd of ln x"
    return {
        f"{name}.lognormal_median": Fit(
            _sig(math.exp(mu)), "tokens", src, how + "; median = exp(mu)", math.exp(mu) * se_mu
        ),
        f"{name}.lognormal_sigma": Fit(_sig(sigma), "ln tokens", src, how, se_sigma),
        f"{name}.quantiles": Fit(
            "table above",
            "tokens",
            src,
            "empirical quantile table (linear percentiles at `probs`), sampled by inverse CDF",
        ),  # fmt: skip
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
            c = TS.counts_in_windows(t, w)
            out[k] = c.var() / c.mean() if c is not None and c.mean() > 0 else np.nan
    return out


def simulate_cluster(
    rng: np.random.Generator, rate: float, m: float, tau: float, cv: float, span: float
) -> NDArray[np.float64]:
    """Sorted arrival times (s) in [0, span) of a stationary cluster process.

    Poisson sessions at rate/m per s, Geometric(mean m) requests each, Gamma(mean tau, CV cv)
    gaps: the law of ``sim.workload._sessions`` within one hour of constant rate.
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


def fit_arrivals(t: NDArray[np.float64], keys: tuple[str, ...], fit_cv: bool = True) -> ArrivalFit:
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
            )  # fmt: skip
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
    c = TS.counts_in_windows(t, 60.0)
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


def _arrival_fits(a: ArrivalFit, src: str, requests_per_day: Fit) -> dict[str, Fit]:
    moments = ", ".join(
        f"{k} {r:.3g} (model {f:.3g})" for k, r, f in zip(a.keys, a.real, a.fitted, strict=True)
    )
    how = f"simulated method of moments on {moments}"
    sessions = requests_per_day.value / a.m
    return {
        "requests_per_session": Fit(_sig(a.m), "requests", src, how, a.se["m"]),
        "think_time_s": Fit(_sig(a.tau), "s", src, how, a.se["tau"]),
        "think_time_cv": Fit(
            _sig(a.cv),
            "1",
            src,
            how
            if "cv" in a.se and a.se["cv"] is not None or a.cv != 1
            else "fixed at 1 (exponential): not identified by the moments used",
            a.se["cv"],
        ),  # fmt: skip
        "sessions_per_day": Fit(
            _sig(sessions),
            "sessions/day",
            src,
            "requests per subscriber per day / requests_per_session",
        ),  # fmt: skip
        "requests_per_subscriber_per_day": requests_per_day,
        "trace_request_rate": Fit(
            _sig(a.rate), "requests/s", src, "requests / span of the trace", a.se["rate"]
        ),
    }


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """The calibration files found among the arguments, by kind."""

    azure_code: Path | None = None
    azure_conv: Path | None = None
    mooncake: Path | None = None
    servegen_arrivals: Path | None = None
    servegen_pmf: Path | None = None
    servegen_client_tokens: Path | None = None
    azure2024_profile: Path | None = None
    aggregates: Path | None = None

    @classmethod
    def from_files(cls, files: list[Path]) -> Inputs:
        """Recognise each file by its header (as stats.py does); error on an unknown one."""
        inp = cls()
        for f in files:
            kind = detect(f)
            if kind is None:
                raise CalibrationError(f"{f.name}: format not recognised")
            attr = f"azure_{azure_class(f)}" if kind == "azure" else kind
            if getattr(inp, attr) is not None:
                raise CalibrationError(f"{f.name}: a second {attr.replace('_', ' ')} file")
            setattr(inp, attr, f)
        return inp


def _profile(inp: Inputs, cls: str) -> tuple[list[float], list[float], str]:
    """Hour-of-day (UTC) and weekday (Monday first) shapes of an Azure 2024 class."""
    if inp.azure2024_profile is None:
        return [1.0] * 24, [1.0] * 7, "flat (no azure2024 profile given)"
    p = TS.azure2024_profile(read_table(inp.azure2024_profile), cls)
    hours = [round(v, 3) for v in p["hour_of_day_norm"]]
    week = [round(p["day_norm"][d], 3) for d in range(7)]
    return hours, week, inp.azure2024_profile.name


def _aggregates(inp: Inputs) -> dict[str, Any]:
    return read_json(inp.aggregates) if inp.aggregates is not None else {}


# --------------------------------------------------------------------------- presets


def _trace_preset(
    name: str,
    description: str,
    kind: str,
    tr: Trace,
    keys: tuple[str, ...],
    fit_cv: bool,
    profile: tuple[list[float], list[float], str],
    requests_per_day: Fit,
    cache: Fit,
    window: tuple[float, float] | None,
    extra_sources: list[str],
) -> Preset:
    src = tr.name
    hours, week, psrc = profile
    try:
        af = fit_arrivals(tr.t, keys, fit_cv)
    except CalibrationError as e:
        raise CalibrationError(f"{src}: {e}") from None
    fin = _arrival_fits(af, src, requests_per_day)
    inp, out = tr.input.astype(float), tr.output.astype(float)
    fits: dict[str, Fit] = {}
    lognormal = {}
    for fld, x in (("input_tokens", inp), ("output_tokens", out)):
        mu, sg, se_mu, se_sg = lognormal_fit(x)
        fits.update(_token_fits(fld, mu, sg, se_mu, se_sg, src, len(x)))
        lognormal[fld] = (mu, sg)
    fits.update(fin)
    fits["hour_profile"] = Fit(
        "list above", "relative rate per hour (UTC)", psrc, "hour-of-day mean / overall mean"
    )
    fits["weekday_profile"] = Fit(
        "list above", "relative rate per weekday, Monday first", psrc, "day mean / week mean"
    )
    fits["cache_hit_share"] = cache
    seg = {
        "kind": kind,
        "sessions_per_day": fin["sessions_per_day"].value,
        "requests_per_session": fin["requests_per_session"].value,
        "think_time_s": fin["think_time_s"].value,
        "think_time_cv": fin["think_time_cv"].value,
        "hour_profile": hours,
        "weekday_profile": week,
        "input_tokens": token_table(inp),
        "output_tokens": token_table(out),
        "cache_hit_share": cache.value,
    }
    real = TS.request_stats(tr.t, inp, out)
    if "flat" not in psrc:
        real["profile_peak_to_mean"] = max(hours)
    srcs = [src, *([psrc] if "flat" not in psrc else []), *extra_sources]
    return Preset(name, description, seg, fits, sorted(set(srcs)), real, window, lognormal)


def _window(tr: Trace, start: float | None = None) -> tuple[float, float]:
    """Time of day (s) of the trace's arrivals, or of a same-length window at ``start``."""
    if start is None:
        return float(tr.t[0] % 86400), float(tr.t[-1] % 86400)
    return start, start + float(tr.t[-1] - tr.t[0])


def presets(inp: Inputs) -> list[Preset]:
    """Every preset the given files allow, in a fixed order."""
    agg = _aggregates(inp)
    out: list[Preset] = []
    chat_cache = Fit(CHAT_CACHE_HIT_DEFAULT, "share", "shared/data README (section 2)",
                     "Mooncake unbounded prefix-cache token hit ratio")  # fmt: skip
    mooncake = read_trace(inp.mooncake, "mooncake") if inp.mooncake else None
    if mooncake is not None and mooncake.hash_ids is not None:
        hit = TS.prefix_cache_hit_ratio(mooncake.hash_ids, mooncake.input)
        chat_cache = Fit(
            _sig(hit, 3), "share", mooncake.name,
            "prefix hashes, unbounded cache empty at the first request: hit tokens / input",
        )  # fmt: skip
    chat_rpd = Fit(CHAT_REQUESTS_PER_DAY, "requests/day", "assumption (sim/calibrate.py)",
                   "baseline chat segment: 1.5 sessions x 3 requests")  # fmt: skip
    if inp.azure_code is not None:
        code = read_trace(inp.azure_code, "azure")
        cop = agg.get("github_copilot_coding_agent_2026", {})
        asrc = inp.aggregates.name if inp.aggregates else "sim/calibrate.py"
        rpd = Fit(
            _sig(float(cop.get("llm_calls_per_session_derived",
                               CODER_REQUESTS_PER_DAY_DEFAULT))), "requests/day", asrc,
            "GitHub Copilot coding agent LLM calls per session, one session per day"
            " (assumption)",
        )  # fmt: skip
        if "cached_prompt_share_derived" in cop:
            cache = Fit(_sig(float(cop["cached_prompt_share_derived"]), 3), "share", asrc,
                        "GitHub Copilot coding agent: cached / all prompt tokens")  # fmt: skip
        else:
            cache = Fit(0.0, "share", "none given", "no cache data for coders")
        out.append(
            _trace_preset(
                "coder_azure_code",
                "coders, Azure OpenAI code service (2023 trace)",
                "coder",
                code,
                ("iat_cv", "idc_3s", "idc_10s", "idc_60s"),
                True,
                _profile(inp, "code"),
                rpd,
                cache,
                _window(code),
                [inp.aggregates.name] if inp.aggregates else [],
            )  # fmt: skip
        )
    if inp.azure_conv is not None:
        conv = read_trace(inp.azure_conv, "azure")
        out.append(
            _trace_preset(
                "chat_azure_conv",
                "chat users, Azure OpenAI conversation service (2023 trace)",
                "chat",
                conv,
                ("iat_cv", "idc_3s", "idc_10s", "idc_60s"),
                True,
                _profile(inp, "conv"),
                chat_rpd,
                chat_cache,
                _window(conv),
                [mooncake.name] if mooncake else [],
            )  # fmt: skip
        )
    if mooncake is not None:
        out.append(
            _trace_preset(
                "chat_mooncake",
                "chat users, Kimi (Moonshot AI) conversation trace (Mooncake)",
                "chat",
                mooncake,
                ("idc_10s", "idc_60s"),
                False,
                _profile(inp, "conv"),
                chat_rpd,
                chat_cache,
                _window(mooncake, MOONCAKE_WINDOW_START_S),
                [],
            )  # fmt: skip
        )
    if inp.servegen_arrivals is not None and inp.servegen_pmf is not None:
        out.extend(_servegen_presets(inp, agg))
    if not out:
        raise CalibrationError(
            "no preset can be fitted from these files: give an Azure code or conversation CSV,"
            " a Mooncake JSONL, or ServeGen arrivals together with a ServeGen token PMF"
        )
    return out


def _servegen_presets(inp: Inputs, agg: dict[str, Any]) -> list[Preset]:
    assert inp.servegen_arrivals is not None and inp.servegen_pmf is not None
    arr = read_table(inp.servegen_arrivals)
    pmf = read_table(inp.servegen_pmf)
    ct = read_table(inp.servegen_client_tokens) if inp.servegen_client_tokens else None
    asrc, psrc = inp.servegen_arrivals.name, inp.servegen_pmf.name
    ds = agg.get("deepseek_v3_r1_online_service_24h", {})
    if "input_cache_hit_share" in ds:
        assert inp.aggregates is not None
        cache = Fit(_sig(float(ds["input_cache_hit_share"]), 3), "share", inp.aggregates.name,
                    "DeepSeek online service, 24 h of Feb 2025: cache-hit input / all input"
                    " (whole platform; ServeGen publishes no cache data)")  # fmt: skip
    else:
        cache = Fit(0.0, "share", "none given", "no cache data for API customers")
    out = []
    for model in sorted(set(arr["model"]) & set(pmf["model"])):
        rs = TS.servegen_rates(arr, model)
        per_client_day = rs["mean_rps"] / rs["active_clients"] * 86400.0
        fits: dict[str, Fit] = {}
        seg_tokens: dict[str, Any] = {}
        real: dict[str, Any] = {"servegen": rs}
        lognormal = {}
        n_req = float("nan")
        if ct is not None:
            x = ct[(ct["model"] == model) & (ct["requests"] > 0)]
            n_req = float(x["requests"].sum())
        for fld in ("input_tokens", "output_tokens"):
            y = pmf[(pmf["model"] == model) & (pmf["field"] == fld)]
            v, p = y["tokens"].to_numpy(dtype=float), y["prob"].to_numpy(dtype=float)
            if len(v) == 0:
                raise CalibrationError(f"{psrc}: no {fld} rows for model {model}")
            seg_tokens[fld] = pmf_table(v, p)
            n = n_req if math.isfinite(n_req) else 1.0
            mu, sg, se_mu, se_sg = lognormal_fit(v, n, p)
            if not math.isfinite(n_req):
                se_mu = se_sg = float("nan")
            fits.update(_token_fits(fld, mu, sg, se_mu, se_sg, psrc, n))
            lognormal[fld] = (mu, sg)
            real[fld] = TS.pmf_stats(v, p)
        fits["requests_per_session"] = Fit(
            1.0, "requests", asrc,
            "1: Poisson arrivals per customer (ServeGen's request-weighted median per-customer"
            " inter-arrival CV is near 1)",
        )  # fmt: skip
        fits["sessions_per_day"] = Fit(
            _sig(per_client_day), "requests/day", asrc,
            "mean request rate / active customers x 86,400 (10-min windows, gaps left out)",
        )  # fmt: skip
        fits["hour_profile"] = Fit(
            "list above",
            "relative rate per hour (trace clock)",
            asrc,
            "10-min aggregate rate, mean per hour of day / mean",
        )
        fits["weekday_profile"] = Fit(
            "list above", "relative rate per weekday", asrc,
            "flat: ServeGen does not publish the weekday of its day 0",
        )  # fmt: skip
        fits["cache_hit_share"] = cache
        shape, shape_se = intensity_shape_fit(rs["client_requests"])
        fits["intensity_shape"] = Fit(
            _sig(shape), "1", asrc,
            f"Gamma intensity (mean 1) by moments: 1 / CV^2 of the {rs['active_clients']}"
            " customers' request counts over the period; se by bootstrap over customers",
            shape_se,
        )  # fmt: skip
        seg = {
            "kind": "enterprise_bot",
            "sessions_per_day": fits["sessions_per_day"].value,
            "requests_per_session": 1.0,
            "intensity_shape": fits["intensity_shape"].value,
            "hour_profile": [round(v, 3) for v in rs["hour_of_day_norm"]],
            "weekday_profile": [1.0] * 7,
            "input_tokens": seg_tokens["input_tokens"],
            "output_tokens": seg_tokens["output_tokens"],
            "cache_hit_share": cache.value,
        }
        real["out_in_ratio_of_means"] = real["output_tokens"]["mean"] / real["input_tokens"]["mean"]
        srcs = (
            [asrc, psrc]
            + ([inp.servegen_client_tokens.name] if inp.servegen_client_tokens else [])
            + ([inp.aggregates.name] if inp.aggregates else [])
        )
        name = "api_servegen_" + model.replace("-", "_")
        out.append(Preset(name, f"API customers, Alibaba Model Studio {model} (ServeGen)", seg,
                          fits, srcs, real, None, lognormal))  # fmt: skip
    return out


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


def write_presets(ps: list[Preset], out_dir: Path) -> list[Path]:
    """Write one YAML file per preset into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for p in ps:
        path = out_dir / f"{p.name}.yaml"
        path.write_text(p.yaml(), encoding="utf-8")
        paths.append(path)
    return paths


DATA_SUFFIXES = (".csv", ".jsonl", ".json")
"""File types calibrate reads (optionally .gz); others (a folder's README) are passed over."""


def data_files(files: list[Path]) -> list[Path]:
    """The files among ``files`` that calibrate reads: CSV, JSONL or JSON, optionally .gz."""
    return [f for f in files if f.name.removesuffix(".gz").endswith(DATA_SUFFIXES)]


def calibrate(files: list[Path]) -> list[Preset]:
    """Fit every preset the files allow (``CalibrationError`` on bad input)."""
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise CalibrationError(f"{missing[0]}: no such file")
    try:
        return presets(Inputs.from_files(data_files(files)))
    except (TraceError, KeyError) as e:
        raise CalibrationError(str(e)) from None


def load_preset(path: Path) -> dict[str, Any]:
    """The segment fragment of a preset file (the mapping under its ``x-NAME`` anchor)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    name = path.stem
    return dict(data[f"x-{name}"])


def use_presets(ps: list[Preset], folder: Path) -> list[Preset]:
    """Replace the fitted segments of ``ps`` by the presets of the same name in ``folder``.

    The real statistics stay those of the traces just read, so the validation report then
    compares presets fitted elsewhere (e.g. the shipped ones) with these traces: an
    out-of-sample check. Presets without a file in ``folder`` are left out.
    """
    out = []
    for p in ps:
        path = folder / f"{p.name}.yaml"
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            segment = dict(data[f"x-{p.name}"])
            fits = data.get(f"x-fit-{p.name}", {})
            lognormal = {
                fld: (
                    math.log(float(fits[f"{fld}.lognormal_median"]["value"])),
                    float(fits[f"{fld}.lognormal_sigma"]["value"]),
                )
                for fld in ("input_tokens", "output_tokens")
            }
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
            raise CalibrationError(f"{path}: not a preset file ({e})") from None
        desc = f"{p.description}; preset from {folder.as_posix()}/{path.name}"
        out.append(Preset(p.name, desc, segment, p.fits, p.sources, p.real, p.window, lognormal))
    if not out:
        raise CalibrationError(f"{folder}: no preset file matches the presets these traces give")
    return out


def preset_frame(ps: list[Preset]) -> pd.DataFrame:
    """Fitted parameters of every preset as a table (for docs and tests)."""
    rows = [
        {
            "preset": p.name,
            "parameter": k,
            "value": f.value,
            "unit": f.unit,
            "se": f.se,
            "source": f.source,
        }  # fmt: skip
        for p in ps
        for k, f in p.fits.items()
    ]
    return pd.DataFrame(rows)
