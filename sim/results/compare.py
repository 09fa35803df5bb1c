"""Compare run folders: headline KPIs side by side, and paired differences against the first.

Replication r of every run uses the random streams (seed, r), so runs of
scenarios that differ only in a price or a cluster size see the same demand
draws (common random numbers). The difference of a KPI between run B and the
first run A is therefore taken replication by replication (B_r - A_r, for the
replications both runs have) and its 95% confidence interval comes from the
spread of those paired differences, which is much narrower than comparing two
independent means. Pairing needs the same seed; with different seeds the rows
are still paired by replication, and the table says so (``paired`` false).

Runs are labelled by the scenario fields that differ from the first run's
(``sim.results.run_labels``). The same pairing gives the figures per plan and per
segment (``sim.results.compare_groups``); the text tables are in
``sim.results.compare_text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sim.results.atomic import atomic_file
from sim.results.intervals import Bounds, bounded_ci
from sim.results.kpis import KPIS, kpi_bounds, mean_ci
from sim.results.run_folder import (
    KEY_CURRENCY,
    KEY_SCENARIO,
    KEY_SEED,
    KPIS_BY_REPLICATION,
    SCENARIO,
    RunFolderError,
    check_run_folder,
    read_table,
)
from sim.results.run_labels import RunLabel, run_labels
from sim.results.table_checks import TableError

STAT_COLUMNS = (
    "replications",
    "mean",
    "ci95_low",
    "ci95_high",
    "diff_vs_first",
    "diff_ci95_low",
    "diff_ci95_high",
    "pairs",
)
"""Columns :func:`paired_stats` fills: the run's mean and 95% CI over its replications, the
paired difference against the first run with its 95% CI, and how many replications paired."""


class CompareError(Exception):
    """A folder that is not a complete tokensim run folder, or a table it lacks."""


@dataclass(frozen=True)
class ComparedRun:
    """A run folder of a comparison: where it is, what it ran, how it is shown."""

    path: Path
    manifest: dict[str, Any]
    scenario: dict[str, Any]
    """``scenario.yaml`` as read (the resolved scenario that ran)."""
    label: RunLabel

    def identity(self) -> dict[str, Any]:
        """The columns naming the run in a comparison table."""
        return {
            "run": self.path.name,
            "label": self.label.label,
            "scenario": self.manifest.get(KEY_SCENARIO),
            "seed": self.manifest.get(KEY_SEED),
            "currency": self.manifest.get(KEY_CURRENCY, self.scenario.get("currency", "")),
        }


def _check(path: Path) -> dict[str, Any]:
    try:
        return check_run_folder(path)
    except RunFolderError as e:
        raise CompareError(str(e)) from None


def open_runs(paths: Sequence[Path]) -> list[ComparedRun]:
    """The run folders at ``paths`` (the first is the reference), checked and labelled.

    Raises CompareError naming the first folder that is not a complete run folder or whose
    ``scenario.yaml`` cannot be read; nothing is read further once one fails.
    """
    paths = [Path(p) for p in paths]
    manifests = [_check(p) for p in paths]
    scenarios = []
    for p in paths:
        try:
            s = yaml.safe_load((p / SCENARIO).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise CompareError(f"{p / SCENARIO}: cannot be read ({e})") from None
        if not isinstance(s, dict):
            raise CompareError(f"{p / SCENARIO}: not a scenario mapping")
        scenarios.append(s)
    labels = run_labels([p.name for p in paths], scenarios, [m.get(KEY_SEED) for m in manifests])
    return [
        ComparedRun(p, m, s, lab)
        for p, m, s, lab in zip(paths, manifests, scenarios, labels, strict=True)
    ]


def load_run(path: Path) -> tuple[dict, pd.DataFrame]:
    """A complete run folder's manifest and per-replication KPIs.

    Raises CompareError naming the path when it is not a complete run folder
    (``sim.results.run_folder.check_run_folder``: its manifest's types checked too) or its
    KPI table cannot be read or holds a damaged cell (``sim.results.table_checks``).
    """
    manifest = _check(Path(path))
    try:
        kpis = read_table(path / KPIS_BY_REPLICATION, KPIS)  # earlier versions: NaN where new
    except TableError as e:  # the message names the file, column and line
        raise CompareError(str(e)) from None
    except (OSError, ValueError) as e:
        raise CompareError(f"{path / KPIS_BY_REPLICATION}: cannot be read ({e})") from None
    return manifest, kpis


def paired_stats(values: pd.Series, base: pd.Series, bounds: Bounds = "none") -> dict[str, Any]:
    """A run's values of one figure against the first run's, both indexed by replication.

    The run's mean and 95% interval inside the figure's range ``bounds``
    (:func:`sim.results.intervals.bounded_ci`), and the mean
    and interval of the paired differences ``values[r] - base[r]`` over the replications r
    both have (``pairs``); NaN where there are too few values.
    """
    v = values.to_numpy(dtype=float)
    mean, lo, hi = bounded_ci(v, bounds)
    common = values.index.intersection(base.index)
    d = values.loc[common].to_numpy(dtype=float) - base.loc[common].to_numpy(dtype=float)
    dmean, dlo, dhi = mean_ci(d)
    return {
        "replications": int(np.isfinite(v).sum()),
        "mean": mean,
        "ci95_low": lo,
        "ci95_high": hi,
        "diff_vs_first": dmean,
        "diff_ci95_low": dlo,
        "diff_ci95_high": dhi,
        "pairs": len(common),
    }


def by_replication(table: pd.DataFrame) -> pd.DataFrame:
    """A per-replication table indexed by its ``replication`` column (row order if none)."""
    if "replication" in table:
        return table.set_index("replication")
    return table.rename_axis("replication")


def compare_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per (run, KPI): mean, 95% CI, and the paired difference against the first run.

    Columns: the run's folder name (``run``), ``label`` (its changed parameters,
    ``sim.results.run_labels``), scenario, seed, currency, ``kpi``, ``unit``, the
    :data:`STAT_COLUMNS`, ``paired`` (same seed as the first run) and ``changes`` (every
    changed field in full, ``path=value; ...``).
    """
    runs = open_runs(paths)
    kpis = [by_replication(load_run(r.path)[1]) for r in runs]
    base_seed = runs[0].manifest.get(KEY_SEED)
    rows = []
    for run, kp in zip(runs, kpis, strict=True):
        for name, (unit, _) in KPIS.items():
            rows.append(
                {
                    **run.identity(),
                    "kpi": name,
                    "unit": unit,
                    **paired_stats(kp[name], kpis[0][name], kpi_bounds(name)),
                    "paired": run.manifest.get(KEY_SEED) == base_seed,
                    "changes": run.label.changes_text(),
                }
            )
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, out: Path) -> Path:
    """Write a comparison table atomically, as Parquet (``.parquet``) or CSV (anything else)."""
    out = Path(out)
    if out.suffix.lower() == ".parquet":
        data: bytes | str = table.to_parquet(index=False)
    else:
        data = table.to_csv(index=False)
    return atomic_file(out, data)
