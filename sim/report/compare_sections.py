"""The comparison page's tables: headline KPIs, and figures by plan and by segment.

Each table has a row per figure (per plan or segment and figure for the grouped ones), a
column per run with its mean and 95% interval, and a column per later run with its paired
difference against the first run (``sim.results.compare``, ``sim.results.compare_groups``):
green where that difference's interval lies above 0, red where it lies below.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sim.report.html import Cell, fmt_ci, para_html, table_html, unit_label

GROUP_FIGURES = (
    "subscribers_end",
    "new",
    "churned",
    "churn_rate_monthly",
    "revenue_total",
    "fees_per_subscriber_month",
    "revenue_per_subscriber_month",
    "tokens_served",
    "refused_share",
    "exhausted_share",
)
"""Figures of ``sim.results.compare_groups.GROUP_KPIS`` the page shows per plan and per
segment (``tokensim compare --by plan|segment`` gives every one)."""


def _diff_cell(r: Any, unit: str, cur: str) -> Cell:
    """A paired difference with its interval, coloured when the interval excludes 0."""
    lo, hi = float(r.diff_ci95_low), float(r.diff_ci95_high)
    cls = "up" if np.isfinite(lo) and lo > 0 else "down" if np.isfinite(hi) and hi < 0 else ""
    return (fmt_ci(r.diff_vs_first, lo, hi, unit, cur, diff=True), cls)


def _rows(table: pd.DataFrame, cur: str, lead: list[str]) -> list[Cell]:
    """One figure's cells: ``lead`` cells, the unit, each run's mean, each later run's diff."""
    unit = str(table["unit"].iloc[0])
    row: list[Cell] = [*lead, unit_label(unit, cur)]
    rs = list(table.itertuples())
    row += [fmt_ci(r.mean, r.ci95_low, r.ci95_high, unit, cur) for r in rs]
    row += [_diff_cell(r, unit, cur) for r in rs[1:]]
    return row


def _header(labels: list[str], lead: list[str]) -> list[str]:
    return [
        *lead,
        "unit",
        *(f"{lab}: mean [95% CI]" for lab in labels),
        *(f"{lab} − {labels[0]} [95% CI]" for lab in labels[1:]),
    ]


def kpi_table(table: pd.DataFrame, currency: str) -> str:
    """The headline KPIs side by side (the table of ``sim.results.compare.compare_runs``)."""
    labels = list(dict.fromkeys(table["label"]))
    rows = [_rows(g, currency, [str(kpi)]) for kpi, g in table.groupby("kpi", sort=False)]
    return table_html(_header(labels, ["KPI"]), rows)


def group_table(table: pd.DataFrame, by: str, currency: str) -> str:
    """The :data:`GROUP_FIGURES` per plan or segment (``compare_groups.compare_by``'s table)."""
    labels = list(dict.fromkeys(table["label"]))
    shown = table[table["kpi"].isin(GROUP_FIGURES)]
    rows = []
    for g, t in shown.groupby(by, sort=False):
        for i, (kpi, f) in enumerate(t.groupby("kpi", sort=False)):
            rows.append(_rows(f, currency, [str(g) if i == 0 else "", str(kpi)]))
    out = table_html(_header(labels, [by, "figure"]), rows)
    absent = table.loc[~table["present"].astype(bool)].drop_duplicates([by, "label"])
    for r in absent.itertuples(index=False):
        out += para_html(f"{by} {getattr(r, by)} is not in the scenario of {r.label}.", "note")
    return out + para_html(
        f"Each {by}'s figures count its own subscribers only; subscribers, sign-ups, churned,"
        f" revenue and tokens over all {by}s add up to the headline KPIs. Every figure: "
        f"tokensim compare --by {by}.",
        "note",
    )
