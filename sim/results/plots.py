"""PNG plots a person can read: subscribers, money, the cluster's day, latency, token mix.

Every plot shows the mean over replications; where there are several
replications, a shaded band shows the 95% confidence interval.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DPI = 110
"""Resolution of the PNGs (dots per inch)."""


def _band(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, label: str, **kw: object) -> None:
    g = df.groupby(x)[y]
    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
    (line,) = ax.plot(mean.index, mean.to_numpy(), label=label, **kw)  # type: ignore[arg-type]
    if n.max() > 1:
        half = 1.96 * sd / np.sqrt(n)
        ax.fill_between(mean.index, mean - half, mean + half, alpha=0.2, color=line.get_color())


def write_plots(
    cur: str,
    months: pd.DataFrame,
    by_plan: pd.DataFrame,
    hourly: pd.DataFrame,
    replications: int,
    out: Path,
) -> list[Path]:
    """Write the standard plots into ``out`` from a run's tables; return their paths.

    ``months``, ``by_plan`` and ``hourly`` are RunResult.months(), .monthly() and .hourly();
    ``cur`` is the currency label.
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

    # 3. the cluster's day: utilisation and mean wait by hour of day, per pool
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for pool, g in hourly.groupby("pool", observed=True):
        _band(
            a1,
            g.groupby(["replication", "hour_of_day"], as_index=False)["utilisation"].mean(),
            "hour_of_day",
            "utilisation",
            str(pool),
        )
        w = g.groupby(["replication", "hour_of_day"], as_index=False)[
            ["wait_sum_s", "started"]
        ].sum()
        w["wait_mean_s"] = w["wait_sum_s"] / w["started"].where(w["started"] > 0)
        _band(a2, w, "hour_of_day", "wait_mean_s", str(pool))
    a1.set(
        title="GPU slot utilisation by hour of day",
        xlabel="hour",
        ylabel="share",
        xticks=range(0, 24, 3),
    )
    a1.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    a2.set(
        title="Mean queue wait by hour of day", xlabel="hour", ylabel="s", xticks=range(0, 24, 3)
    )
    a1.legend(fontsize=8)
    paths.append(_save(fig, out / "cluster_day.png"))

    # 4. latency and SLO by month
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    _band(a1, months, "month", "ttft_p95_s", "TTFT p95")
    a1.set(title="95th percentile time to first token", xlabel="month", ylabel="s")
    _band(a2, months, "month", "slo_attainment", "SLO attainment")
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
    return paths


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
