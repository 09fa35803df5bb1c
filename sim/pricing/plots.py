"""The tune folder's two plots: the Pareto front and the response surface (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sim.pricing.answer import Tuning
from sim.pricing.objectives import METRICS, PARETO_METRICS

LEAF_UNITS: dict[str, str] = {
    "price_per_month": "{currency}/month",
    "price_per_munit": "{currency} per 1M quota units",
    "amount": "quota units per month",
    "gpus": "GPUs",
    "market_size": "subscribers",
    "discount": "share of the fee",
}
"""Axis units of searched fields by the last part of their path (others show the path only)."""
DPI = 110
"""Resolution of the PNG files (dots per inch)."""
FEASIBLE, INFEASIBLE, INCUMBENT, CHOSEN = "tab:blue", "tab:grey", "black", "tab:green"
"""Colours: feasible points, points breaking a constraint, the scenario as given, the answer."""


def _axis_label(path: str, currency: str) -> str:
    unit = LEAF_UNITS.get(path.split(".")[-1])
    return f"{path} ({unit.format(currency=currency)})" if unit else path


def _metric_label(metric: str, t: Tuning) -> str:
    unit = METRICS[metric][0].replace("currency", t.base.currency)
    span = f" over {t.base.horizon_months} months" if unit == t.base.currency else ""
    return f"{metric} ({unit}{span})"


def _formatter(metric: str, t: Tuning) -> Any:
    """Tick labels: whole currency units with separators for money, 3 digits otherwise."""
    import matplotlib.ticker

    money = METRICS[metric][0].startswith("currency")
    return matplotlib.ticker.StrMethodFormatter("{x:,.0f}" if money else "{x:.3g}")


def _chosen_and_given(t: Tuning) -> tuple[pd.Series, pd.Series]:
    re = t.reevaluation
    return re[re["chosen"]].iloc[0], re[re["role"] == "incumbent"].iloc[0]


def plot_pareto(t: Tuning, path: Path) -> None:
    """Gross margin against monthly churn: every point, the front, the scenario, the answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    margin, churn = PARETO_METRICS
    tr = t.trials
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ok = tr["feasible"].astype(bool)
    for mask, colour, marker, label in (
        (ok, FEASIBLE, "o", "meets the constraints"),
        (~ok, INFEASIBLE, "x", "breaks a constraint"),
    ):
        sub = tr[mask]
        if len(sub):
            ax.scatter(sub[churn] * 100, sub[margin], c=colour, marker=marker, label=label)
    front = t.pareto
    if len(front):
        ax.step(
            front[churn] * 100,
            front[margin],
            where="post",
            color="tab:orange",
            label="Pareto front (no point has more margin and less churn)",
        )
    chosen, given = _chosen_and_given(t)
    # on the search's replications, like every other point (the fresh figures are in the table)
    for trial, colour, marker, label in (
        (given["trial"], INCUMBENT, "*", "as given"),
        (chosen["trial"], CHOSEN, "D", "answer"),
    ):
        row = tr[tr["trial"] == trial].iloc[0]
        ax.scatter(
            row[churn] * 100,
            row[margin],
            s=160,
            marker=marker,
            facecolors="none",
            edgecolors=colour,
            linewidths=2,
            label=label,
            zorder=3,
        )
    for c in t.constraints:
        if c.metric == churn:
            ax.axvline(c.bound * 100, color="tab:red", linestyle="--", label=c.label)
    ax.set(
        xlabel="monthly churn (% of subscribers at renewal)",
        ylabel=f"gross margin ({t.base.currency} over {t.base.horizon_months} months)",
        title=f"{t.base.name}: margin against churn ({len(tr)} points, search replications)",
    )
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_surface(t: Tuning, path: Path) -> None:
    """The objective against each parameter (mean and 95% CI), and against both when two."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = t.parameters
    metric = t.objective.metric
    tr = t.trials[t.trials[metric].notna()]
    panels = len(params) + (1 if len(params) == 2 else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5), squeeze=False)
    chosen, given = _chosen_and_given(t)
    ylabel = _metric_label(metric, t)
    ok = tr["feasible"].astype(bool)
    for ax, p in zip(axes[0], params, strict=False):
        reps = [c for c in tr.columns if c.startswith(f"{metric} r")]
        for mask, colour, label in (
            (ok, FEASIBLE, f"search point, mean of {len(reps)} replications"),
            (~ok, INFEASIBLE, "search point breaking a constraint"),
        ):
            sub = tr[mask].sort_values(p.path)
            if not len(sub):
                continue
            ax.scatter(sub[p.path], sub[metric], color=colour, marker="o", s=40, label=label)
            for c in reps:  # each replication: the same draws at every point
                ax.scatter(sub[p.path], sub[c], color=colour, marker=".", s=12, alpha=0.4)
        re = t.reevaluation
        ax.errorbar(
            re[p.path],
            re[metric],
            yerr=[
                (re[metric] - re[f"{metric} ci95_low"]).clip(lower=0).fillna(0),
                (re[f"{metric} ci95_high"] - re[metric]).clip(lower=0).fillna(0),
            ],
            fmt="s",
            color="tab:purple",
            capsize=3,
            label="re-evaluated: mean, 95% CI (fresh replications)",
        )
        ax.axvline(given[p.path], color=INCUMBENT, linestyle=":", label="as given")
        ax.axvline(chosen[p.path], color=CHOSEN, label="answer")
        ax.set(xlabel=_axis_label(p.path, t.base.currency), ylabel=ylabel)
        ax.yaxis.set_major_formatter(_formatter(metric, t))
        ax.legend(fontsize=8)
    if len(params) == 2:
        ax = axes[0][2]
        a, b = params
        sc = ax.scatter(tr[a.path], tr[b.path], c=tr[metric], cmap="viridis", s=60)
        ax.scatter(
            tr[~ok][a.path], tr[~ok][b.path], marker="x", c="red", label="breaks a constraint"
        )
        ax.plot(chosen[a.path], chosen[b.path], "D", color=CHOSEN, markersize=10, label="answer")
        fig.colorbar(sc, ax=ax, label=ylabel)
        ax.set(
            xlabel=_axis_label(a.path, t.base.currency),
            ylabel=_axis_label(b.path, t.base.currency),
        )
        ax.legend(fontsize=8)
    fig.suptitle(f"{t.base.name}: {t.objective.words} (response surface)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
