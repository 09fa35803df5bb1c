"""Comparison tables as text: aligned columns, thousands separators, units.

Each figure is shown once per run with its mean and 95% confidence interval, and for every
run but the first the paired difference against the first with its interval. Shares are in
per cent (differences in percentage points), money in the runs' currency, seconds in s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MISSING = "-"
"""Shown for a figure without a value (no replication, or no pair to difference)."""


def fmt_number(x: float, unit: str = "", diff: bool = False) -> str:
    """``12,345``, ``0.1234``, ``12.34%`` (``+1.20 pp`` as a difference), ``1.23 s``."""
    if x is None or not np.isfinite(x):
        return MISSING
    v = float(x)
    sign = "+" if diff and v > 0 else ""
    if unit == "share":
        return f"{sign}{v * 100:,.2f}{' pp' if diff else '%'}"
    whole = abs(v) >= 100 or (v == int(v) and abs(v) < 1e15)
    num = f"{v:,.0f}" if whole else f"{v:,.4g}"
    return f"{sign}{num}{' s' if unit == 's' else ''}"


def fmt_ci(mean: float, lo: float, hi: float, unit: str = "", diff: bool = False) -> str:
    """``mean [low, high]``, or the mean alone when there is no interval."""
    m = fmt_number(mean, unit, diff)
    if m == MISSING or lo is None or not np.isfinite(lo):
        return m
    return f"{m} [{fmt_number(lo, unit, diff)}, {fmt_number(hi, unit, diff)}]"


def unit_text(unit: str, currency: str) -> str:
    """A unit as the table's unit column shows it (``currency`` -> the runs' currency)."""
    return unit.replace("currency", currency) if currency else unit


def _align(rows: Sequence[Sequence[str]], left: int) -> list[str]:
    """Rows of cells as lines: the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def _block(table: pd.DataFrame) -> list[str]:
    """One table: per figure, a line per run (mean [CI], difference vs the first [CI])."""
    head = ["figure", "unit", "run", "mean [95% CI]", "difference vs first [95% CI]"]
    rows = [head]
    for kpi, g in table.groupby("kpi", sort=False):
        for i, r in enumerate(g.itertuples(index=False)):
            unit = str(r.unit)
            cur = str(r.currency) if isinstance(r.currency, str) else ""
            own = fmt_ci(r.mean, r.ci95_low, r.ci95_high, unit)
            diff = (
                ""
                if i == 0
                else fmt_ci(r.diff_vs_first, r.diff_ci95_low, r.diff_ci95_high, unit, diff=True)
            )
            shown = "%" if unit == "share" else unit_text(unit, cur)
            rows.append([str(kpi) if i == 0 else "", shown if i == 0 else "", r.label, own, diff])
    lines = _align(rows, 3)
    return [lines[0], "-" * max(len(x) for x in lines), *lines[1:]]


def _notes(table: pd.DataFrame) -> list[str]:
    """The runs: label, role, folder, seed and every changed field in full (``--set`` form)."""
    runs = table.drop_duplicates("label")
    rows = []
    for i, r in enumerate(runs.itertuples(index=False)):
        changes = str(r.changes) if isinstance(r.changes, str) and r.changes else ""
        role = "first" if i == 0 else "vs first"
        rows.append([str(r.label), role, f"folder {r.run}", f"seed {r.seed}", changes])
    lines = ["runs (differences are against the first, paired replication by replication):"]
    lines += ["  " + line for line in _align(rows, 5)]
    unpaired = list(runs.loc[~runs["paired"].astype(bool), "label"])
    if unpaired:
        lines.append(f"note: {', '.join(unpaired)} used another seed: differences are unpaired.")
    return lines


def format_table(table: pd.DataFrame) -> str:
    """The market comparison (``sim.results.compare.compare_runs``) as text."""
    return "\n".join([*_notes(table), "", *_block(table)])


def format_groups(table: pd.DataFrame, by: str) -> str:
    """The comparison per plan or segment (``sim.results.compare_groups.compare_by``) as text.

    One block per plan (segment); a plan that a run's scenario lacks shows ``-`` for it.
    """
    out = _notes(table)
    absent = table.loc[~table["present"].astype(bool)].drop_duplicates([by, "label"])
    for r in absent.itertuples(index=False):
        out.append(f"note: {by} {getattr(r, by)} is not in the scenario of {r.label}.")
    for g, t in table.groupby(by, sort=False):
        out += ["", f"{by} {g}", *_block(t)]
    return "\n".join(out)
