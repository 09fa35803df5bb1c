"""The numbers behind every figure and table of a report, from a folder's tables.

Each function takes tidy tables read by ``sim.report.folders`` (a run's monthly.csv,
monthly_by_plan_segment.csv, hourly_cluster.parquet, latency.csv, busy_hour.csv,
usage_windows.csv, ledger; a sweep's points.csv) and reduces them to the tables a report
shows, mostly means and 95% confidence intervals over replications. They are public so that
notebooks and tests get the numbers behind every figure without the HTML that shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.results.busy_hour import ALL_CLASSES, THROTTLED
from sim.results.intervals import Bounds, bounded_ci
from sim.results.kpis import KPIS, kpi_ci
from sim.units import SECONDS_PER_HOUR

HOURS_OF_DAY = 24


SIGNED_MONTH_COLUMNS = frozenset({"gross_margin"})
"""Monthly columns that can be negative (a loss); every other one is a count, money or share."""


def _ci_table(
    df: pd.DataFrame, by: str | list[str], col: str, bounds: Bounds = "nonneg"
) -> pd.DataFrame:
    """Mean and 95% CI of ``col`` over the rows of each group (columns mean, ci95_low/high).

    The interval stays inside ``bounds``, the column's range (sim.results.intervals).
    """
    rows = {
        key: bounded_ci(g[col].to_numpy(dtype=float), bounds)
        for key, g in df.groupby(by, observed=True)
    }
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "ci95_low", "ci95_high"])
    out.index.name = by if isinstance(by, str) else None
    return out


def _order(index: Sequence[Any], preferred: Sequence[str]) -> list[Any]:
    known = [p for p in preferred if p in set(index)]
    return known + sorted(str(i) for i in index if i not in set(known))


def month_series(months: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Per month: mean over replications of each column and its 95% CI (``col_lo``, ``col_hi``).

    ``months`` is a run's monthly.csv; units are those of the columns.
    """
    out = {}
    for c in cols:
        t = _ci_table(months, "month", c, "none" if c in SIGNED_MONTH_COLUMNS else "nonneg")
        out[c], out[f"{c}_lo"], out[f"{c}_hi"] = t["mean"], t["ci95_low"], t["ci95_high"]
    return pd.DataFrame(out)


def subscribers_by_plan(by_plan: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Month-end subscribers per month (rows) and plan (columns), mean over replications."""
    s = by_plan.groupby(["replication", "month", "plan"])["subscribers_end"].sum()
    t = s.groupby(["month", "plan"]).mean().unstack("plan").fillna(0.0)
    return t[_order(list(t.columns), plans)]


def churn_by_plan(by_plan: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Monthly churn rate (churned / renewal decisions) per month and plan, mean over replications.

    Months without renewal decisions are NaN.
    """
    g = by_plan.groupby(["replication", "month", "plan"])[["churned", "renewals"]].sum()
    rate = g["churned"] / g["renewals"].where(g["renewals"] > 0)
    t = rate.groupby(["month", "plan"]).mean().unstack("plan")
    return t[_order(list(t.columns), plans)]


def plan_table(by_plan: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Per plan over the horizon, mean per replication: subscribers, flows, churn, revenue.

    Columns: subscribers_end (last month), new, churned, switched_in, switched_out,
    churn_rate (churned / renewal decisions, share), revenue_fees, revenue_overage,
    revenue_topups, revenue_total (currency) and revenue_per_submonth (currency per
    subscriber-month).
    """
    reps = by_plan["replication"].nunique()
    last = by_plan[by_plan["month"] == by_plan["month"].max()]
    flows = [
        "new",
        "churned",
        "renewals",
        "switched_in",
        "switched_out",
        "submonths",
        "revenue_fees",
        "revenue_overage",
        "revenue_topups",
    ]
    t = by_plan.groupby("plan")[flows].sum() / reps
    t.insert(0, "subscribers_end", last.groupby("plan")["subscribers_end"].sum() / reps)
    t["subscribers_end"] = t["subscribers_end"].fillna(0.0)
    t["churn_rate"] = t["churned"] / t["renewals"].where(t["renewals"] > 0)
    t["revenue_total"] = t["revenue_fees"] + t["revenue_overage"] + t["revenue_topups"]
    t["revenue_per_submonth"] = t["revenue_total"] / t["submonths"].where(t["submonths"] > 0)
    return t.drop(columns=["renewals"]).loc[_order(list(t.index), plans)]


def quota_use(ledger: pd.DataFrame) -> pd.DataFrame:
    """Quota use of every closed subscriber-month: columns replication, plan, use (share).

    use = used_units / quota_units. Months still open at the end of the horizon (a
    partial month) and months without a quota are left out.
    """
    closed = ledger[(ledger["status"].astype(str) != "open") & (ledger["quota_units"] > 0)]
    return pd.DataFrame(
        {
            "replication": closed["replication"].to_numpy(),
            "plan": closed["plan"].astype(str).to_numpy(),
            "use": (closed["used_units"] / closed["quota_units"]).to_numpy(dtype=float),
            "exhausted": closed["exhausted"].to_numpy(dtype=bool),
        }
    )


QUOTA_PERCENTILES = (5, 25, 50, 75, 95, 99)


def quota_use_table(ledger: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Distribution of quota use per plan over all closed subscriber-months of all replications.

    Columns: subscriber_months (count), mean, p05 ... p99 (shares of the quota; numpy's
    linear percentiles), over_quota (share of months with use >= 1) and exhausted (share
    of months the ledger marks as having crossed the quota).
    """
    q = quota_use(ledger)
    rows = {}
    for plan, g in q.groupby("plan"):
        u = g["use"].to_numpy()
        row = {"subscriber_months": len(u), "mean": float(u.mean())}
        for p, v in zip(QUOTA_PERCENTILES, np.percentile(u, QUOTA_PERCENTILES), strict=True):
            row[f"p{p:02d}"] = float(v)
        row["over_quota"] = float((u >= 1.0).mean())
        row["exhausted"] = float(g["exhausted"].mean())
        rows[plan] = row
    t = pd.DataFrame.from_dict(rows, orient="index")
    t.index.name = "plan"
    return t.loc[_order(list(t.index), plans)] if len(t) else t


def token_mix(ledger: pd.DataFrame, plans: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tokens by model and class, and each plan's split across models, from the ledger.

    Returns ``(mix, share_by_plan)``: ``mix`` has one row per model and columns input_miss,
    input_hit, output (tokens per replication over the horizon); ``share_by_plan`` has one
    row per plan and one column per model (shares of the plan's tokens, rows sum to 1).
    """
    cols = [c for c in ledger.columns if c.startswith("tokens|") and c.count("|") == 2]
    reps = max(ledger["replication"].nunique(), 1)
    sums = ledger[cols].sum()
    keys = [tuple(c.split("|")[1:]) for c in cols]
    mix = pd.Series(sums.to_numpy(), index=pd.MultiIndex.from_tuples(keys)).unstack() / reps
    mix = mix.reindex(columns=["input_miss", "input_hit", "output"]).fillna(0.0)
    by_plan = ledger.groupby(ledger["plan"].astype(str))[cols].sum()
    by_plan.columns = pd.MultiIndex.from_tuples(keys)
    per_model = by_plan.T.groupby(level=0).sum().T
    total = per_model.sum(axis=1)
    share = per_model.div(total.where(total > 0), axis=0).dropna(how="all")
    return mix, share.loc[_order(list(share.index), plans)]


LATENCY_WEIGHTS = {"slo_attainment_served": "slo_counted", "goodput_share": "offered"}
"""Share columns of latency.csv and the count each is a share of (its weight in a mean)."""


def latency_table(latency: pd.DataFrame, pools: Sequence[str] = ()) -> pd.DataFrame:
    """Latency per pool and SLA class over the horizon.

    Columns: requests (served, per replication), and weighted means over months and
    replications of the mean wait, the TTFT and end-to-end percentiles (s), weighted by
    requests served, and of the served-only SLO attainment and the goodput share (shares),
    weighted by the requests each is a share of (:data:`LATENCY_WEIGHTS`: SLO-counted and
    offered requests; served requests where latency.csv lacks those counts). The weighted
    mean of a share by its denominator is the share of the sums. Percentiles of different
    months cannot be merged exactly from latency.csv; the weighted mean of monthly
    percentiles is the summary shown.
    """
    reps = max(latency["replication"].nunique(), 1)
    vals = [
        "wait_mean_s",
        *[f"{w}_p{q}_s" for w in ("ttft", "e2e") for q in (50, 95, 99)],
        "slo_attainment_served",
        "goodput_share",
    ]
    rows = []
    for (pool, cls), g in latency.groupby(["pool", "sla_class"]):
        served = g["requests"].to_numpy(dtype=float)
        row: dict[str, Any] = {"pool": pool, "sla_class": cls, "requests": served.sum() / reps}
        for v in vals:
            by = LATENCY_WEIGHTS.get(v, "requests")
            w = g[by].to_numpy(dtype=float) if by in g else served
            x = g[v].to_numpy(dtype=float)
            ok = np.isfinite(x) & (w > 0)
            row[v] = float(np.average(x[ok], weights=w[ok])) if ok.any() else float("nan")
        rows.append(row)
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    rank = {p: i for i, p in enumerate(pools)}
    t["_r"] = t["pool"].map(lambda p: rank.get(p, len(rank)))
    return t.sort_values(["_r", "pool", "sla_class"]).drop(columns="_r").reset_index(drop=True)


def day_profile(
    hourly: pd.DataFrame, pools: Sequence[str] = ()
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Utilisation (share) and mean queue wait (s) by hour of day per pool, with 95% CIs.

    Utilisation of an hour of day = busy slot-seconds / available slot-seconds summed over
    the horizon's days; wait = queue wait seconds / requests started. The CI is over
    replications. Returns ``(utilisation, wait)``: pool -> frame indexed by hour of day.
    """
    g = (
        hourly.groupby(["pool", "replication", "hour_of_day"], observed=True)[
            ["busy_slot_s", "slots", "wait_sum_s", "started"]
        ]
        .sum()
        .reset_index()
    )
    cap = g["slots"] * SECONDS_PER_HOUR
    g["utilisation"] = g["busy_slot_s"] / cap.where(cap > 0)
    g["wait_mean_s"] = g["wait_sum_s"] / g["started"].where(g["started"] > 0)
    util, wait = {}, {}
    for pool in _order(list(g["pool"].astype(str).unique()), pools):
        gp = g[g["pool"].astype(str) == pool]
        util[pool] = _ci_table(gp, "hour_of_day", "utilisation", "unit")
        wait[pool] = _ci_table(gp, "hour_of_day", "wait_mean_s")
    return util, wait


def day_peak(hourly: pd.DataFrame, pools: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """Peak utilisation (share) by hour of day per pool: the busiest day's, not the mean day's.

    For each replication, pool and hour of day: the highest utilisation (busy slot-seconds /
    available slot-seconds of that one hour) over the horizon's days; then the mean and 95%
    CI over replications. Hours without working slots are left out. Returns pool -> frame
    indexed by hour of day (mean, ci95_low, ci95_high).
    """
    cap = hourly["slots"] * SECONDS_PER_HOUR
    h = hourly.assign(utilisation=hourly["busy_slot_s"] / cap.where(cap > 0))
    g = (
        h.groupby(["pool", "replication", "hour_of_day"], observed=True)["utilisation"]
        .max()
        .reset_index()
    )
    peak = {}
    for pool in _order(list(g["pool"].astype(str).unique()), pools):
        peak[pool] = _ci_table(
            g[g["pool"].astype(str) == pool], "hour_of_day", "utilisation", "unit"
        )
    return peak


def cluster_day(hourly: pd.DataFrame) -> pd.DataFrame:
    """The whole cluster's utilisation by hour of day (mean, 95% CI over replications)."""
    g = hourly.groupby(["replication", "hour_of_day"])[["busy_slot_s", "slots"]].sum()
    cap = g["slots"] * SECONDS_PER_HOUR
    g["utilisation"] = g["busy_slot_s"] / cap.where(cap > 0)
    return _ci_table(g.reset_index(), "hour_of_day", "utilisation", "unit")


BUSY_HOUR_VALUES = (
    "offered_load_ratio",
    "utilisation",
    "peak_hour_utilisation",
    "ttft_p95_s",
    "tpot_p95_s",
    "goodput_share",
    "slo_attainment_served",
)
"""Columns of busy_hour.csv that :func:`busy_hour_table` averages over replications."""


def _mode(x: pd.Series) -> int:
    """The most frequent value of integer ``x``; ties go to the smallest."""
    return int(x.value_counts().sort_index().idxmax())


def busy_hour_table(
    busy: pd.DataFrame, pools: Sequence[str] = (), sla_class: str = ALL_CLASSES
) -> pd.DataFrame:
    """Per pool and month at the month's busy hour (ITU-T E.500), for one SLA class.

    ``busy`` is a run's busy_hour.csv; ``sla_class`` defaults to the SLA classes pooled.
    Columns: pool, month, replications (rows averaged), busy_hour (hour of day, the most
    frequent over replications, ties to the earliest), busy_hour_low and busy_hour_high (its
    range over replications), and the mean over replications of each of
    :data:`BUSY_HOUR_VALUES` (offered load ratio, utilisation, peak-hour utilisation,
    goodput share and SLO attainment as shares; TTFT and TPOT p95 in seconds).
    """
    b = busy[busy["sla_class"].astype(str) == sla_class]
    cols = ["pool", "month", "replications", "busy_hour", "busy_hour_low", "busy_hour_high"]
    if b.empty:
        return pd.DataFrame(columns=[*cols, *BUSY_HOUR_VALUES])
    g = b.groupby([b["pool"].astype(str), "month"])
    t = g[list(BUSY_HOUR_VALUES)].mean()
    t.insert(0, "busy_hour_high", g["busy_hour"].max().astype(int))
    t.insert(0, "busy_hour_low", g["busy_hour"].min().astype(int))
    t.insert(0, "busy_hour", g["busy_hour"].agg(_mode))
    t.insert(0, "replications", g["replication"].nunique())
    t = t.reset_index()
    rank = {p: i for i, p in enumerate(_order(list(t["pool"].unique()), pools))}
    t["_r"] = t["pool"].map(rank)
    return t.sort_values(["_r", "month"]).drop(columns="_r").reset_index(drop=True)


def busy_hour_series(
    busy: pd.DataFrame, pools: Sequence[str] = ()
) -> tuple[dict[str, dict[str, pd.DataFrame]], dict[str, dict[str, pd.DataFrame]]]:
    """Per pool, by month, mean and 95% CI over replications of the busy-hour figures.

    Returns ``(utilisation, ttft)``. ``utilisation``: pool -> {"utilisation",
    "peak_hour_utilisation"} -> frame indexed by month (mean, ci95_low, ci95_high; shares):
    the busy hour's utilisation (its slot-seconds over the month's days) and the month's
    single busiest hour's. ``ttft``: pool -> SLA class -> the same frames of the TTFT p95 (s)
    of the class's requests arriving in the busy hour; every SLA class with rows of its own
    (not ``throttled``, not ``all``), or ``all`` when none has.
    """
    util: dict[str, dict[str, pd.DataFrame]] = {}
    ttft: dict[str, dict[str, pd.DataFrame]] = {}
    b = busy.assign(pool=busy["pool"].astype(str), sla_class=busy["sla_class"].astype(str))
    for pool in _order(list(b["pool"].unique()), pools):
        rows = b[b["pool"] == pool]
        per_pool = rows.drop_duplicates(["replication", "month"])  # pool-level columns
        util[pool] = {
            c: _ci_table(per_pool, "month", c, "unit")
            for c in ("utilisation", "peak_hour_utilisation")
        }
        named = [c for c in dict.fromkeys(rows["sla_class"]) if c not in (THROTTLED, ALL_CLASSES)]
        ttft[pool] = {
            c: _ci_table(rows[rows["sla_class"] == c], "month", "ttft_p95_s")
            for c in named or [ALL_CLASSES]
        }
    return util, ttft


WINDOW_COUNTS = ("limit_hits", "lockouts", "lockout_hours")
"""Columns of usage_windows.csv that :func:`window_table` averages per replication-month."""
WINDOW_REQUESTS = ("deferred", "refused_window")
"""Columns of monthly_by_plan_segment.csv (per plan and segment, whichever window was full) that
:func:`window_table` averages per replication-month beside each window."""


def _position(values: pd.Series, names: Sequence[str]) -> pd.Series:
    """Each value's position in ``names``; values not in it come after them all."""
    rank = {str(x): i for i, x in enumerate(names)}
    return values.map(lambda v: rank.get(str(v), len(rank)))


def window_table(
    windows: pd.DataFrame,
    by_plan: pd.DataFrame,
    plans: Sequence[str] = (),
    segments: Sequence[str] = (),
    window_names: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Per plan, segment and usage window: what the windows did, as means per month.

    ``windows`` is a run's usage_windows.csv (plans with windows only), ``by_plan`` its
    monthly_by_plan_segment.csv. Every count is its sum over the run's replications and
    months divided by their number (replication-months, from ``windows``): the mean over
    replications of a month's count, so runs of different lengths read alike. Columns: plan,
    segment, window, :data:`WINDOW_COUNTS` (limit hits, lock-outs, hours locked out),
    hours_per_lockout (hours locked out / lock-outs, both summed; NaN without a lock-out) and
    :data:`WINDOW_REQUESTS` (the plan and segment's requests deferred and refused at a window,
    whichever window was full: the same on each of its windows' rows). Rows in the order of
    ``plans``, ``segments`` and each plan's ``window_names`` (others after, by name).
    """
    keys = ["plan", "segment", "window"]
    cols = [*keys, *WINDOW_COUNTS, "hours_per_lockout", *WINDOW_REQUESTS]
    if windows.empty:
        return pd.DataFrame(columns=cols)
    n = max(len(windows[["replication", "month"]].drop_duplicates()), 1)
    w = windows.assign(**{k: windows[k].astype(str) for k in keys})
    t = (w.groupby(keys)[list(WINDOW_COUNTS)].sum() / n).reset_index()
    t["hours_per_lockout"] = t["lockout_hours"] / t["lockouts"].where(t["lockouts"] > 0)
    b = by_plan.assign(plan=by_plan["plan"].astype(str), segment=by_plan["segment"].astype(str))
    req = b.groupby(["plan", "segment"])[list(WINDOW_REQUESTS)].sum() / n
    t = t.join(req, on=["plan", "segment"]).fillna({c: 0.0 for c in WINDOW_REQUESTS})
    within = {(p, str(k)): i for p, ks in (window_names or {}).items() for i, k in enumerate(ks)}
    t = t.assign(
        _p=_position(t["plan"], plans),
        _s=_position(t["segment"], segments),
        _w=[within.get(pk, len(within)) for pk in zip(t["plan"], t["window"], strict=True)],
    )
    t = t.sort_values(["_p", "plan", "_s", "segment", "_w", "window"])
    return t[cols].reset_index(drop=True)


def deferred_by_hour(hourly: pd.DataFrame) -> pd.DataFrame:
    """Requests deferred by a usage window per hour of day: mean over days, 95% CI over reps.

    ``hourly``: hourly_cluster.parquet's replication, day, hour_of_day and deferred (requests
    first sent in that hour that found a window full and were sent again when it rolled).
    Summed over pools, divided by the replication's number of days, then the mean and CI over
    replications. Indexed by hour of day, 0 to 23 (hours without rows count 0).
    """
    reps = sorted(hourly["replication"].unique())
    days = hourly.groupby("replication")["day"].nunique()
    g = hourly.groupby(["replication", "hour_of_day"])["deferred"].sum()
    full = pd.MultiIndex.from_product([reps, range(HOURS_OF_DAY)], names=g.index.names)
    g = g.reindex(full, fill_value=0.0).reset_index()
    g["per_day"] = g["deferred"] / g["replication"].map(days).clip(lower=1)
    return _ci_table(g, "hour_of_day", "per_day")


def ttft_targets(scenario: dict[str, Any]) -> dict[str, float]:
    """SLA class -> TTFT target (s) from a run's scenario.yaml; classes without one left out."""
    out = {}
    for c in (scenario.get("cluster") or {}).get("sla_classes") or []:
        target = (c.get("slo") or {}).get("ttft_s")
        if target is not None:
            out[str(c.get("name"))] = float(target)
    return out


def sweep_response(points: pd.DataFrame, parameters: Sequence[str]) -> pd.DataFrame:
    """Each KPI's response to each swept parameter, marginal over the others.

    For every parameter and each of its values: the mean of every KPI over all rows of
    points.csv with that value (all points with it, all their replications) and the
    Student-t 95% CI of that mean inside the KPI's range (sim.results.kpis.kpi_ci). Columns:
    parameter, value, kpi, n, mean, ci95_low, ci95_high (units of the KPI, see KPIS).
    """
    rows = []
    for par in parameters:
        for value, g in points.groupby(par, sort=True):
            for kpi in KPIS:
                x = g[kpi].to_numpy(dtype=float)
                mean, lo, hi = kpi_ci(kpi, x)
                rows.append(
                    {
                        "parameter": par,
                        "value": value,
                        "kpi": kpi,
                        "n": int(np.isfinite(x).sum()),
                        "mean": mean,
                        "ci95_low": lo,
                        "ci95_high": hi,
                    }
                )
    return pd.DataFrame(rows)


def sweep_points(points: pd.DataFrame, parameters: Sequence[str]) -> pd.DataFrame:
    """One row per point: its parameters, replications, and each KPI's mean and 95% CI.

    KPI columns are ``kpi``, ``kpi_lo`` and ``kpi_hi``.
    """
    rows = []
    for point, g in points.groupby("point", sort=True):
        row: dict[str, Any] = {"point": point}
        row.update({p: g[p].iloc[0] for p in parameters})
        row["replications"] = len(g)
        for kpi in KPIS:
            row[kpi], row[f"{kpi}_lo"], row[f"{kpi}_hi"] = kpi_ci(kpi, g[kpi].to_numpy(dtype=float))
        rows.append(row)
    return pd.DataFrame(rows)
