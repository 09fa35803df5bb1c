"""Compare run folders: headline KPIs side by side, and paired differences against the first.

Replication r of every run uses the random streams (seed, r), so runs of
scenarios that differ only in a price or a cluster size see the same demand
draws (common random numbers). The difference of a KPI between run B and the
first run A is therefore taken replication by replication (B_r - A_r) and
its 95% confidence interval comes from the spread of those paired
differences, which is much narrower than comparing two independent means.
Pairing needs the same seed; with different seeds the rows are still paired
by index, and the note in the table says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.results.kpis import KPIS, mean_ci
from sim.results.run_folder import (
    KEY_SCENARIO,
    KEY_SEED,
    KPIS_BY_REPLICATION,
    RunFolderError,
    check_run_folder,
    read_table,
)


class CompareError(Exception):
    """A folder that is not a complete tokensim run folder."""


def load_run(path: Path) -> tuple[dict, pd.DataFrame]:
    """A complete run folder's manifest and per-replication KPIs.

    Raises CompareError naming the path when it is not a complete run folder
    (``sim.results.run_folder.check_run_folder``) or its KPI table cannot be read.
    """
    try:
        manifest = check_run_folder(path)
    except RunFolderError as e:
        raise CompareError(str(e)) from None
    try:
        kpis = read_table(path / KPIS_BY_REPLICATION, KPIS)  # earlier versions: NaN where new
    except (OSError, ValueError) as e:
        raise CompareError(f"{path / KPIS_BY_REPLICATION}: cannot be read ({e})") from None
    return manifest, kpis


def compare_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per (run, KPI): mean, 95% CI, and the paired difference against the first run."""
    runs = [(p, *load_run(p)) for p in paths]
    _, base_manifest, base = runs[0]
    rows = []
    for path, manifest, kp in runs:
        n = min(len(kp), len(base))
        same_seed = manifest.get(KEY_SEED) == base_manifest.get(KEY_SEED)
        for name, (unit, _) in KPIS.items():
            mean, lo, hi = mean_ci(kp[name].to_numpy(dtype=float))
            d = kp[name].to_numpy(dtype=float)[:n] - base[name].to_numpy(dtype=float)[:n]
            dmean, dlo, dhi = mean_ci(d)
            rows.append(
                {
                    "run": path.name,
                    "scenario": manifest.get(KEY_SCENARIO),
                    "seed": manifest.get(KEY_SEED),
                    "kpi": name,
                    "unit": unit,
                    "replications": int(np.isfinite(kp[name].to_numpy(dtype=float)).sum()),
                    "mean": mean,
                    "ci95_low": lo,
                    "ci95_high": hi,
                    "diff_vs_first": dmean,
                    "diff_ci95_low": dlo,
                    "diff_ci95_high": dhi,
                    "paired": bool(same_seed),
                    "pairs": n,
                }
            )
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.4g}"


def format_table(table: pd.DataFrame) -> str:
    """The comparison as text: per KPI, a line per run (mean, difference vs the first run).

    Each value is followed by its 95% confidence interval in brackets.
    """
    runs = list(dict.fromkeys(table["run"]))
    w = max(12, *(len(r) for r in runs))
    head = f"{'kpi':24s} {'run':{w}s} {'mean [95% CI]':>34s} {'difference vs first [95% CI]':>36s}"
    lines = [head, "-" * len(head)]
    for kpi, g in table.groupby("kpi", sort=False):
        for i, (_, row) in enumerate(g.iterrows()):
            own = f"{_fmt(row['mean'])} [{_fmt(row['ci95_low'])}, {_fmt(row['ci95_high'])}]"
            diff = (
                ""
                if row["run"] == runs[0]
                else f"{_fmt(row['diff_vs_first'])} [{_fmt(row['diff_ci95_low'])}, "
                f"{_fmt(row['diff_ci95_high'])}]"
            )
            label = kpi if i == 0 else ""
            lines.append(f"{label:24s} {row['run']:{w}s} {own:>34s} {diff:>36s}")
    unpaired = sorted(set(table.loc[~table["paired"], "run"]))
    if unpaired:
        lines.append(f"note: {', '.join(unpaired)} used another seed: differences are unpaired.")
    return "\n".join(lines)
