"""Comparison tables as text: aligned columns, numbers by :mod:`sim.results.number_format`.

Each figure is shown once per run with its mean and 95% confidence interval, and for every
run but the first the paired difference against the first with its interval. Shares are in
per cent (differences in percentage points), money in the runs' currency, seconds in s.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sim.results.number_format import fmt_ci, unit_text


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
