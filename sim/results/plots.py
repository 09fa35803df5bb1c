"""PNG plots a person can read: subscribers, money, the cluster's day, latency, tokens, busy hour.

Every plot shows the mean over replications; where there are several
replications, a shaded band shows the 95% confidence interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sim.results.busy_hour import ALL_CLASSES, THROTTLED

DPI = 110
"""Resolution of the PNGs (dots per inch)."""
MONTH_LABELS_MAX = 6
"""Busy-hour markers on the cluster-day plot carry their month's number up to this many months."""


def _band(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, label: str, **kw: object) -> str:
    """Mean of ``y`` over the rows of each ``x`` (replications), a 95% CI band; the line colour."""
    g = df.groupby(x)[y]
    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
    (line,) = ax.plot(mean.index, mean.to_numpy(), label=label, **kw)  # type: ignore[arg-type]
    if n.max() > 1:
        half = 1.96 * sd / np.sqrt(n)
        ax.fill_between(mean.index, mean - half, mean + half, alpha=0.2, color=line.get_color())
    return str(matplotlib.colors.to_hex(line.get_color()))


def _share_top(df: pd.DataFrame, x: str, ys: list[str]) -> float:
    """Top of a utilisation axis for the bands of ``ys``: 100% in view when near it."""
    g = df.groupby(x)[ys]
    high = g.mean() + 1.96 * g.std(ddof=1).fillna(0.0) / np.sqrt(g.count())
    v = high.to_numpy(dtype=float)
    top = float(v[np.isfinite(v)].max()) if np.isfinite(v).any() else 0.0
    return top + 0.05 if top > 0.5 else max(top * 1.3, 0.01)


def _pool_busy_hours(busy: pd.DataFrame) -> pd.DataFrame:
    """busy_hour.csv reduced to one row per replication, month and pool (pool-level columns)."""
    cols = ["replication", "month", "pool", "busy_hour", "utilisation", "peak_hour_utilisation"]
    return busy[cols].drop_duplicates(["replication", "month", "pool"])


def _mark_busy_hours(ax: plt.Axes, pool_rows: pd.DataFrame, colour: str, label: str) -> None:
    """Each month's busy hour (the most frequent over replications) at its utilisation."""
    marks = pool_rows.groupby("month").agg(
        hour=("busy_hour", lambda h: int(h.value_counts().sort_index().idxmax())),
        utilisation=("utilisation", "mean"),
    )
    ax.scatter(
        marks["hour"],
        marks["utilisation"],
        marker="D",
        s=28,
        color=colour,
        edgecolor="black",
        linewidth=0.6,
        zorder=3,
        label=label,
    )
    if len(marks) <= MONTH_LABELS_MAX:
        for month, r in marks.iterrows():
            ax.annotate(
                f"m{month}",
                (r["hour"], r["utilisation"]),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
                color=colour,
            )


def write_plots(
    cur: str,
    months: pd.DataFrame,
    by_plan: pd.DataFrame,
    hourly: pd.DataFrame,
    replications: int,
    out: Path,
    busy: pd.DataFrame | None = None,
    ttft_targets: Mapping[str, float] | None = None,
) -> list[Path]:
    """Write the standard plots into ``out`` from a run's tables; return their paths.

    ``months``, ``by_plan`` and ``hourly`` are RunResult.months(), .monthly() and .hourly();
    ``cur`` is the currency label. ``busy`` is RunResult.busy_hour(): with it the cluster-day
    plot marks each month's busy hour and ``busy_hour.png`` is written; ``ttft_targets``
    (SLA class -> TTFT target, s) draws the targets on that plot.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    # 1. subscribers by plan, and churn
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    subs = by_plan.groupby(["replication", "month", "plan"], observed=True)["subscribers_end"].sum()
    subs = subs.groupby(["month", "plan"], observed=True).mean().unstack("plan").fillna(0)
    subs.plot.area(ax=a1, linewidth=0)
    a1.set(title="Active subscribers at month end, by plan", xlabel="month", ylabel="subscribers")
    a1.legend(fontsize=8, loc="upper left")
    _band(a2, months, "month", "churn_rate", "churn rate")
    a2.set(title="Monthly churn rate (churned / renewal decisions)", xlabel="month", ylabel="share")
    a2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    paths.append(_save(fig, out / "subscribers_churn.png"))

    # 2. revenue, GPU cost and margin
    fig, ax = plt.subplots(figsize=(10, 4.5))
    mm = months.groupby("month").mean(numeric_only=True)
    ax.bar(mm.index, mm["revenue_fees"], label="fees", color="#4c72b0")
    ax.bar(
        mm.index, mm["revenue_overage"], bottom=mm["revenue_fees"], label="overage", color="#55a868"
    )
    ax.bar(
        mm.index,
        mm["revenue_topups"],
        bottom=mm["revenue_fees"] + mm["revenue_overage"],
        label="top-ups",
        color="#8172b2",
    )
    _band(ax, months, "month", "gpu_cost", "GPU cost", color="#c44e52", linewidth=2)
    _band(ax, months, "month", "gross_margin", "gross margin", color="black", linestyle="--")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(title="Revenue by source vs GPU cost", xlabel="month", ylabel=cur)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "revenue_cost_margin.png"))

    # 3. the cluster's day: utilisation (mean and peak over days) and mean wait by hour of day
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    marks = None if busy is None else _pool_busy_hours(busy)
    for pool, g in hourly.groupby("pool", observed=True):
        by_hour = g.groupby(["replication", "hour_of_day"])["utilisation"]
        colour = _band(
            a1,
            by_hour.mean().reset_index(),
            "hour_of_day",
            "utilisation",
            f"{pool}: mean over days",
        )
        _band(
            a1,
            by_hour.max().reset_index(),
            "hour_of_day",
            "utilisation",
            f"{pool}: peak (max over days)",
            color=colour,
            linestyle="--",
        )
        if marks is not None and (marks["pool"] == pool).any():
            _mark_busy_hours(
                a1, marks[marks["pool"] == pool], colour, f"{pool}: busy hour by month"
            )
        w = g.groupby(["replication", "hour_of_day"], as_index=False)[
            ["wait_sum_s", "started"]
        ].sum()
        w["wait_mean_s"] = w["wait_sum_s"] / w["started"].where(w["started"] > 0)
        _band(a2, w, "hour_of_day", "wait_mean_s", str(pool), color=colour)
    a1.set(
        title="GPU slot utilisation by hour of day: mean and peak over days",
        xlabel="hour of day",
        ylabel="busy / available slot-seconds",
        xticks=range(0, 24, 3),
    )
    a1.set_ylim(bottom=0)
    a1.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    a2.set(
        title="Mean queue wait by hour of day",
        xlabel="hour of day",
        ylabel="seconds",
        xticks=range(0, 24, 3),
    )
    a2.set_ylim(bottom=0)
    a1.legend(fontsize=7)
    a2.legend(fontsize=8, title="pool", title_fontsize=8)
    paths.append(_save(fig, out / "cluster_day.png"))

    # 4. latency and SLO by month
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    _band(a1, months, "month", "ttft_p95_s", "TTFT p95")
    a1.set(title="95th percentile time to first token", xlabel="month", ylabel="s")
    _band(a2, months, "month", "slo_attainment_served", "SLO attainment (served)")
    _band(a2, months, "month", "goodput_share", "goodput share (all requests)")
    _band(a2, months, "month", "refused_share", "refused share")
    _band(a2, months, "month", "exhausted_share", "exhausted subscriber-months")
    a2.set(title="Service quality", xlabel="month", ylabel="share")
    a2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    a2.legend(fontsize=8)
    paths.append(_save(fig, out / "latency_quality.png"))

    # 5. token mix by plan
    fig, ax = plt.subplots(figsize=(10, 4.5))
    mix = by_plan.groupby(["plan"], observed=True)[
        ["input_miss_tokens", "input_hit_tokens", "output_tokens"]
    ].sum() / max(replications, 1)
    (mix / 1e9).plot.barh(stacked=True, ax=ax)
    ax.set(
        title="Tokens served by plan and class over the horizon", xlabel="billion tokens", ylabel=""
    )
    ax.legend(["input (cache miss)", "input (cache hit)", "output"], fontsize=8)
    paths.append(_save(fig, out / "token_mix.png"))

    # 6. the busy hour, by month and pool
    if busy is not None:
        paths.append(_busy_hour_plot(busy, ttft_targets or {}, out / "busy_hour.png"))
    return paths


def _busy_hour_plot(busy: pd.DataFrame, ttft_targets: Mapping[str, float], path: Path) -> Path:
    """Per pool, by month: busy-hour and peak-hour utilisation; TTFT p95 at the busy hour.

    One row of two panels per pool. The TTFT panel has one line per SLA class (the classes
    pooled when no class has rows of its own) and each class's TTFT target as a dashed line.
    """
    pools = list(dict.fromkeys(busy["pool"].astype(str)))
    fig, axes = plt.subplots(
        max(len(pools), 1), 2, figsize=(12, 4.0 * max(len(pools), 1)), squeeze=False
    )
    if not pools:
        for ax in axes[0]:
            ax.text(0.5, 0.5, "no traffic", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        fig.suptitle("Busy hour (ITU-T E.500): no request reached a pool")
        return _save(fig, path)
    util = _pool_busy_hours(busy)
    for (a1, a2), pool in zip(axes, pools, strict=True):
        u = util[util["pool"].astype(str) == pool]
        _band(a1, u, "month", "utilisation", "busy hour (mean over the month's days)", marker="o")
        _band(
            a1,
            u,
            "month",
            "peak_hour_utilisation",
            "peak hour (the month's single busiest hour)",
            marker="^",
            linestyle="--",
        )
        a1.set(
            title=f"Pool {pool}: utilisation at the busy hour, by month",
            xlabel="month",
            ylabel="busy / available slot-seconds",
        )
        a1.set_ylim(0, _share_top(u, "month", ["utilisation", "peak_hour_utilisation"]))
        a1.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        a1.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        a1.legend(fontsize=8, loc="best")
        rows = busy[busy["pool"].astype(str) == pool]
        named = [c for c in dict.fromkeys(rows["sla_class"]) if c not in (THROTTLED, ALL_CLASSES)]
        for cls in named or [ALL_CLASSES]:
            colour = _band(
                a2,
                rows[rows["sla_class"] == cls],
                "month",
                "ttft_p95_s",
                f"{cls}: TTFT p95",
                marker="o",
            )
            if cls in ttft_targets:
                a2.axhline(
                    ttft_targets[cls],
                    color=colour,
                    linestyle="--",
                    linewidth=1,
                    label=f"{cls}: TTFT target {ttft_targets[cls]:g} s",
                )
        a2.set(
            title=f"Pool {pool}: 95th percentile time to first token at the busy hour",
            xlabel="month",
            ylabel="seconds",
        )
        a2.set_ylim(bottom=0)
        a2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        a2.legend(fontsize=8, title="SLA class", title_fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
