"""Figures of the HTML report, as matplotlib Figures and as self-contained SVG data URIs.

Every function takes tidy tables already reduced by ``sim.report.data`` (means over
replications, 95% confidence intervals) and returns a ``matplotlib.figure.Figure``
with a title, axis labels with units and a legend. ``svg_data_uri`` turns a figure
into a ``data:image/svg+xml;base64,...`` URI: text is drawn as paths (no fonts
needed) and the output is deterministic (fixed hash salt, no date).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from sim.results.kpis import KPIS

TOKEN_CLASSES = {
    "input_miss": "input (cache miss)",
    "input_hit": "input (cache hit)",
    "output": "output",
}
"""Token classes of the ledger's ``tokens|MODEL|CLASS`` columns and their labels."""

CLASS_COLOURS = {"input_miss": "#4c72b0", "input_hit": "#8fb0d8", "output": "#dd8452"}
"""Colour of each token class in the token-mix figure."""

SHORT_HORIZON_MONTHS = 3
"""Series over fewer months than this are drawn as bars with error bars: a line through one
or two points is a lone dot or a slope that reads as a trend."""
AXIS_UNITS = {"share": "share (%)", "s": "seconds"}
"""Axis labels of KPI units that read better spelled out."""
ZERO_BASED_UNITS = ("share", "s", "subscribers", "requests", "tokens")
"""KPI units whose axes start at zero, so that a small difference is not drawn as a big one."""


def svg_data_uri(fig: Figure) -> str:
    """The figure as a base64 SVG data URI (text as paths, deterministic ids, no date)."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "tokensim"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float, ncols: int = 1, nrows: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.ravel())


def _unit_label(unit: str, currency: str) -> str:
    return unit.replace("currency", currency)


def _share_axis(ax: Axes, axis: str = "y") -> None:
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0))


def _share_top(values: np.ndarray) -> float:
    """Top of a utilisation axis: 100% in view when a value is near it, else room above."""
    x = values[np.isfinite(values)]
    top = float(x.max()) if len(x) else 0.0
    return top + 0.05 if top > 0.5 else max(top * 1.3, 0.01)


def _months(*axes: Axes) -> None:
    """Whole months on the x axis (one tick when there is one month)."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _thousands(ax: Axes) -> None:
    """Whole numbers with thousands separators on the y axis (no ``1e6`` offset)."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _grouped_bars(
    ax: Axes, series: dict[str, pd.DataFrame], width_total: float = 0.8, **kw: object
) -> dict[str, str]:
    """Each series (index x; mean, ci95_low, ci95_high) as bars side by side at each x.

    Each bar has its 95% CI as an error bar; returns each series' colour (hex).
    """
    n = max(len(series), 1)
    width = width_total / n
    colours = {}
    for k, (label, s) in enumerate(series.items()):
        x = np.asarray(s.index, dtype=float) + (k - (n - 1) / 2) * width
        m = s["mean"].to_numpy(dtype=float)
        err = np.nan_to_num(
            np.vstack([m - s["ci95_low"].to_numpy(float), s["ci95_high"].to_numpy(float) - m])
        )
        bars = ax.bar(x, m, width=width * 0.95, label=label, **kw)  # type: ignore[arg-type]
        colour = to_hex(bars.patches[0].get_facecolor()) if bars.patches else "#000000"
        ax.errorbar(x, m, yerr=np.maximum(err, 0), fmt="none", ecolor="black", capsize=3, lw=1)
        colours[label] = str(colour)
    return colours


def _month_lines_or_bars(ax: Axes, series: dict[str, pd.DataFrame], **kw: object) -> dict[str, str]:
    """Monthly series (index month): lines with shaded CIs, or bars over a short horizon."""
    months = {int(m) for s in series.values() for m in s.index}
    if len(months) < SHORT_HORIZON_MONTHS:
        colours = _grouped_bars(ax, series)
        ax.set_xticks(sorted(months))
        return colours
    return {
        label: _band(ax, s, label, marker="o", markersize=3, **kw) for label, s in series.items()
    }


def _band(ax: Axes, s: pd.DataFrame, label: str, **kw: object) -> str:
    """Plot ``s`` (index x; columns mean, ci95_low, ci95_high) as a line with a shaded CI.

    Returns the line's colour (hex), for lines that belong with it.
    """
    (line,) = ax.plot(s.index, s["mean"].to_numpy(), label=label, **kw)  # type: ignore[arg-type]
    if s["ci95_low"].notna().any():
        ax.fill_between(
            s.index, s["ci95_low"], s["ci95_high"], alpha=0.2, color=line.get_color(), linewidth=0
        )
    return str(to_hex(line.get_color()))


def subscribers_churn_by_plan(subs: pd.DataFrame, churn: pd.DataFrame) -> Figure:
    """Stacked month-end subscribers by plan, and monthly churn rate by plan.

    ``subs`` and ``churn``: index month, one column per plan (subscribers; churn share).
    """
    fig, (a1, a2) = _figure(12, 4.6, ncols=2)
    months = subs.index.to_numpy()
    if len(months) < SHORT_HORIZON_MONTHS:  # stacked bars: an area over one month is empty
        bottom = np.zeros(len(months))
        for plan in subs.columns:
            v = subs[plan].to_numpy(dtype=float)
            a1.bar(months, v, bottom=bottom, label=str(plan), width=0.6, alpha=0.85)
            bottom += v
        a1.set_xticks(months)
    else:
        a1.stackplot(months, subs.T.to_numpy(), labels=[str(c) for c in subs.columns], alpha=0.85)
    a1.set(
        title="Active subscribers at month end, by plan",
        xlabel="month",
        ylabel="subscribers (mean over replications)",
    )
    _thousands(a1)
    a1.legend(fontsize=8, loc="upper left", title="plan", title_fontsize=8)
    _month_lines_or_bars(
        a2,
        {
            str(plan): pd.DataFrame(
                {"mean": churn[plan], "ci95_low": np.nan, "ci95_high": np.nan}, index=churn.index
            )
            for plan in churn.columns
        },
    )
    a2.set(
        title="Monthly churn rate by plan (churned / renewal decisions)",
        xlabel="month",
        ylabel="churn rate (churned / renewal decisions)",
    )
    a2.set_ylim(bottom=0)
    _share_axis(a2)
    a2.legend(fontsize=8, title="plan", title_fontsize=8)
    _months(a1, a2)
    return fig


def revenue_cost_margin(months: pd.DataFrame, currency: str) -> Figure:
    """Monthly revenue by source (stacked bars) against GPU cost and gross margin (lines).

    ``months``: index month; columns revenue_fees, revenue_overage, revenue_topups (means),
    and gpu_cost / gross_margin as ``(mean, ci95_low, ci95_high)`` column triples named
    ``gpu_cost``, ``gpu_cost_lo``, ``gpu_cost_hi`` and likewise for gross_margin.
    """
    fig, (ax,) = _figure(11, 4.6)
    x = months.index.to_numpy()
    short = len(x) < SHORT_HORIZON_MONTHS
    # over a short horizon GPU cost and margin are bars beside the revenue, not lone dots
    rev_x, rev_w = (x - 0.2, 0.4) if short else (x, 0.8)
    bottom = np.zeros(len(x))
    for col, label, colour in (
        ("revenue_fees", "fees", "#4c72b0"),
        ("revenue_overage", "pay-as-you-go overage", "#55a868"),
        ("revenue_topups", "top-up packs", "#8172b2"),
    ):
        v = months[col].to_numpy(dtype=float)
        total = float(np.nansum(v))
        ax.bar(
            rev_x,
            v,
            bottom=bottom,
            label=f"{label}: {total:,.0f} {currency}",
            color=colour,
            width=rev_w,
        )
        bottom += v
    for col, label, kw in (
        ("gpu_cost", "GPU cost", {"color": "#c44e52", "linewidth": 2}),
        ("gross_margin", "gross margin", {"color": "black", "linestyle": "--"}),
    ):
        s = pd.DataFrame(
            {"mean": months[col], "ci95_low": months[f"{col}_lo"], "ci95_high": months[f"{col}_hi"]}
        )
        if short:
            s.index = s.index + (0.1 if col == "gpu_cost" else 0.3)
            _grouped_bars(ax, {label: s}, width_total=0.2, color=kw["color"])
        else:
            _band(ax, s, label, marker="o", markersize=4, **kw)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(
        title="Revenue by source vs GPU cost and gross margin, per month",
        xlabel="month",
        ylabel=f"{currency} per month",
    )
    _thousands(ax)
    _months(ax)
    if len(x) <= 12:
        ax.set_xticks(x)
    ax.legend(fontsize=8, ncols=2, title="bars: revenue over the horizon", title_fontsize=8)
    return fig


def token_mix_by_model(mix: pd.DataFrame, share_by_plan: pd.DataFrame | None) -> Figure:
    """Tokens served per model by class (stacked bars), and each plan's split across models.

    ``mix``: index model, columns TOKEN_CLASSES keys, tokens per replication over the horizon.
    ``share_by_plan``: index plan, columns model, shares summing to 1 per plan (or None).
    """
    ncols = 1 if share_by_plan is None else 2
    fig, axes = _figure(12 if ncols == 2 else 9, 4.4, ncols=ncols)
    ax = axes[0]
    left = np.zeros(len(mix))
    y = np.arange(len(mix))
    for c, label in TOKEN_CLASSES.items():
        v = mix[c].to_numpy(dtype=float) / 1e9 if c in mix else np.zeros(len(mix))
        ax.barh(y, v, left=left, label=label, color=CLASS_COLOURS[c])
        left += v
    ax.set_yticks(y, [str(m) for m in mix.index])
    ax.invert_yaxis()
    ax.set(
        title="Tokens served over the horizon, by model and class",
        xlabel="billion tokens (mean per replication)",
        ylabel="model",
    )
    ax.legend(fontsize=8)
    if share_by_plan is not None:
        a2 = axes[1]
        left = np.zeros(len(share_by_plan))
        y2 = np.arange(len(share_by_plan))
        for model in share_by_plan.columns:
            v = share_by_plan[model].to_numpy(dtype=float)
            a2.barh(y2, v, left=left, label=str(model))
            left += v
        a2.set_yticks(y2, [str(p) for p in share_by_plan.index])
        a2.invert_yaxis()
        a2.set(
            title="Each plan's tokens by model",
            xlabel="share of the plan's tokens",
            ylabel="plan",
            xlim=(0, 1),
        )
        _share_axis(a2, "x")
        a2.legend(
            fontsize=8,
            title="model",
            title_fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    return fig


def latency_percentiles(lat: pd.DataFrame) -> Figure:
    """Grouped bars of TTFT and end-to-end latency p50/p95/p99 per pool and SLA class.

    ``lat``: one row per (pool, sla_class) with columns ttft_p50_s ... e2e_p99_s (seconds).
    """
    fig, axes = _figure(12, 4.4, ncols=2)
    labels = [f"{p} / {c}" for p, c in zip(lat["pool"], lat["sla_class"], strict=True)]
    x = np.arange(len(lat))
    for ax, what, title in (
        (axes[0], "ttft", "Time to first token"),
        (axes[1], "e2e", "End-to-end latency"),
    ):
        for k, q in enumerate((50, 95, 99)):
            ax.bar(
                x + (k - 1) * 0.27,
                lat[f"{what}_p{q}_s"].to_numpy(dtype=float),
                width=0.27,
                label=f"p{q}",
            )
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set(
            title=f"{title} percentiles by pool / SLA class",
            xlabel="pool / SLA class",
            ylabel="seconds",
        )
        ax.legend(fontsize=8, title="percentile", title_fontsize=8)
    return fig


MONTH_LABELS_MAX = 6
"""Busy-hour markers carry their month's number up to this many months (else too crowded)."""


def cluster_day(
    util: dict[str, pd.DataFrame],
    wait: dict[str, pd.DataFrame],
    peak: dict[str, pd.DataFrame] | None = None,
    busy: pd.DataFrame | None = None,
) -> Figure:
    """GPU slot utilisation (mean and peak over days) and mean queue wait by hour of day.

    ``util``, ``peak`` and ``wait``: pool -> frame indexed by hour of day with mean,
    ci95_low, ci95_high (utilisation of the mean day and of the busiest day, shares; wait in
    seconds). ``busy``: ``sim.report.data.busy_hour_table`` rows (pool, month, busy_hour,
    utilisation), each month's busy hour marked at its utilisation. One colour per pool.
    """
    fig, (a1, a2) = _figure(12, 4.6, ncols=2)
    colours: dict[str, str] = {}
    for pool, s in util.items():
        colours[pool] = _band(a1, s, f"{pool}: mean over days")
        if peak is not None and pool in peak:
            _band(a1, peak[pool], f"{pool}: peak (max over days)", color=colours[pool], ls="--")
        if busy is not None and len(busy):
            b = busy[busy["pool"].astype(str) == pool]
            if len(b):
                a1.scatter(
                    b["busy_hour"],
                    b["utilisation"],
                    marker="D",
                    s=26,
                    color=colours[pool],
                    edgecolor="black",
                    linewidth=0.6,
                    zorder=3,
                    label=f"{pool}: busy hour by month",
                )
                if len(b) <= MONTH_LABELS_MAX:
                    for r in b.itertuples():
                        a1.annotate(
                            f"m{r.month}",
                            (r.busy_hour, r.utilisation),
                            xytext=(5, 4),
                            textcoords="offset points",
                            fontsize=7,
                            color=colours[pool],
                        )
    for pool, s in wait.items():
        _band(a2, s, pool, color=colours.get(pool))
    a1.set(
        title="GPU slot utilisation over the day: mean and peak over days, by pool",
        xlabel="hour of day",
        ylabel="busy / available slot-seconds",
        xticks=range(0, 24, 3),
    )
    a1.set_ylim(bottom=0)
    _share_axis(a1)
    a1.legend(fontsize=7)
    a2.set(
        title="Mean queue wait over the day, by pool",
        xlabel="hour of day",
        ylabel="seconds",
        xticks=range(0, 24, 3),
    )
    a2.set_ylim(bottom=0)  # a wait is never negative, whatever a wide CI says
    a2.legend(fontsize=8, title="pool", title_fontsize=8)
    return fig


def busy_hour(
    util: dict[str, dict[str, pd.DataFrame]],
    ttft: dict[str, dict[str, pd.DataFrame]],
    targets: dict[str, float],
) -> Figure:
    """Per pool, by month: busy-hour and peak-hour utilisation, and TTFT p95 at the busy hour.

    ``util`` and ``ttft`` as ``sim.report.data.busy_hour_series`` returns them (frames
    indexed by month with mean, ci95_low, ci95_high); ``targets``: SLA class -> TTFT target
    (s), drawn dashed in the colour of the class's line. One row of two panels per pool.
    """
    pools = list(util)
    fig, axes = _figure(12, 0.4 + 3.6 * max(len(pools), 1), ncols=2, nrows=max(len(pools), 1))
    for k, pool in enumerate(pools):
        a1, a2 = axes[2 * k], axes[2 * k + 1]
        u = util[pool]
        _month_lines_or_bars(
            a1,
            {
                "busy hour (mean over the month's days)": u["utilisation"],
                "peak hour (the month's single busiest hour)": u["peak_hour_utilisation"],
            },
        )
        a1.set_ylim(0, _share_top(pd.concat(u.values()).to_numpy(dtype=float)))
        a1.set(
            title=f"Pool {pool}: utilisation at the busy hour",
            xlabel="month",
            ylabel="busy / available slot-seconds",
        )
        _share_axis(a1)
        a1.legend(fontsize=8, loc="best")
        colours = _month_lines_or_bars(a2, {f"{c}: TTFT p95": v for c, v in ttft[pool].items()})
        for cls in ttft[pool]:
            colour = colours[f"{cls}: TTFT p95"]
            if cls in targets:
                a2.axhline(
                    targets[cls],
                    color=colour,
                    ls="--",
                    lw=1,
                    label=f"{cls}: TTFT target {targets[cls]:g} s",
                )
        a2.set(
            title=f"Pool {pool}: TTFT p95 of requests arriving in the busy hour",
            xlabel="month",
            ylabel="seconds",
        )
        a2.set_ylim(bottom=0)
        a2.legend(fontsize=8, title="SLA class", title_fontsize=8, loc="best")
        _months(a1, a2)
    if not pools:
        for ax in axes:
            ax.set_axis_off()
        axes[0].text(
            0.5, 0.5, "no request reached a pool", ha="center", transform=axes[0].transAxes
        )
    return fig


WHOLE_TICKS_FROM = 10.0
"""A count axis whose largest value reaches this is labelled in whole numbers (below it, ticks
such as 0.5 need their decimals)."""


def deferred_by_hour(deferred: pd.DataFrame) -> Figure:
    """Requests deferred by usage windows by hour of day: when the windows bite.

    ``deferred``: ``sim.report.data.deferred_by_hour`` (indexed by hour of day; mean,
    ci95_low, ci95_high of the requests first sent in that hour and deferred, per day).
    """
    fig, (ax,) = _figure(10, 4.0)
    _band(ax, deferred, "requests deferred", marker="o", markersize=3, color="#c44e52")
    ax.set(
        title="Requests deferred by a full usage window, by the hour they were first sent",
        xlabel="hour of day",
        ylabel="requests per day (mean over days)",
        xticks=range(0, 24, 3),
        xlim=(-0.5, 23.5),
    )
    ax.set_ylim(bottom=0)
    if np.nanmax(deferred["mean"].to_numpy(dtype=float), initial=0.0) >= WHOLE_TICKS_FROM:
        _thousands(ax)  # whole requests with separators; smaller counts keep their decimals
    ax.legend(fontsize=8, loc="upper left")
    return fig


def quota_use(table: pd.DataFrame) -> Figure:
    """Box plot of quota use (used / quota per subscriber-month) per plan.

    ``table``: index plan; columns p05, p25, p50, p75, p95 and mean (shares of the quota).
    Boxes span the quartiles, whiskers the 5th to 95th percentiles, the diamond is the mean.
    """
    fig, (ax,) = _figure(10, 0.9 + 0.45 * max(len(table), 2))
    stats = [
        {
            "label": str(plan),
            "whislo": r.p05,
            "q1": r.p25,
            "med": r.p50,
            "q3": r.p75,
            "whishi": r.p95,
            "mean": r["mean"],
            "fliers": [],
        }
        for plan, r in table.iterrows()
    ]
    # matplotlib >= 3.10 spells vert=False as orientation="horizontal" (and deprecates vert)
    horizontal: dict[str, object] = (
        {"orientation": "horizontal"} if matplotlib.__version_info__ >= (3, 10) else {"vert": False}
    )
    ax.bxp(
        stats,
        showmeans=True,
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "#c6d6ea"},
        meanprops={"marker": "D", "markerfacecolor": "black", "markersize": 4},
        **horizontal,  # type: ignore[arg-type]
    )
    ax.invert_yaxis()
    ax.axvline(1.0, color="#c44e52", linestyle="--", linewidth=1, label="quota (100%)")
    ax.set(
        title="Quota use per subscriber-month, by plan (box: quartiles; whiskers: 5th-95th"
        " percentile; diamond: mean)",
        xlabel="used / quota",
        ylabel="plan",
    )
    ax.title.set_fontsize(10)
    _share_axis(ax, "x")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def compare_series(
    months: dict[str, pd.DataFrame], util_day: dict[str, pd.DataFrame], currency: str
) -> Figure:
    """Key series of several runs overlaid: subscribers, revenue, margin, churn, TTFT, load.

    ``months``: run -> frame indexed by month with columns ``KPI``, ``KPI_lo``, ``KPI_hi`` for
    subscribers_end, revenue_total, gross_margin, churn_rate and ttft_p95_s.
    ``util_day``: run -> frame indexed by hour of day (mean, ci95_low, ci95_high) of the whole
    cluster's utilisation.
    """
    fig, axes = _figure(13, 7.6, ncols=3, nrows=2)
    panels = (
        ("subscribers_end", "Active subscribers at month end", "subscribers"),
        ("revenue_total", "Revenue per month", f"{currency} per month"),
        ("gross_margin", "Gross margin per month", f"{currency} per month"),
        ("churn_rate", "Monthly churn rate", "churned / renewal decisions (%)"),
        ("ttft_p95_s", "95th percentile time to first token", "seconds"),
    )
    for ax, (col, title, ylabel) in zip(axes, panels, strict=False):
        _month_lines_or_bars(
            ax,
            {
                run: pd.DataFrame(
                    {"mean": m[col], "ci95_low": m[f"{col}_lo"], "ci95_high": m[f"{col}_hi"]}
                )
                for run, m in months.items()
            },
        )
        ax.set(title=title, xlabel="month", ylabel=ylabel)
        if col in ("churn_rate", "ttft_p95_s"):  # a ratio and a latency: from zero
            ax.set_ylim(bottom=0)
        if col == "churn_rate":
            _share_axis(ax)
        elif col != "ttft_p95_s":
            _thousands(ax)
        ax.legend(fontsize=7, title="run", title_fontsize=7)
        _months(ax)
    ax = axes[5]
    for run, s in util_day.items():
        _band(ax, s, run)
    ax.set(
        title="Cluster utilisation over the day",
        xlabel="hour of day",
        ylabel="busy / available slot-seconds",
        xticks=range(0, 24, 3),
    )
    ax.set_ylim(bottom=0)
    _share_axis(ax)
    ax.legend(fontsize=7, title="run", title_fontsize=7)
    return fig


def sweep_response(
    resp: pd.DataFrame, parameter: str, kpis: Sequence[str], currency: str
) -> Figure:
    """Mean and 95% CI of each KPI against one swept parameter's values (small multiples).

    ``resp``: rows of ``sim.report.data.sweep_response`` for this parameter (columns value, kpi,
    mean, ci95_low, ci95_high). Numeric values get a numeric x axis; others are categories.
    """
    ncols = 4
    nrows = -(-len(kpis) // ncols)
    fig, axes = _figure(13, 3.2 * nrows, ncols=ncols, nrows=nrows)
    values = list(dict.fromkeys(resp["value"]))
    numeric = all(isinstance(v, int | float | np.number) for v in values)
    for ax, kpi in zip(axes, kpis, strict=False):
        r = resp[resp["kpi"] == kpi]
        x = r["value"].to_numpy(dtype=float) if numeric else np.arange(len(r))
        m = r["mean"].to_numpy(dtype=float)
        lo = m - r["ci95_low"].to_numpy(dtype=float)
        hi = r["ci95_high"].to_numpy(dtype=float) - m
        err = np.nan_to_num(np.vstack([lo, hi]))
        ax.errorbar(x, m, yerr=err, marker="o", markersize=4, capsize=3, label="mean, 95% CI")
        if not numeric:
            ax.set_xticks(x, [str(v) for v in r["value"]], rotation=20, fontsize=8)
        elif len(x) <= 8:
            ax.set_xticks(x, [f"{v:g}" for v in x])
        unit = KPIS[kpi][0]
        ax.set(
            title=kpi, xlabel=parameter, ylabel=AXIS_UNITS.get(unit, _unit_label(unit, currency))
        )
        ax.title.set_fontsize(10)
        ax.xaxis.label.set_fontsize(8)
        if unit in ZERO_BASED_UNITS and np.nanmin(np.append(m, 0.0)) >= 0:
            ax.set_ylim(bottom=0)
        if unit == "share":
            _share_axis(ax)
        elif unit != "s":
            _thousands(ax)
    for ax in axes[len(kpis) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"KPI response to {parameter} (mean over the other parameters and replications)",
        fontsize=11,
    )
    return fig
