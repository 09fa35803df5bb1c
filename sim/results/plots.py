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
from sim.results.intervals import Bounds, bounded_ci

DPI = 110
"""Resolution of the PNGs (dots per inch)."""
MONTH_LABELS_MAX = 6
"""Busy-hour markers on the cluster-day plot carry their month's number up to this many months."""
SHORT_HORIZON_MONTHS = 3
"""Monthly series over fewer months than this are drawn as bars with 95% CI error bars: a line
through one or two points is a lone dot or a slope that reads as a trend."""


def _thousands(ax: plt.Axes) -> None:
    """Whole numbers with thousands separators on the y axis (no ``1e6`` offset)."""
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _month_axis(ax: plt.Axes, months: np.ndarray) -> None:
    """Whole months on the x axis: every month up to a year, else integer ticks."""
    if len(months) <= 12:
        ax.set_xticks(months)
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _monthly(
    ax: plt.Axes, df: pd.DataFrame, series: list[tuple[str, str]], **kw: object
) -> dict[str, str]:
    """Monthly series ``(column, label)`` of ``df`` (rows: replication x month).

    Lines with 95% CI bands, or side-by-side bars with CI error bars over fewer than
    SHORT_HORIZON_MONTHS months. Returns each series' colour (hex) by label.
    """
    months = np.sort(df["month"].unique())
    colours: dict[str, str] = {}
    if len(months) >= SHORT_HORIZON_MONTHS:
        for col, label in series:
            colours[label] = _band(ax, df, "month", col, label, marker="o", markersize=3, **kw)
    else:
        width = 0.8 / max(len(series), 1)
        for k, (col, label) in enumerate(series):
            t = _ci_by(df, "month", col)
            x = t.index.to_numpy(dtype=float) + (k - (len(series) - 1) / 2) * width
            bars = ax.bar(x, t["mean"].to_numpy(), width=width * 0.95, label=label, **kw)  # type: ignore[arg-type]
            colours[label] = str(matplotlib.colors.to_hex(bars.patches[0].get_facecolor()))
            ax.errorbar(
                x,
                t["mean"].to_numpy(),
                yerr=_error_bars(t),
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=1,
            )
    _month_axis(ax, months)
    return colours


SIGNED_COLUMNS = frozenset({"gross_margin"})
"""Plotted columns that can be negative (a loss)."""
SHARE_SUFFIXES = ("utilisation", "_rate", "_share")
"""Plotted columns ending so are shares in [0, 1]; every other one is >= 0 (counts, money, s)."""


def _bounds(y: str) -> Bounds:
    """The range of a plotted column, for its confidence band (sim.results.intervals)."""
    if y in SIGNED_COLUMNS:
        return "none"
    return "unit" if y.endswith(SHARE_SUFFIXES) else "nonneg"


def _ci_by(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per value of ``x``: mean of ``y`` over the rows (replications) and its 95% interval.

    The interval stays inside the column's range; columns mean, lo, hi (lo = hi = mean with
    one row).
    """
    rows = {k: bounded_ci(g.to_numpy(dtype=float), _bounds(y)) for k, g in df.groupby(x)[y]}
    t = pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "lo", "hi"]).sort_index()
    t["lo"] = t["lo"].fillna(t["mean"])
    t["hi"] = t["hi"].fillna(t["mean"])
    return t


def _band(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, label: str, **kw: object) -> str:
    """Mean of ``y`` over the rows of each ``x`` (replications), a 95% CI band; the line colour."""
    t = _ci_by(df, x, y)
    (line,) = ax.plot(t.index, t["mean"].to_numpy(), label=label, **kw)  # type: ignore[arg-type]
    if (t["hi"] > t["lo"]).any():
        ax.fill_between(t.index, t["lo"], t["hi"], alpha=0.2, color=line.get_color())
    return str(matplotlib.colors.to_hex(line.get_color()))


def _error_bars(t: pd.DataFrame) -> np.ndarray:
    """``yerr`` of matplotlib's errorbar for :func:`_ci_by`'s table: distances below and above."""
    return np.vstack([(t["mean"] - t["lo"]).to_numpy(), (t["hi"] - t["mean"]).to_numpy()])


def _share_top(df: pd.DataFrame, x: str, ys: list[str]) -> float:
    """Top of a utilisation axis for the bands of ``ys``: 100% in view when near it."""
    v = np.concatenate([_ci_by(df, x, y)["hi"].to_numpy(dtype=float) for y in ys])
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
    if len(subs) < SHORT_HORIZON_MONTHS:  # an area over one month is empty
        subs.plot.bar(ax=a1, stacked=True, width=0.6, rot=0)
    else:
        subs.plot.area(ax=a1, linewidth=0)
        _month_axis(a1, subs.index.to_numpy())
    a1.set(title="Active subscribers at month end, by plan", xlabel="month", ylabel="subscribers")
    _thousands(a1)
    a1.legend(fontsize=8, loc="upper left", title="plan", title_fontsize=8)
    _monthly(a2, months, [("churn_rate", "churn rate (mean over replications, 95% CI)")])
    a2.set(
        title="Monthly churn rate (churned / renewal decisions)",
        xlabel="month",
        ylabel="churned / renewal decisions (%)",
    )
    a2.set_ylim(bottom=0)
    a2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    a2.legend(fontsize=8)
    paths.append(_save(fig, out / "subscribers_churn.png"))

    # 2. revenue, GPU cost and margin
    fig, ax = plt.subplots(figsize=(10, 4.5))
    mm = months.groupby("month").mean(numeric_only=True)
    short = len(mm) < SHORT_HORIZON_MONTHS
    # over a short horizon GPU cost and margin are bars beside the revenue, not lone dots
    rev_x, rev_w = (mm.index - 0.2, 0.4) if short else (mm.index, 0.8)
    bottom = np.zeros(len(mm))
    for col, label, colour in (
        ("revenue_fees", "fees", "#4c72b0"),
        ("revenue_overage", "pay-as-you-go overage", "#55a868"),
        ("revenue_topups", "top-up packs", "#8172b2"),
    ):
        v = mm[col].to_numpy(dtype=float)
        # the horizon's total in the legend: a source too small to see as a bar still shows
        total = f"{float(np.nansum(v)):,.0f} {cur}"
        ax.bar(rev_x, v, bottom=bottom, label=f"{label}: {total}", color=colour, width=rev_w)
        bottom += v
    if short:
        for col, label, colour, dx in (
            ("gpu_cost", "GPU cost", "#c44e52", 0.1),
            ("gross_margin", "gross margin", "#333333", 0.3),
        ):
            t = _ci_by(months, "month", col)
            ax.bar(t.index + dx, t["mean"], width=0.19, label=label, color=colour)
            ax.errorbar(
                t.index + dx,
                t["mean"],
                yerr=_error_bars(t),
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=1,
            )
    else:
        _band(ax, months, "month", "gpu_cost", "GPU cost", color="#c44e52", lw=2, marker="o")
        _band(
            ax, months, "month", "gross_margin", "gross margin", color="black", ls="--", marker="o"
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(
        title="Revenue by source vs GPU cost and gross margin, per month",
        xlabel="month",
        ylabel=f"{cur} per month",
    )
    _thousands(ax)
    _month_axis(ax, mm.index.to_numpy())
    ax.legend(fontsize=8, ncols=2, title="bars: revenue over the horizon", title_fontsize=8)
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
    ttft = [("ttft_p95_s", "all requests of the month")]
    if "busy_hour_ttft_p95_s" in months and months["busy_hour_ttft_p95_s"].notna().any():
        ttft.append(("busy_hour_ttft_p95_s", "busy hour (worst pool, SLA classes pooled)"))
    _monthly(a1, months, ttft)
    by_target: dict[float, list[str]] = {}
    for cls, target in (ttft_targets or {}).items():
        by_target.setdefault(target, []).append(cls)
    for target, classes in sorted(by_target.items()):
        a1.axhline(
            target,
            color="#c44e52",
            ls="--",
            lw=1,
            label=f"target {target:g} s ({', '.join(classes)})",
        )
    a1.set(title="95th percentile time to first token", xlabel="month", ylabel="seconds")
    a1.set_ylim(bottom=0)  # from zero: a few ms of noise is not a trend
    a1.legend(fontsize=8, title="TTFT p95 of", title_fontsize=8)
    _monthly(
        a2,
        months,
        [
            ("slo_attainment_served", "SLO attainment (served)"),
            ("goodput_share", "goodput share (all requests)"),
            ("refused_share", "refused share"),
            ("exhausted_share", "exhausted subscriber-months"),
        ],
    )
    a2.set(title="Service quality", xlabel="month", ylabel="share of requests or months (%)")
    a2.set_ylim(0, 1.05)
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
        title="Tokens served by plan and class over the horizon",
        xlabel="billion tokens (mean per replication)",
        ylabel="plan",
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
        _monthly(
            a1,
            u,
            [
                ("utilisation", "busy hour (mean over the month's days)"),
                ("peak_hour_utilisation", "peak hour (the month's single busiest hour)"),
            ],
        )
        a1.set(
            title=f"Pool {pool}: utilisation at the busy hour, by month",
            xlabel="month",
            ylabel="busy / available slot-seconds",
        )
        a1.set_ylim(0, _share_top(u, "month", ["utilisation", "peak_hour_utilisation"]))
        a1.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        a1.legend(fontsize=8, loc="best")
        rows = busy[busy["pool"].astype(str) == pool]
        named = [c for c in dict.fromkeys(rows["sla_class"]) if c not in (THROTTLED, ALL_CLASSES)]
        classes = named or [ALL_CLASSES]
        wide = rows[rows["sla_class"].isin(classes)].pivot_table(
            index=["replication", "month"], columns="sla_class", values="ttft_p95_s", observed=True
        )
        colours = _monthly(
            a2,
            wide.reset_index(),
            [(c, f"{c}: TTFT p95") for c in classes if c in wide.columns],
        )
        for cls in classes:
            colour = colours.get(f"{cls}: TTFT p95", "black")
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
        a2.legend(fontsize=8, title="SLA class", title_fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
