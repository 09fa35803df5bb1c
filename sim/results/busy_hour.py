"""Busy-hour figures: the load and latency a capacity planner sizes for.

The busy hour follows telecom traffic engineering (ITU-T E.500): per month and pool, the
*time-consistent busy hour* is the hour of the day whose offered load, summed over the
month's days, is the highest. Offered load is the slot-seconds of work that reached the
pool (admitted requests and requests refused for want of a working slot) by arrival hour;
divided by 3600 s and the month's days it is in Erlangs (busy slots a pool of infinite size
would hold on average). At that hour this module reads:

- utilisation: busy slot-seconds / working slot-seconds over the month's busy hours (the
  carried load);
- offered load ratio: offered slot-seconds / working slot-seconds (above 1 the pool cannot
  keep up, whatever its queue);
- the latency percentiles (wait, TTFT, TPOT, end-to-end; p50, p95, p99) of the requests
  arriving in those hours, from the engine's per-request histograms (within 1.6%, see
  sim.engine.resolution), per SLA class and over the SLA classes together;
- goodput share: requests served in their class within every SLO target / requests offered
  to the pool in that class, refusals and throttled requests counted as misses, beside the
  served-only SLO attainment (met / served in class).

The peak-hour utilisation (the single busiest hour of the month) is reported beside it: the
time-consistent busy hour averages over the month's days, so weekends and growth within the
month put it below the single worst hour.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.engine.accounting import SLO_COUNTED, SLO_MET, SLO_OFFERED
from sim.engine.metrics import LATENCY, hist_quantiles
from sim.engine.replication import ReplicationResult
from sim.units import HOURS_PER_DAY, SECONDS_PER_HOUR

QUANTILES = (0.5, 0.95, 0.99)
"""Latency percentiles every latency table reports."""
ALL_CLASSES = "all"
"""SLA-class label of the rows that pool every SLA class of a pool (throttled excluded)."""
THROTTLED = "throttled"
"""SLA-class label of slow-lane and downgraded requests (served outside any SLO)."""


def quantile_columns() -> list[str]:
    """Latency percentile columns, e.g. ``ttft_p95_s``, in LATENCY x QUANTILES order."""
    return [f"{m.removesuffix('_s')}_p{round(q * 100)}_s" for m in LATENCY for q in QUANTILES]


def _ratio(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ratio a / b, NaN where b is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def month_hours(r: ReplicationResult, name: str) -> NDArray[np.float64]:
    """An hourly metric as month x day x hour of day x pool (the horizon only)."""
    w = r.world
    hours = w.horizon_days * HOURS_PER_DAY
    x = r.acc.hourly[name][:hours]
    return x.reshape(w.horizon_months, w.days_per_month, HOURS_PER_DAY, -1)


def busy_hours(r: ReplicationResult) -> NDArray[np.int64]:
    """Month x pool: the hour of day with the most offered slot-seconds over the month's days.

    Ties (a pool with no traffic) resolve to the earliest hour.
    """
    offered = month_hours(r, "offered_slot_s").sum(axis=1)  # month x hour x pool
    return np.argmax(offered, axis=1)


def take_hour(x: NDArray[Any], hours: NDArray[np.int64]) -> NDArray[Any]:
    """Of x (month x hour of day x pool x ...), the entries at each (month, pool)'s hour."""
    idx = hours.reshape(hours.shape[0], 1, hours.shape[1], *([1] * (x.ndim - 3)))
    return np.take_along_axis(x, idx, axis=1)[:, 0]


def pool_busy_hour(r: ReplicationResult) -> dict[str, NDArray[np.float64]]:
    """Month x pool arrays: busy hour, offered load (Erlangs), its ratio to capacity, utilisation.

    Keys: ``busy_hour`` (hour of day), ``offered_load_erlangs``, ``slots`` (mean working
    slots at the busy hour), ``offered_load_ratio``, ``utilisation`` (busy hour, carried),
    ``peak_hour_utilisation`` (the month's single busiest hour), ``offered``, ``met``.
    """
    w = r.world
    hours = busy_hours(r)
    days = w.days_per_month
    offered_s = take_hour(month_hours(r, "offered_slot_s").sum(axis=1), hours)
    busy_s = take_hour(month_hours(r, "busy_slot_s").sum(axis=1), hours)
    slots = month_hours(r, "slots")
    cap_s = take_hour(slots.sum(axis=1), hours) * SECONDS_PER_HOUR
    per_hour_util = _ratio(month_hours(r, "busy_slot_s"), slots * SECONDS_PER_HOUR)
    peak = np.where(
        np.isnan(per_hour_util).all(axis=(1, 2)),
        np.nan,
        np.nanmax(np.nan_to_num(per_hour_util, nan=-1.0), axis=(1, 2)),
    )
    slo_at = take_hour(r.acc.slo, hours)  # month x pool x class x counts
    return {
        "busy_hour": hours.astype(np.float64),
        "offered_load_erlangs": offered_s / (days * SECONDS_PER_HOUR),
        "slots": cap_s / (days * SECONDS_PER_HOUR),
        "offered_load_ratio": _ratio(offered_s, cap_s),
        "utilisation": _ratio(busy_s, cap_s),
        "peak_hour_utilisation": peak,
        "offered": slo_at[..., SLO_OFFERED].sum(axis=-1),
        "met": slo_at[..., SLO_MET].sum(axis=-1),
    }


def _class_rows(
    r: ReplicationResult, hist: NDArray[np.int32], slo: NDArray[np.float64]
) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-class and all-classes latency percentiles, served counts and SLO counts.

    ``hist`` is ... x pool x class x metric x bin (class last = throttled), ``slo`` is
    ... x pool x class x counts. Returns (class labels, percentiles ... x pool x label x
    column, requests served ... x pool x label, SLO counts ... x pool x label x counts).
    """
    classes = [*r.world.cls.names, THROTTLED, ALL_CLASSES]
    h = np.concatenate([hist, hist[..., :-1, :, :].sum(axis=-3, keepdims=True)], axis=-3)
    s = np.concatenate([slo, slo[..., :-1, :].sum(axis=-2, keepdims=True)], axis=-2)
    served = h[..., 0, :].sum(axis=-1, dtype=np.int64).astype(np.float64)
    q = np.stack([hist_quantiles(h, qq) for qq in QUANTILES], axis=-1)  # ... x metric x q
    q = q.reshape(*q.shape[:-2], len(LATENCY) * len(QUANTILES))
    return classes, q, served, s


def _frame(
    r: ReplicationResult,
    keys: dict[str, NDArray[Any]],
    classes: list[str],
    q: NDArray[np.float64],
    served: NDArray[np.float64],
    slo: NDArray[np.float64],
) -> pd.DataFrame:
    """Tidy rows (one per key combination x pool x class) with traffic, from stacked arrays."""
    w = r.world
    n_pool, n_cls = len(w.pool.names), len(classes)
    lead = served.shape[:-2]
    grid = np.indices((*lead, n_pool, n_cls)).reshape(len(lead) + 2, -1)
    offered = slo[..., SLO_OFFERED].reshape(-1)
    df = pd.DataFrame({name: v[tuple(grid[: len(lead)])] for name, v in keys.items()})
    df.insert(0, "replication", r.replication)
    df["pool"] = np.asarray(w.pool.names, dtype=object)[grid[-2]]
    df["sla_class"] = np.asarray(classes, dtype=object)[grid[-1]]
    df["offered"] = offered
    df["requests"] = served.reshape(-1)
    df["slo_counted"] = slo[..., SLO_COUNTED].reshape(-1)
    df["slo_met"] = slo[..., SLO_MET].reshape(-1)
    df["goodput_share"] = _ratio(df["slo_met"].to_numpy(), df["offered"].to_numpy())
    df["slo_attainment_served"] = _ratio(df["slo_met"].to_numpy(), df["slo_counted"].to_numpy())
    qs = q.reshape(-1, q.shape[-1])
    for j, col in enumerate(quantile_columns()):
        df[col] = qs[:, j]
    keep = (df["offered"] > 0) | (df["requests"] > 0)
    return df[keep].reset_index(drop=True)


def latency_by_hour(r: ReplicationResult) -> pd.DataFrame:
    """Month x hour of day x pool x class: offered, served, goodput and latency percentiles."""
    w = r.world
    classes, q, served, s = _class_rows(r, r.acc.hist, r.acc.slo)
    months, hod = np.arange(w.horizon_months), np.arange(HOURS_PER_DAY)
    keys = {
        "month": np.broadcast_to(months[:, None], (len(months), HOURS_PER_DAY)),
        "hour_of_day": np.broadcast_to(hod[None, :], (len(months), HOURS_PER_DAY)),
    }
    return _frame(r, keys, classes, q, served, s)


def latency_by_month(r: ReplicationResult) -> pd.DataFrame:
    """Month x pool x class: offered, served, goodput and latency percentiles (all hours)."""
    a = r.acc
    classes, q, served, s = _class_rows(r, a.hist.sum(axis=1, dtype=np.int64), a.slo.sum(axis=1))
    df = _frame(r, {"month": np.arange(r.world.horizon_months)}, classes, q, served, s)
    n_c = len(classes)
    waits = np.concatenate([a.wait_sum, a.wait_sum[..., :-1].sum(axis=-1, keepdims=True)], axis=-1)
    wait_sum = pd.Series(waits.reshape(-1))
    idx = (
        df["month"].to_numpy() * len(r.world.pool.names)
        + pd.Categorical(df["pool"], categories=r.world.pool.names).codes
    ) * n_c + pd.Categorical(df["sla_class"], categories=classes).codes
    df.insert(
        df.columns.get_loc("requests") + 1,
        "wait_mean_s",
        _ratio(wait_sum.to_numpy()[idx], df["requests"].to_numpy()),
    )
    return df


def busy_hour_table(r: ReplicationResult) -> pd.DataFrame:
    """Month x pool x class at each (month, pool)'s busy hour: load, goodput, percentiles."""
    w = r.world
    hours = busy_hours(r)
    pool = pool_busy_hour(r)
    classes, q, served, s = _class_rows(
        r, take_hour(r.acc.hist, hours), take_hour(r.acc.slo, hours)
    )
    keys = {"month": np.arange(w.horizon_months)}
    df = _frame(r, keys, classes, q, served, s)
    j = pd.Categorical(df["pool"], categories=w.pool.names).codes
    m = df["month"].to_numpy()
    at = df.columns.get_loc("pool") + 1
    for k, name in enumerate(
        (
            "busy_hour",
            "offered_load_erlangs",
            "slots",
            "offered_load_ratio",
            "utilisation",
            "peak_hour_utilisation",
        )
    ):
        df.insert(at + k, name, pool[name][m, j])
    df["busy_hour"] = df["busy_hour"].astype(np.int64)
    return df


def busy_hour_ttft_p95(r: ReplicationResult) -> NDArray[np.float64]:
    """Month x pool: TTFT p95 of the requests in an SLA class arriving in the busy hour."""
    h = take_hour(r.acc.hist, busy_hours(r))  # month x pool x class x metric x bin
    return hist_quantiles(h[..., :-1, 1, :].sum(axis=-2, dtype=np.int64), 0.95)


def worst_busy_hour(r: ReplicationResult) -> dict[str, float]:
    """Headline busy-hour figures of one replication: the worst pool and month.

    ``busy_hour_ttft_p95_s``: the highest TTFT p95 (SLA classes together) at a pool's busy
    hour; ``busy_hour_utilisation``: the highest busy-hour utilisation; NaN without traffic.
    """
    ttft = busy_hour_ttft_p95(r)
    util = pool_busy_hour(r)["utilisation"]
    hours = busy_hours(r)
    deferred = take_hour(month_hours(r, "deferred").sum(axis=1), hours)
    offered = take_hour(month_hours(r, "offered").sum(axis=1), hours)
    moved = _ratio(deferred, offered)
    return {
        "busy_hour_ttft_p95_s": float(np.nanmax(ttft)) if np.isfinite(ttft).any() else np.nan,
        "busy_hour_utilisation": float(np.nanmax(util)) if np.isfinite(util).any() else np.nan,
        "busy_hour_deferred_share": (
            float(np.nanmax(moved)) if np.isfinite(moved).any() else np.nan
        ),
    }
