"""Trace statistics with the calibration folder's ``stats.py`` definitions, unrounded.

The definitions are those of ``shared/data/stats.py`` (reimplemented here so that the product
does not depend on that folder; ``tests/functional/test_calibration.py`` compares both on the
shipped trace samples when ``stats.py`` is present):

* tokens: mean, p50, p90, p99 (numpy's linear percentiles), max; lognormal fit mu, sigma =
  mean and (population) standard deviation of ln(x) over x > 0;
* ratios: sum(output) / sum(input), median of output_i / input_i;
* iat_cv: std / mean of the gaps between sorted arrival times (population std);
* count_cv_Ws, idc_Ws: CV and variance / mean of the request counts in consecutive W-second
  windows from the first request, whole windows only (W = 3, 10, 60 s);
* peak_to_mean_1min: largest count per whole minute / mean count per minute;
* hour_of_day_norm: requests per hour of day (t mod 86,400 s) per day present (span / 1 day,
  at least 1), divided by its mean over the 24 hours (only for spans of 2 h or more);
* rate modulation (the product's own, not in stats.py): the 10-minute counts divided by the
  mean count of their hour of day (windows without any request are gaps, left out); its CV
  (``cv_after_hour_shape``) and autocorrelation at 1 h and 6 h (``acf_1h``, ``acf_6h``);
* client_window_iat_cv_median: the request-weighted median, over (customer, 10-min window)
  rows, of the inter-arrival CV within the window (stats.py's
  ``client_window_iat_cv_median_reqweighted``); simulated customers' windows count when they
  hold ``SERVEGEN_MIN_WINDOW_REQUESTS`` requests or more, as ServeGen's rows do;
* prefix cache: a request hits its longest leading run of already-seen hash ids (unbounded
  cache, empty at the first request); hit ratio = sum(min(hits x 512, input)) / sum(input).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from sim.units import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR

BLOCK_TOKENS = 512
"""Tokens per prefix-hash block in the Mooncake FAST'25 traces (their README)."""
WINDOWS_S = (3, 10, 60)
"""Window lengths of the count-dispersion statistics (s), as in stats.py."""
RATE_WINDOW_S = 600
"""Rate window (s): ServeGen gives one row per client per 10 minutes; stats.py uses the same."""
DAY_S = int(SECONDS_PER_DAY)
HOUR_S = int(SECONDS_PER_HOUR)
ACF_LAGS_S = (int(SECONDS_PER_HOUR), int(6 * SECONDS_PER_HOUR))
"""Lags at which the autocorrelation of the 10-minute rate is reported (s): 1 h and 6 h."""
SERVEGEN_MIN_WINDOW_REQUESTS = 10
"""ServeGen lists a customer's 10-minute window only when it holds at least this many requests
(calibration data README), so per-window statistics of simulated customers use the same cut."""
MIN_HOURLY_SPAN_S = 2 * SECONDS_PER_HOUR
"""Shortest trace span for which stats.py computes an hour-of-day shape (s)."""


def dist(x: ArrayLike) -> dict[str, float]:
    """Mean, p50, p90, p99, max and lognormal mu/sigma of token lengths (tokens)."""
    a = np.asarray(x, dtype=float)
    lx = np.log(a[a > 0])
    return {
        "n": float(len(a)),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "lognorm_mu": float(lx.mean()),
        "lognorm_sigma": float(lx.std()),
    }


def counts_in_windows(t: ArrayLike, w: float) -> NDArray[np.int64] | None:
    """Requests per consecutive ``w``-second window from the first arrival (whole windows)."""
    a = np.sort(np.asarray(t, dtype=float))
    t0 = a[0]
    k = int((a[-1] - t0) // w)
    if k < 2:
        return None
    return np.bincount(((a - t0) // w).astype(int), minlength=k + 1)[:k]


def arrival_stats(t: ArrayLike) -> dict[str, Any]:
    """Arrival statistics of times ``t`` (s).

    Inter-arrival CV, count CV and index of dispersion per 3/10/60 s, peak/mean minute, and
    the hour-of-day shape.
    """
    a = np.sort(np.asarray(t, dtype=float))
    gaps = np.diff(a)
    out: dict[str, Any] = {}
    if len(gaps) and gaps.mean() > 0:
        out["iat_mean_s"] = float(gaps.mean())
        out["iat_cv"] = float(gaps.std() / gaps.mean())
    for w in WINDOWS_S:
        c = counts_in_windows(a, w)
        if c is None or c.mean() == 0:
            continue
        out[f"count_cv_{w}s"] = float(c.std() / c.mean())
        out[f"idc_{w}s"] = float(c.var() / c.mean())
    c = counts_in_windows(a, 60)
    if c is not None and c.mean() > 0:
        out["peak_to_mean_1min"] = float(c.max() / c.mean())
    span = a[-1] - a[0]
    if span >= MIN_HOURLY_SPAN_S:
        h = ((a % DAY_S) // HOUR_S).astype(int)
        days = max(span / SECONDS_PER_DAY, 1.0)
        hc = np.bincount(h, minlength=24) / days
        out["hour_of_day_norm"] = (hc / hc.mean()).tolist()
    return out


def prefix_cache_hit_ratio(
    hash_lists: list[list[int]], inp: ArrayLike, block: int = BLOCK_TOKENS
) -> float:
    """Token hit ratio of an unbounded prefix cache, empty at the first request (share)."""
    seen: set[int] = set()
    hit = 0
    n_in = [int(v) for v in np.asarray(inp)]
    for h, n in zip(hash_lists, n_in, strict=True):
        k = 0
        for b in h:
            if b in seen:
                k += 1
            else:
                break
        hit += min(k * block, n)
        seen.update(h)
    return hit / max(sum(n_in), 1)


def request_stats(t: ArrayLike, inp: ArrayLike, out: ArrayLike) -> dict[str, Any]:
    """Every request-level statistic of a trace: tokens, ratios, arrivals."""
    ta = np.asarray(t, dtype=float)
    i = np.asarray(inp, dtype=float)
    o = np.asarray(out, dtype=float)
    span = float(ta.max() - ta.min())
    pos = i > 0
    return {
        "requests": len(ta),
        "span_s": span,
        "mean_rps": len(ta) / span if span > 0 else float("nan"),
        "input_tokens": dist(i),
        "output_tokens": dist(o),
        "out_in_ratio_of_sums": float(o.sum() / i.sum()),
        "out_in_ratio_median": float(np.median(o[pos] / i[pos])),
        "arrivals": arrival_stats(ta),
    }


def pmf_stats(values: ArrayLike, probs: ArrayLike) -> dict[str, float]:
    """Mean, p50, p90, p99, max and lognormal mu/sigma of a value/probability table.

    stats.py's ServeGen PMF definitions: a quantile is the first value whose cumulative
    probability reaches it.
    """
    v = np.asarray(values, dtype=float)
    p = np.asarray(probs, dtype=float)
    p = p / p.sum()
    o = np.argsort(v, kind="stable")
    v, p = v[o], p[o]
    c = np.cumsum(p)

    def q(a: float) -> float:
        return float(v[min(int(np.searchsorted(c, a - 1e-12)), len(v) - 1)])

    pos = v > 0
    lv = np.log(v[pos])
    pp = p[pos] / p[pos].sum()
    mu = float((pp * lv).sum())
    return {
        "mean": float((v * p).sum()),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": float(v.max()),
        "lognorm_mu": mu,
        "lognorm_sigma": float(np.sqrt((pp * (lv - mu) ** 2).sum())),
    }


def servegen_rates(arrivals: pd.DataFrame, model: str) -> dict[str, Any]:
    """One ServeGen model's aggregate rate statistics over 10-minute windows.

    stats.py's definitions: windows without any request are collection gaps, left out.
    """
    x = arrivals[arrivals["model"] == model]
    reqs = x["rate_rps"] * RATE_WINDOW_S
    t0, t1 = int(x["window_start_s"].min()), int(x["window_start_s"].max())
    first_day = t0 // DAY_S
    ndays = (t1 // DAY_S) - first_day + 1
    grid = np.arange(first_day * DAY_S, (first_day + ndays) * DAY_S, RATE_WINDOW_S)
    agg = reqs.groupby(x["window_start_s"]).sum().reindex(grid, fill_value=0.0).to_numpy()
    ok = agg > 0
    rate = agg[ok] / RATE_WINDOW_S
    hod = (grid % DAY_S) // HOUR_S
    hourly = pd.Series(agg[ok]).groupby(hod[ok]).mean().reindex(range(HOURS_PER_DAY)).to_numpy()
    daily = pd.Series(agg[ok]).groupby((grid // DAY_S)[ok]).mean().to_numpy()
    clients = int(x["client"].nunique())
    per_client = reqs.groupby(x["client"]).sum().sort_values(ascending=False).to_numpy()
    share = per_client / per_client.sum()
    return {
        **rate_modulation_stats(agg, grid),
        "client_hhi": float((share**2).sum()),
        "client_window_iat_cv_median": weighted_median(x["iat_cv"], reqs),
        "client_requests": per_client,
        "top1_client_share": float(share[:1].sum()),
        "top5_client_share": float(share[:5].sum()),
        "top10_client_share": float(share[:10].sum()),
        "days": int(ndays),
        "active_clients": clients,
        "total_requests": float(reqs.sum()),
        "mean_rps": float(rate.mean()),
        "cv_of_10min_rate": float(rate.std() / rate.mean()),
        "peak_to_mean_10min": float(rate.max() / rate.mean()),
        "hour_of_day_norm": (hourly / np.nanmean(hourly)).tolist(),
        "day_norm": (daily / daily.mean()).tolist(),
    }


def rate_after_hour_shape(counts: ArrayLike, starts: ArrayLike) -> NDArray[np.float64]:
    """Counts per rate window / the mean count of their hour of day; NaN for gap windows.

    ``starts`` are the windows' start times (s from midnight of day 0); ``counts`` may hold
    several series along leading axes (windows on the last axis), each shaped on its own.
    """
    c = np.asarray(counts, dtype=float)
    masked = np.where(c > 0, c, np.nan)
    hod = (np.asarray(starts, dtype=np.int64) % DAY_S) // HOUR_S
    hour_mean = np.empty_like(masked)
    for h in np.unique(hod):
        cols = hod == h
        hour_mean[..., cols] = np.nanmean(masked[..., cols], axis=-1, keepdims=True)
    return masked / hour_mean


def autocorrelation(x: ArrayLike, lag: int) -> NDArray[np.float64]:
    """Autocorrelation at ``lag`` steps along the last axis; pairs with a NaN (gap) left out."""
    a = np.asarray(x, dtype=float)
    d = a - np.nanmean(a, axis=-1, keepdims=True)
    return np.asarray(
        np.nanmean(d[..., :-lag] * d[..., lag:], axis=-1) / np.nanmean(d * d, axis=-1)
    )


def rate_modulation_stats(counts: ArrayLike, starts: ArrayLike) -> dict[str, float]:
    """CV and autocorrelation (1 h, 6 h) of the 10-minute rate after its hour-of-day shape."""
    r = rate_after_hour_shape(counts, starts)
    out = {"cv_after_hour_shape": float(np.nanstd(r) / np.nanmean(r))}
    for lag in ACF_LAGS_S:
        out[f"acf_{lag // HOUR_S}h"] = float(autocorrelation(r, lag // RATE_WINDOW_S))
    return out


def weighted_median(values: ArrayLike, weights: ArrayLike) -> float:
    """The value at which the cumulative weight (values sorted) first reaches half (stats.py)."""
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    o = np.argsort(v, kind="stable")
    cw = np.cumsum(w[o]) / w.sum()
    return float(v[o][np.searchsorted(cw, 0.5)])


def client_window_iat_cv(t: ArrayLike, client: ArrayLike) -> float:
    """Request-weighted median inter-arrival CV of customers within their 10-minute windows.

    Windows holding fewer than ``SERVEGEN_MIN_WINDOW_REQUESTS`` requests are left out.
    """
    d = pd.DataFrame({"t": np.asarray(t, dtype=float), "c": np.asarray(client)})
    d["w"] = (d["t"] // RATE_WINDOW_S).astype(np.int64)
    d = d.sort_values(["c", "w", "t"], kind="stable")
    d["gap"] = d.groupby(["c", "w"])["t"].diff()
    g = d.groupby(["c", "w"])
    st = pd.DataFrame({"n": g.size(), "mean": g["gap"].mean(), "sd": g["gap"].std(ddof=0)})
    st = st[(st["n"] >= SERVEGEN_MIN_WINDOW_REQUESTS) & (st["mean"] > 0)]
    return weighted_median(st["sd"] / st["mean"], st["n"])


def rate_10min_cv(t: ArrayLike) -> float:
    """CV of the request rate over the whole 10-minute windows of a trace.

    Windows start at midnight of day 0; empty ones are kept (a simulation has no gaps).
    """
    a = np.asarray(t, dtype=float)
    n = int(np.ceil(a.max() / RATE_WINDOW_S))
    c = np.bincount((a // RATE_WINDOW_S).astype(int), minlength=n)[:n].astype(float)
    return float(c.std() / c.mean())


def azure2024_profile(profile: pd.DataFrame, cls: str) -> dict[str, Any]:
    """Hour-of-day shape (UTC) and day shape of one class of the digitised Azure 2024 week."""
    x = profile[profile["class"] == cls]
    ts = pd.to_datetime(x["hour_start_utc"])
    v = pd.Series(x["approx_requests_per_min"].to_numpy(dtype=float), index=ts)
    hod = v.groupby(v.index.hour).mean()
    day = v.groupby(v.index.date).mean()
    return {
        "mean_requests_per_min": float(v.mean()),
        "hour_of_day_norm": (hod / hod.mean()).tolist(),
        "day_norm": {pd.Timestamp(k).weekday(): float(val / day.mean()) for k, val in day.items()},
    }
