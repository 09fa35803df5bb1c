"""The run folder: its files, written to a staging folder and moved into place when complete.

This module owns the run folder's layout. It declares, once, the name of every file the
writer puts there and the manifest keys readers rely on, and offers the small reader API
(:func:`read_manifest`, :func:`check_run_folder`, :func:`is_run_folder`) that the command
line, ``sim.results.compare``, the sweeps and the reports use, so that writer and readers
agree through these names rather than through repeated string literals.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sim import __version__
from sim.results.atomic import atomic_folder
from sim.results.folder_checks import listing
from sim.results.ledger_file import write_ledger
from sim.results.ledger_policy import LedgerPolicy
from sim.results.table_checks import check_numbers
from sim.results.tables import RunResult

# ---------------------------------------------------------------------- file names

MANIFEST = "manifest.json"
"""Identity and status of the run (written last; see the ``KEY_*`` names)."""
SCENARIO = "scenario.yaml"
"""The validated scenario that was run, every default filled in."""
SUMMARY = "summary.json"
"""Every KPI's mean and 95% confidence interval over the replications."""
KPIS_BY_REPLICATION = "kpis_by_replication.csv"
"""One row of KPIs per replication."""
MONTHLY = "monthly.csv"
"""Replication x month totals."""
MONTHLY_BY_PLAN_SEGMENT = "monthly_by_plan_segment.csv"
"""Replication x month x plan x segment."""
HOURLY_CLUSTER = "hourly_cluster.parquet"
"""Replication x hour x pool load of the GPU cluster."""
LATENCY = "latency.csv"
"""Replication x month x pool x SLA class: offered, served, goodput, latency percentiles."""
LATENCY_BY_HOUR = "latency_by_hour.csv"
"""Replication x month x hour of day x pool x SLA class: the columns of :data:`LATENCY`."""
BUSY_HOUR = "busy_hour.csv"
"""Replication x month x pool x SLA class at the month's busy hour: load, goodput, latency."""
EVENTS = "events.csv"
"""The scenario's events by month (only when it has events)."""
USAGE_WINDOWS = "usage_windows.csv"
"""Limit hits and lock-outs per month, plan, segment and usage window (plans with windows)."""
LEDGER = "ledger.parquet"
"""Subscription ledger (only when the scenario asks for it, the run's ``--ledger`` keeps it and
it has rows; written and read by ``sim.results.ledger_file``)."""
PLOTS_DIR = "plots"
"""Folder of PNG plots (only when plots are on)."""
REQUESTS_AZURE = "requests_azure.csv"
"""Exported requests as an Azure LLM trace (only with ``--export-requests``)."""
REQUESTS_MOONCAKE = "requests_mooncake.jsonl"
"""Exported requests as a Mooncake trace (only with ``--export-requests``)."""
REQUESTS_DETAIL = "requests.parquet"
"""Exported requests with their outcome, pool, class and latencies (``--export-requests``)."""

REQUIRED_FILES = (
    MANIFEST,
    SUMMARY,
    SCENARIO,
    KPIS_BY_REPLICATION,
    MONTHLY,
    MONTHLY_BY_PLAN_SEGMENT,
    HOURLY_CLUSTER,
    LATENCY,
    LATENCY_BY_HOUR,
    BUSY_HOUR,
)
"""Files every complete run folder holds, whatever the scenario's outputs and options (a
folder written before :data:`ADDED_FILES` existed holds them only when its manifest lists
them)."""
ADDED_FILES = (LATENCY_BY_HOUR, BUSY_HOUR)
"""Required files that run folders of earlier versions lack (the busy-hour tables, issue 10):
such a folder is complete without them when its manifest does not list them."""
RENAMED_COLUMNS = {"slo_attainment": "slo_attainment_served"}
"""Columns of kpis_by_replication.csv, monthly.csv and latency.csv renamed since earlier
versions (old name -> new name); read_table renames them in older folders."""
OPTIONAL_FILES = (
    EVENTS,
    USAGE_WINDOWS,
    LEDGER,
    REQUESTS_AZURE,
    REQUESTS_MOONCAKE,
    REQUESTS_DETAIL,
)
"""Files a run folder holds depending on the scenario and options (plots aside)."""
REPORT_HTML = "report.html"
"""The report ``tokensim report FOLDER`` writes into the folder by default: tokensim's own, so
a new run into the folder may replace it with the rest (:func:`owned_files`)."""

# ---------------------------------------------------------------------- manifest keys

KEY_PACKAGE = "package"
"""Manifest key naming the writer; its value is :data:`PACKAGE_NAME`."""
PACKAGE_NAME = "tokensim"
"""Value of :data:`KEY_PACKAGE`: only folders whose manifest says so are tokensim's."""
KEY_STATUS = "status"
"""Manifest key of the folder's status; :data:`STATUS_COMPLETE` once fully written."""
STATUS_COMPLETE = "complete"
"""Status of a folder whose every file has been written."""
KEY_SCENARIO = "scenario"
"""Manifest key of the scenario's name."""
KEY_SCENARIO_SHA256 = "scenario_sha256"
"""Manifest key of the scenario's digest (``Scenario.digest``): same digest, same model."""
KEY_SEED = "seed"
"""Manifest key of the seed the replications' random streams derive from."""
KEY_REPLICATIONS = "replications"
"""Manifest key of the number of replications."""
KEY_VERSION = "version"
"""Manifest key of the tokensim version that wrote the folder."""
KEY_WALL_S = "wall_s"
"""Manifest key of the wall-clock seconds of the run, writing included."""
KEY_ENGINE_S = "engine_s"
"""Manifest key of each replication's engine seconds."""
KEY_REQUESTS_SIMULATED = "requests_simulated"
"""Manifest key of the number of requests simulated over all replications."""
KEY_SUBSCRIBER_MONTHS = "subscriber_months_simulated"
"""Manifest key of the subscriber-months simulated over all replications."""
KEY_CURRENCY = "currency"
"""Manifest key of the currency code of money columns."""
KEY_CREATED_UTC = "created_utc"
"""Manifest key of the creation time (UTC, ISO 8601)."""
KEY_FILES = "files"
"""Manifest key of the folder's other files (relative paths, sorted)."""
KEY_LEDGER = "ledger"
"""Manifest key of what the folder keeps of the ledger: mode (full, sample or none),
sample_fraction (share of subscribers kept), rows written and rows simulated (see
``sim.results.ledger_file``); absent in folders written before it existed."""


class RunFolderError(ValueError):
    """A folder that is not a (complete) tokensim run folder; the message names it and why."""


class DamagedRunFolderError(RunFolderError):
    """A complete-looking run folder whose manifest holds values its writer never writes."""


MANIFEST_TYPES: dict[str, tuple[str, bool]] = {
    KEY_SCENARIO: ("text", True),
    KEY_SCENARIO_SHA256: ("text", False),
    KEY_SEED: ("whole number >= 0", True),
    KEY_REPLICATIONS: ("whole number >= 1", True),
    KEY_VERSION: ("text", False),
    KEY_CURRENCY: ("text", False),
    KEY_CREATED_UTC: ("text", False),
    KEY_WALL_S: ("number >= 0", False),
    KEY_REQUESTS_SIMULATED: ("whole number >= 0", False),
    KEY_SUBSCRIBER_MONTHS: ("whole number >= 0", False),
    KEY_FILES: ("list of text", False),
    KEY_ENGINE_S: ("list of numbers >= 0", False),
    KEY_LEDGER: ("mapping", False),
}
"""What each manifest key holds, and whether a complete run folder must have it (readers rely
on these: ``report`` shows them, ``compare`` pairs runs by seed, ``sweep --resume`` reuses a
point when scenario digest, seed and replications agree)."""


def _is_whole(x: Any, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _is_number(x: Any) -> bool:
    return (
        isinstance(x, int | float) and not isinstance(x, bool) and bool(np.isfinite(x)) and x >= 0
    )


_VALID = {
    "text": lambda x: isinstance(x, str),
    "whole number >= 0": lambda x: _is_whole(x, 0),
    "whole number >= 1": lambda x: _is_whole(x, 1),
    "number >= 0": _is_number,
    "list of text": lambda x: isinstance(x, list) and all(isinstance(v, str) for v in x),
    "list of numbers >= 0": lambda x: isinstance(x, list) and all(_is_number(v) for v in x),
    "mapping": lambda x: isinstance(x, dict),
}


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """The first key of a manifest whose value is missing or not of its type, said; or None.

    Types and required keys as in :data:`MANIFEST_TYPES`.
    """
    for key, (kind, required) in MANIFEST_TYPES.items():
        if key not in manifest:
            if required:
                return f"{key} is missing"
            continue
        value = manifest[key]
        if not _VALID[kind](value):
            return f"{key} must be a {kind}, not {json.dumps(value)[:60]}"
    return None


# ---------------------------------------------------------------------- reading


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the tokensim run folder at ``path``, whatever its status.

    Raises RunFolderError (naming the path) when there is no manifest, it cannot be read
    as a JSON object, or it was not written by tokensim. Use :func:`check_run_folder` to
    also require a complete folder.
    """
    path = Path(path)
    f = path / MANIFEST
    try:
        manifest = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: not a tokensim run folder (no {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{f}: cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(manifest, dict) or manifest.get(KEY_PACKAGE) != PACKAGE_NAME:
        raise RunFolderError(f"{f}: not written by {PACKAGE_NAME}")
    return manifest


def missing_files(path: Path, manifest: dict[str, Any]) -> list[str]:
    """Files a complete run folder at ``path`` would hold but it lacks.

    Those are the :data:`REQUIRED_FILES` (of :data:`ADDED_FILES` only those its manifest
    lists, when it lists files: a folder of an earlier version is complete without them) and
    every file its manifest lists (the ledger, request traces and plots the writer put there).
    """
    listed = manifest.get(KEY_FILES)
    files = {str(f) for f in listed} if isinstance(listed, list) else set()
    expected = [f for f in REQUIRED_FILES if f not in ADDED_FILES or f in files or not files]
    expected += sorted(files - set(REQUIRED_FILES))
    return [f for f in expected if not (Path(path) / f).is_file()]


def is_older(manifest: dict[str, Any]) -> bool:
    """True for a run folder written before :data:`ADDED_FILES` (its manifest lists none)."""
    listed = manifest.get(KEY_FILES)
    return isinstance(listed, list) and not set(ADDED_FILES) & {str(f) for f in listed}


def read_table(path: Path, columns: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV table of a run folder, read alike whatever version wrote it, and checked.

    Every cell must be what a writer writes (``sim.results.table_checks.check_numbers``:
    numbers in numeric columns, never infinite, missing only where a ratio can be
    undefined); the first that is not raises ``TableError`` (a ValueError) naming the file,
    column, line and value. Then :data:`RENAMED_COLUMNS` are applied, and the ``columns`` it
    lacks are added as missing values (NaN).
    """
    df = pd.read_csv(path)
    check_numbers(Path(path), df)
    df = df.rename(columns={k: v for k, v in RENAMED_COLUMNS.items() if v not in df})
    return df.assign(**{c: float("nan") for c in columns if c not in df})


def check_run_folder(path: Path) -> dict[str, Any]:
    """The manifest of the complete run folder at ``path``.

    Complete means: written by tokensim, status :data:`STATUS_COMPLETE`, and no file
    missing (:func:`missing_files`). Raises RunFolderError naming the path and the first
    reason it is not, DamagedRunFolderError when the manifest holds a value of the wrong
    type (:func:`manifest_problem`).
    """
    path = Path(path)
    manifest = read_manifest(path)
    status = manifest.get(KEY_STATUS)
    if status != STATUS_COMPLETE:
        raise RunFolderError(f"{path}: run folder is not complete (status {status!r})")
    problem = manifest_problem(manifest)
    if problem:
        raise DamagedRunFolderError(f"{path / MANIFEST}: {problem}")
    missing = missing_files(path, manifest)
    if missing:
        raise RunFolderError(f"{path}: run folder lacks {', '.join(missing)}")
    return manifest


def is_run_folder(path: Path) -> bool:
    """True when ``path`` is a complete tokensim run folder (see :func:`check_run_folder`)."""
    try:
        check_run_folder(path)
    except RunFolderError:
        return False
    return True


def owned_files(path: Path) -> set[str]:
    """The files of the folder at ``path`` that tokensim wrote, which a new run may replace.

    Those its manifest lists, the manifest itself and :data:`REPORT_HTML`; in a folder whose
    manifest lists no files (written before it did), every file under a declared name. None
    in a folder without a tokensim manifest. Anything else is the user's, and the writer
    refuses to replace the folder (``sim.results.atomic.atomic_folder``).
    """
    try:
        manifest = read_manifest(path)
    except RunFolderError:
        return set()
    listed = manifest.get(KEY_FILES)
    if isinstance(listed, list):
        return {str(f) for f in listed} | {MANIFEST, REPORT_HTML}
    declared = {*REQUIRED_FILES, *OPTIONAL_FILES, PLOTS_DIR, REPORT_HTML}
    return {f for f in listing(path) if f.split("/")[0] in declared}


# ---------------------------------------------------------------------- writing


def write_run(
    result: RunResult,
    out_dir: Path,
    seed: int,
    plots: bool = True,
    ledger: LedgerPolicy | None = None,
) -> Path:
    """Write the run folder atomically: build it beside ``out_dir``, then move it into place.

    ``ledger`` says what of the ledger to keep (default: all of it). An earlier folder at
    ``out_dir`` is replaced only when every file in it is tokensim's (:func:`owned_files`);
    else ``sim.results.folder_checks.FolderChangedError`` says where the new folder went.
    """
    policy = ledger or LedgerPolicy()
    return atomic_folder(
        Path(out_dir),
        lambda stage: _write_contents(result, stage, seed, plots, policy),
        owned_files,
    )


def render_run(
    result: RunResult, seed: int, plots: bool = True, ledger: LedgerPolicy | None = None
) -> dict[str, bytes]:
    """Every file of the run folder, by relative path, built in memory.

    For cluster workers: the tables and plots are computed where the replications
    are, and only these bytes travel to the process that writes the folder
    (:func:`write_files`). ``ledger`` as in :func:`write_run`.
    """
    with tempfile.TemporaryDirectory(prefix="tokensim-render-") as tmp:
        d = Path(tmp)
        _write_contents(result, d, seed, plots, ledger or LedgerPolicy())
        return {
            f.relative_to(d).as_posix(): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()
        }


def write_files(files: dict[str, bytes], out_dir: Path) -> Path:
    """Write a rendered run folder (:func:`render_run`) atomically to ``out_dir``.

    As :func:`write_run`, an earlier folder there is replaced only when every file in it is
    tokensim's (:func:`owned_files`).
    """

    def fill(stage: Path) -> None:
        for rel, data in files.items():
            f = stage / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)

    return atomic_folder(Path(out_dir), fill, owned_files)


def _write_contents(
    result: RunResult, d: Path, seed: int, plots: bool, ledger: LedgerPolicy
) -> None:
    s = result.scenario
    t0 = time.perf_counter()
    (d / SCENARIO).write_text(
        yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    )
    by_plan = result.monthly()
    by_plan.to_csv(d / MONTHLY_BY_PLAN_SEGMENT, index=False)
    months = result.months()
    months.to_csv(d / MONTHLY, index=False)
    hourly = result.hourly()
    hourly.to_parquet(d / HOURLY_CLUSTER, index=False)
    result.latency().to_csv(d / LATENCY, index=False)
    result.latency_by_hour().to_csv(d / LATENCY_BY_HOUR, index=False)
    busy = result.busy_hour()
    busy.to_csv(d / BUSY_HOUR, index=False)
    events = result.events()
    if len(events):
        events.to_csv(d / EVENTS, index=False)
    if any(p.windows for p in s.plans):
        result.windows().to_csv(d / USAGE_WINDOWS, index=False)
    ledger_entry = write_ledger(result.ledger(), d / LEDGER, ledger, seed)
    export = result.replications[0].requests_export
    if export is not None:
        write_request_traces(export, d)
    kp = result.kpis()
    kp.to_csv(d / KPIS_BY_REPLICATION, index=False)
    summary = result.summary()
    (d / SUMMARY).write_text(json.dumps(_finite(summary), indent=2) + "\n")
    if plots:
        from sim.results.plots import write_plots

        write_plots(
            s.currency,
            months,
            by_plan,
            hourly,
            len(result.replications),
            d / PLOTS_DIR,
            busy=busy,
            ttft_targets={
                c.name: c.slo.ttft_s for c in s.cluster.sla_classes if c.slo.ttft_s is not None
            },
        )
    reps = result.replications
    manifest = {
        KEY_SCENARIO: s.name,
        KEY_SCENARIO_SHA256: s.digest(),
        KEY_SEED: seed,
        KEY_REPLICATIONS: len(reps),
        KEY_PACKAGE: PACKAGE_NAME,
        KEY_VERSION: __version__,
        KEY_STATUS: STATUS_COMPLETE,
        KEY_WALL_S: round(result.wall_s + time.perf_counter() - t0, 3),
        KEY_ENGINE_S: [round(r.engine_s, 3) for r in reps],
        KEY_REQUESTS_SIMULATED: int(sum(r.requests for r in reps)),
        KEY_SUBSCRIBER_MONTHS: int(sum(r.subscriber_months for r in reps)),
        KEY_CURRENCY: s.currency,
        KEY_CREATED_UTC: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        KEY_FILES: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()),
        KEY_LEDGER: ledger_entry,
    }
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def write_request_traces(requests: pd.DataFrame, d: Path) -> None:
    """Write exported requests as an Azure LLM trace CSV and a Mooncake trace JSONL.

    :data:`REQUESTS_AZURE`: TIMESTAMP (s from midnight of the window's first day),
    ContextTokens, GeneratedTokens. :data:`REQUESTS_MOONCAKE`: timestamp (ms),
    input_length, output_length. Both read directly with the calibration folder's stats.py.
    Every request is written, refused ones too (they were requested).
    :data:`REQUESTS_DETAIL` holds every column the engine exported (see
    ``sim.engine.replication.run_replication``): outcome, pool, SLA class and latencies.
    """
    pd.DataFrame(
        {
            "TIMESTAMP": requests["timestamp_s"].round(6),
            "ContextTokens": requests["input_tokens"],
            "GeneratedTokens": requests["output_tokens"],
        }
    ).to_csv(d / REQUESTS_AZURE, index=False)
    pd.DataFrame(
        {
            "timestamp": (requests["timestamp_s"] * 1000).round().astype(np.int64),
            "input_length": requests["input_tokens"],
            "output_length": requests["output_tokens"],
        }
    ).to_json(d / REQUESTS_MOONCAKE, orient="records", lines=True)
    requests.to_parquet(d / REQUESTS_DETAIL, index=False)


def _finite(x: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
