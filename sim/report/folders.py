"""Reading tokensim run and sweep folders for a report.

A report never touches a folder's files directly: ``RunFolder`` and ``SweepFolder`` check
that a folder is complete, read its small files eagerly and its tables on first use, and
turn every missing or corrupt file or column into a ``ReportError`` that names the path.
Kept apart from the numbers (``sim.report.data``) and the pages (``sim.report.pages``) so
that each can be read and tested on its own. The folders' layout (file names, manifest keys,
what "complete" means) is not repeated here: it comes from the writers,
``sim.results.run_folder`` and ``sim.experiments.sweep``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from sim.experiments.sweep import (
    KEY_PARAMETERS,
    POINTS_CSV,
    SWEEP_FILES,
    SWEEP_JSON,
    SWEEP_KEYS,
    point_folder,
)
from sim.results.busy_hour import quantile_columns
from sim.results.kpis import KPIS
from sim.results.ledger_file import KEY_MODE, KEY_SAMPLE_FRACTION, read_ledger
from sim.results.ledger_policy import LEDGER_FULL, LEDGER_MODES, LEDGER_NONE
from sim.results.run_folder import (
    BUSY_HOUR,
    HOURLY_CLUSTER,
    KEY_CURRENCY,
    KEY_LEDGER,
    KEY_REPLICATIONS,
    KPIS_BY_REPLICATION,
    LATENCY,
    LEDGER,
    MANIFEST,
    MONTHLY,
    MONTHLY_BY_PLAN_SEGMENT,
    SCENARIO,
    SUMMARY,
    USAGE_WINDOWS,
    RunFolderError,
    check_run_folder,
    is_older,
    read_manifest,
    read_table,
)
from sim.results.table_checks import TableError, check_numbers

OLDER_ADDED = ("goodput_share", "busy_hour_utilisation", "busy_hour_ttft_p95_s")
"""Columns added with the busy-hour tables; read as missing values (NaN) in older run folders."""


class ReportError(Exception):
    """A path that is not a complete run or sweep folder, or a file in it that cannot be read."""


SUMMARY_STATS = ("mean", "ci95_low", "ci95_high")
"""Figures of each KPI in summary.json that a report shows: a number, or null (undefined)."""


def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(path)
    except FileNotFoundError:
        raise ReportError(f"{path}: missing") from None
    except TableError as e:  # a damaged cell: the message names file, column and line
        raise ReportError(str(e)) from None
    except Exception as e:  # a corrupt file of any kind: name it
        raise ReportError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


def _need_columns(
    path: Path, df: pd.DataFrame, cols: Sequence[str], checked: Sequence[str] | None = None
) -> pd.DataFrame:
    """``df`` when it has every column of ``cols``, valid values in ``checked``; else ReportError.

    ``checked`` defaults to ``cols``; valid as ``sim.results.table_checks.check_numbers``
    says (numbers, finite, missing only where a ratio may be undefined).
    """
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    try:
        check_numbers(path, df, cols if checked is None else checked)
    except TableError as e:
        raise ReportError(str(e)) from None
    return df


def _summary_problem(summary: dict[str, Any]) -> str | None:
    """The first KPI of summary.json that is not a mapping of numbers (or nulls), said."""
    for name in KPIS:
        entry = summary.get(name)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            return f"{name} is not a mapping"
        for stat in SUMMARY_STATS:
            v = entry.get(stat)
            ok = v is None or (
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            )
            if not ok:
                return f"{name}.{stat} must be a finite number or null, not {json.dumps(v)}"
    return None


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class RunFolder:
    """A tokensim run folder, its small files read eagerly and its tables on first use."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    scenario: dict[str, Any]
    older: bool = False
    """Written before the busy-hour tables (see ``sim.results.run_folder.ADDED_FILES``)."""

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """Check that ``path`` is a complete run folder and read its manifest, summary, scenario.

        A run folder written before the busy-hour tables is accepted (``older``): it has no
        busy-hour table, and its renamed and added columns are read as
        ``sim.results.run_folder.RENAMED_COLUMNS`` and :data:`OLDER_ADDED` say. Raises
        ReportError naming the path when it is neither.
        """
        path = Path(path)
        if not path.is_dir():
            raise ReportError(f"{path}: not a folder")
        try:
            manifest = check_run_folder(path)  # an older folder is complete without new files
        except RunFolderError as e:
            raise ReportError(str(e)) from None
        older = is_older(manifest)
        summary = _read(path / SUMMARY, _json)
        scenario = _read(path / SCENARIO, lambda p: yaml.safe_load(p.read_text("utf-8")))
        if not isinstance(summary, dict) or not isinstance(scenario, dict):
            raise ReportError(f"{path}: {SUMMARY} or {SCENARIO} is not a mapping")
        problem = _summary_problem(summary)
        if problem:
            raise ReportError(f"{path / SUMMARY}: {problem}")
        return cls(path, manifest, summary, scenario, older)

    @property
    def name(self) -> str:
        """The folder's name (reports never show the full path)."""
        return self.path.name

    @property
    def currency(self) -> str:
        """Currency code of money KPIs."""
        return str(self.manifest.get(KEY_CURRENCY) or self.scenario.get("currency") or "currency")

    @property
    def replications(self) -> int:
        """Number of replications in the run."""
        return int(self.manifest.get(KEY_REPLICATIONS) or 1)

    def _csv(self, name: str, cols: Sequence[str]) -> pd.DataFrame:
        p = self.path / name
        added = [c for c in OLDER_ADDED if c in cols] if self.older else []
        df = _read(p, lambda f: read_table(f, added))
        return _need_columns(p, df, cols)

    @cached_property
    def kpis(self) -> pd.DataFrame:
        """kpis_by_replication.csv."""
        return self._csv(KPIS_BY_REPLICATION, ["replication", *KPIS])

    @cached_property
    def months(self) -> pd.DataFrame:
        """monthly.csv (replication x month)."""
        return self._csv(
            MONTHLY,
            [
                "replication",
                "month",
                "subscribers_end",
                "churn_rate",
                "revenue_fees",
                "revenue_overage",
                "revenue_topups",
                "revenue_total",
                "gpu_cost",
                "gross_margin",
                "ttft_p95_s",
            ],
        )

    @cached_property
    def by_plan(self) -> pd.DataFrame:
        """monthly_by_plan_segment.csv (replication x month x plan x segment)."""
        return self._csv(
            MONTHLY_BY_PLAN_SEGMENT,
            [
                "replication",
                "month",
                "plan",
                "segment",
                "subscribers_end",
                "new",
                "renewals",
                "churned",
                "switched_in",
                "switched_out",
                "submonths",
                "revenue_fees",
                "revenue_overage",
                "revenue_topups",
            ],
        )

    @cached_property
    def hourly(self) -> pd.DataFrame:
        """The columns of hourly_cluster.parquet the report needs."""
        p = self.path / HOURLY_CLUSTER
        cols = [
            "replication",
            "hour",
            "hour_of_day",
            "pool",
            "slots",
            "busy_slot_s",
            "wait_sum_s",
            "started",
        ]
        df = _read(p, lambda q: pd.read_parquet(q))
        return _need_columns(p, df, cols)[cols]

    @cached_property
    def latency(self) -> pd.DataFrame:
        """latency.csv (replication x month x pool x SLA class)."""
        q = [f"{w}_p{n}_s" for w in ("ttft", "e2e") for n in (50, 95, 99)]
        return self._csv(
            LATENCY,
            [
                "replication",
                "month",
                "pool",
                "sla_class",
                "requests",
                "wait_mean_s",
                "slo_attainment_served",
                "goodput_share",
                *q,
            ],
        )

    @cached_property
    def busy_hour(self) -> pd.DataFrame | None:
        """busy_hour.csv (replication x month x pool x SLA class), or None in an older folder."""
        if self.older:
            return None
        return self._csv(
            BUSY_HOUR,
            [
                "replication",
                "month",
                "pool",
                "sla_class",
                "busy_hour",
                "offered_load_ratio",
                "utilisation",
                "peak_hour_utilisation",
                "offered",
                "requests",
                "goodput_share",
                "slo_attainment_served",
                *quantile_columns(),
            ],
        )

    @cached_property
    def usage_windows(self) -> pd.DataFrame | None:
        """usage_windows.csv (replication x month x plan x segment x window), or None.

        None when the folder has no such file: its scenario has no plan with usage windows,
        or it was written before windows existed.
        """
        p = self.path / USAGE_WINDOWS
        if not p.is_file():
            return None
        numbers = ["replication", "month", "limit_hits", "lockouts", "lockout_hours"]
        return _need_columns(
            p, _read(p, read_table), ["plan", "segment", "window", *numbers], numbers
        )

    @cached_property
    def window_requests(self) -> pd.DataFrame:
        """monthly_by_plan_segment.csv with its requests deferred and refused at a window.

        Checked only where a report shows windows: folders written before windows lack them.
        """
        cols = ["replication", "month", "plan", "segment", "deferred", "refused_window"]
        return _need_columns(self.path / MONTHLY_BY_PLAN_SEGMENT, self.by_plan, cols)

    @cached_property
    def hourly_deferred(self) -> pd.DataFrame:
        """hourly_cluster.parquet's requests deferred by a usage window, by replication and hour.

        Columns replication, day, hour_of_day, deferred; read on their own (only the run
        reports of folders with windows need them, older folders lack ``deferred``).
        """
        import pyarrow.parquet as pq

        p = self.path / HOURLY_CLUSTER
        cols = ["replication", "day", "hour_of_day", "deferred"]
        names = _read(p, lambda q: pq.read_schema(q).names)
        _need_columns(p, pd.DataFrame(columns=names), cols)
        return _need_columns(p, _read(p, lambda q: pd.read_parquet(q, columns=cols)), cols)

    @cached_property
    def ledger(self) -> pd.DataFrame | None:
        """The ledger's plan, status, quota, usage and per-model token columns, or None.

        Only those columns are read, in the types they are stored in (the same values as the
        engine's, in less memory; ``sim.results.ledger_file``).
        """
        p = self.path / LEDGER
        if not p.is_file():
            return None
        import pyarrow.parquet as pq

        names = _read(p, lambda q: pq.read_schema(q).names)
        base = ["replication", "plan", "status", "quota_units", "used_units", "exhausted"]
        _need_columns(p, pd.DataFrame(columns=names), base)
        cols = base + [c for c in names if c.startswith("tokens|")]
        return _read(p, lambda q: read_ledger(q, cols, original_types=False))

    @property
    def ledger_mode(self) -> str:
        """What the folder keeps of the ledger: full, sample or none (``sim.results.ledger_file``).

        Folders written before the manifest said so: full when the file is there, else none.
        """
        entry = self.manifest.get(KEY_LEDGER)
        mode = entry.get(KEY_MODE) if isinstance(entry, dict) else None
        if mode in LEDGER_MODES:
            return str(mode)
        return LEDGER_FULL if (self.path / LEDGER).is_file() else LEDGER_NONE

    @property
    def ledger_fraction(self) -> float:
        """Share of subscribers the ledger holds (1 full, 0 none; the sample's share)."""
        entry = self.manifest.get(KEY_LEDGER)
        share = entry.get(KEY_SAMPLE_FRACTION) if isinstance(entry, dict) else None
        if isinstance(share, int | float) and 0.0 <= share <= 1.0:
            return float(share)
        return 0.0 if self.ledger_mode == LEDGER_NONE else 1.0

    def load(self, ledger: bool = True) -> None:
        """Read (and check) every table now, so that a bad file fails before any drawing."""
        _ = (self.kpis, self.months, self.by_plan, self.hourly, self.latency, self.busy_hour)
        if self.usage_windows is not None:
            _ = (self.window_requests, self.hourly_deferred)
        if ledger:
            _ = self.ledger

    @cached_property
    def plan_order(self) -> list[str]:
        """Plan names in the scenario's order."""
        return [str(p.get("name")) for p in self.scenario.get("plans", [])]


@dataclass
class SweepFolder:
    """A sweep folder: its specification (sweep.json) and tidy points table (points.csv)."""

    path: Path
    spec: dict[str, Any]
    points: pd.DataFrame
    parameters: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path) -> SweepFolder:
        """Check and read ``sweep.json`` and ``points.csv``; raise ReportError naming the path."""
        path = Path(path)
        missing = [f for f in SWEEP_FILES if not (path / f).is_file()]
        if missing:
            raise ReportError(f"{path}: sweep folder lacks {', '.join(missing)}")
        spec = _read(path / SWEEP_JSON, _json)
        if not isinstance(spec, dict) or any(k not in spec for k in SWEEP_KEYS):
            raise ReportError(f"{path / SWEEP_JSON}: needs keys {', '.join(SWEEP_KEYS)}")
        try:
            params = [str(p["path"]) for p in spec[KEY_PARAMETERS]]
        except (TypeError, KeyError):
            raise ReportError(f"{path / SWEEP_JSON}: each parameter needs a 'path'") from None
        if not params:
            raise ReportError(f"{path / SWEEP_JSON}: no swept parameters")
        p = path / POINTS_CSV
        if p.stat().st_size == 0 or not p.read_text(encoding="utf-8", errors="replace").strip():
            raise ReportError(f"{p}: no finished points")
        points = _need_columns(  # swept values may be names: only the KPIs are numbers
            p,
            _read(p, pd.read_csv),
            ["point", "replication", *params, *KPIS],
            ["replication", *KPIS],
        )
        if points.empty:
            raise ReportError(f"{p}: no finished points")
        return cls(path, spec, points, params)

    @property
    def name(self) -> str:
        """The folder's name."""
        return self.path.name

    @property
    def currency(self) -> str:
        """Currency of the first point's run folder when readable, else 'currency'."""
        for point in self.points["point"].unique():
            try:
                m = read_manifest(point_folder(self.path, str(point)))
            except RunFolderError:
                continue
            return str(m.get(KEY_CURRENCY) or "currency")
        return "currency"


def folder_kind(path: Path) -> Literal["run", "sweep"]:
    """Whether ``path`` is a sweep folder (has sweep.json) or otherwise a run folder.

    Only the presence of the files decides; ``RunFolder.open`` and ``SweepFolder.open``
    check the content. Raises ReportError when it is neither.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such folder")
    if (path / SWEEP_JSON).is_file():
        return "sweep"
    if (path / MANIFEST).is_file():
        return "run"
    raise ReportError(f"{path}: not a tokensim run or sweep folder (no {MANIFEST} or {SWEEP_JSON})")
