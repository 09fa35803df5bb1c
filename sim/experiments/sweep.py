"""Sweeps: one scenario run at many parameter points, on a dask cluster, resumable.

A sweep's points come from a :class:`~sim.scenario.schema.Sweep` block (or ``--set``
options): a full factorial of listed values, or a Latin hypercube sample
(``scipy.stats.qmc.LatinHypercube``) over ranges and value lists. Every point
runs with the same seed, so points see the same demand draws wherever the
parameters leave them alone (common random numbers), and differences between
points are mostly the parameters' effect.

The sweep folder (its names are declared here once, beside the writer, and readers such as
``sim.report`` use them: :data:`SWEEP_JSON`, :data:`POINTS_CSV`, :data:`POINTS_DIR`,
:func:`point_folder`)::

    sweep.json       design, parameters, points (id -> values), seed, replications, status
    points.csv       tidy table: point, replication, one column per swept path, every KPI
    points/<id>/     a normal run folder per point (as ``tokensim run`` writes)

Each (point, replication) is one dask task, and each point one more task that
builds the point's folder (tables, plots) from its replications on a worker.
When it is done, the client writes the folder atomically and rewrites ``points.csv``,
so an interrupted sweep loses only unfinished points; ``resume=True`` reuses
every point folder already complete and runs the rest.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import qmc

from sim import __version__
from sim.results.atomic import atomic_file
from sim.results.kpis import KPIS
from sim.results.run_folder import (
    KEY_PACKAGE,
    KEY_REPLICATIONS,
    KEY_SCENARIO,
    KEY_SCENARIO_SHA256,
    KEY_SEED,
    KEY_STATUS,
    KEY_VERSION,
    KEY_WALL_S,
    KPIS_BY_REPLICATION,
    PACKAGE_NAME,
    STATUS_COMPLETE,
    DamagedRunFolderError,
    RunFolderError,
    check_run_folder,
    read_table,
    render_run,
    write_files,
)
from sim.results.tables import RunResult
from sim.scenario.adjust import parse_value
from sim.scenario.errors import ScenarioError
from sim.scenario.overrides import apply_overrides
from sim.scenario.schema import Range, Scenario, Sweep, SweepValue

if TYPE_CHECKING:
    from distributed import Client

    from sim.engine.replication import ReplicationResult

SWEEP_JSON = "sweep.json"
"""The sweep's specification and status (see :func:`sweep_manifest`)."""
POINTS_CSV = "points.csv"
"""Tidy table of finished points: point, replication, one column per swept path, every KPI."""
POINTS_DIR = "points"
"""Folder holding one run folder per point, named by point id (:func:`point_folder`)."""
SWEEP_FILES = (SWEEP_JSON, POINTS_CSV)
"""Files a sweep folder holds once its first point has finished."""
KEY_KIND = "kind"
"""Key of sweep.json telling a sweep folder from a run folder; its value is :data:`KIND_SWEEP`."""
KIND_SWEEP = "sweep"
"""Value of :data:`KEY_KIND` in sweep.json."""
KEY_DESIGN = "design"
"""Key of sweep.json: ``factorial`` or ``lhs``."""
KEY_PARAMETERS = "parameters"
"""Key of sweep.json: the swept parameters, each ``{"path": ..., "values": ...}``."""
KEY_POINTS = "points"
"""Key of sweep.json: every planned point, each ``{"point": id, "params": {path: value}}``."""
SWEEP_KEYS = (KEY_SCENARIO, KEY_DESIGN, KEY_PARAMETERS, KEY_POINTS, KEY_REPLICATIONS, KEY_SEED)
"""Keys every sweep.json holds (besides package, kind, version, scenario digest and status).

sweep.json shares the run manifest's keys (``sim.results.run_folder.KEY_*``) where they mean
the same: package, version, scenario, scenario_sha256, seed, replications, status, wall_s.
"""
STATUS_RUNNING = "running"
"""sweep.json's status until every point has finished (then ``STATUS_COMPLETE``)."""
POINT_ID_PREFIX = "p"
"""Point ids (and their folders' names) are this prefix and the point's zero-padded index."""
POINT_ID_DIGITS = 3
"""Point folders are p000, p001, ... (more digits once a sweep has over 1000 points)."""
MAX_POINTS = 10_000
"""A design larger than this is refused as a likely mistake (a factorial grows fast)."""


@dataclass(frozen=True)
class Point:
    """One parameter point of a sweep: its id, the values by path, and its scenario."""

    id: str
    params: dict[str, SweepValue]
    scenario: Scenario


def point_ids(n: int) -> list[str]:
    """The ids of a sweep's ``n`` points, in point order: p000, p001, ..."""
    width = max(POINT_ID_DIGITS, len(str(n - 1)))
    return [f"{POINT_ID_PREFIX}{i:0{width}d}" for i in range(n)]


def point_folder(sweep_dir: Path, point_id: str) -> Path:
    """The run folder of point ``point_id`` inside the sweep folder ``sweep_dir``."""
    return Path(sweep_dir) / POINTS_DIR / point_id


def _lhs_values(spec: Sweep) -> list[dict[str, SweepValue]]:
    paths = list(spec.parameters)
    n = spec.samples or 0
    unit = qmc.LatinHypercube(d=len(paths), rng=np.random.default_rng(spec.seed)).random(n)
    rows: list[dict[str, SweepValue]] = [{} for _ in range(n)]
    for j, path in enumerate(paths):
        p = spec.parameters[path]
        for i in range(n):
            u = float(unit[i, j])
            if isinstance(p, Range):
                x = p.low + u * (p.high - p.low)
                rows[i][path] = round(float(x)) if p.integer else x
            else:  # a list: each stratum picks one of the values
                rows[i][path] = p[min(int(u * len(p)), len(p) - 1)]
    return rows


def design(spec: Sweep) -> list[dict[str, SweepValue]]:
    """The parameter values of every point, in point order."""
    if spec.design == "lhs":
        return _lhs_values(spec)
    paths = list(spec.parameters)
    lists = [spec.parameters[p] for p in paths]
    assert all(isinstance(v, list) for v in lists)  # the schema guarantees it
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*lists)]  # type: ignore[arg-type]


def points(base: Scenario, spec: Sweep) -> list[Point]:
    """Every point's validated scenario; ScenarioError names the first bad path or value."""
    values = design(spec)
    if len(values) > MAX_POINTS:
        raise ScenarioError([("sweep", f"{len(values)} points is over the limit of {MAX_POINTS}")])
    out = []
    for pid, params in zip(point_ids(len(values)), values, strict=True):
        s = apply_overrides(base, params)
        out.append(Point(pid, params, s.model_copy(update={"name": f"{base.name}.{pid}"})))
    return out


def parse_set(option: str) -> tuple[str, list[SweepValue] | Range]:
    """Parse ``--set path=v1,v2,...`` (values) or ``--set path=LOW..HIGH`` (a range for lhs)."""
    path, eq, text = option.partition("=")
    path = path.strip()
    if not eq or not path or not text.strip():
        raise ScenarioError([("--set", f"'{option}': expected PATH=V1,V2,... or PATH=LOW..HIGH")])
    if ".." in text and "," not in text:
        lo, _, hi = text.partition("..")
        try:
            return path, Range(low=float(lo), high=float(hi))
        except ValueError as e:
            raise ScenarioError([(f"--set {path}", str(e).splitlines()[-1])]) from None
    vals: list[SweepValue] = []
    for item in text.split(","):
        try:
            vals.append(parse_value(item))
        except ValueError as e:
            raise ScenarioError([(f"--set {path}", str(e))]) from None
    return path, vals


def sweep_spec(
    base: Scenario,
    sets: list[str] | None = None,
    design_name: str | None = None,
    samples: int | None = None,
) -> Sweep:
    """The sweep to run: the scenario's ``sweep:`` block with ``--set`` options applied over it."""
    params: dict[str, list[SweepValue] | Range] = {}
    d, n, seed = "factorial", None, 0
    if base.sweep is not None:
        params = dict(base.sweep.parameters)
        d, n, seed = base.sweep.design, base.sweep.samples, base.sweep.seed
    for opt in sets or []:
        path, vals = parse_set(opt)
        params[path] = vals
    if not params:
        raise ScenarioError([("sweep", "nothing to sweep: add a sweep: block or --set options")])
    d = design_name or d
    n = samples if samples is not None else (n if d == "lhs" else None)
    from sim.scenario.loading import validate_sweep

    return validate_sweep({"design": d, "parameters": params, "samples": n, "seed": seed})


# ---------------------------------------------------------------------- running


def sweep_manifest(
    base: Scenario, spec: Sweep, pts: list[Point], seed: int, reps: int
) -> dict[str, Any]:
    """The content of sweep.json (status 'running' until the sweep completes)."""
    return {
        KEY_PACKAGE: PACKAGE_NAME,
        KEY_KIND: KIND_SWEEP,
        KEY_VERSION: __version__,
        KEY_SCENARIO: base.name,
        KEY_SCENARIO_SHA256: base.digest(),
        KEY_DESIGN: spec.design,
        KEY_PARAMETERS: [
            {"path": p, "values": v.model_dump() if isinstance(v, Range) else list(v)}
            for p, v in spec.parameters.items()
        ],
        KEY_POINTS: [{"point": p.id, "params": p.params} for p in pts],
        KEY_SEED: seed,
        KEY_REPLICATIONS: reps,
        KEY_STATUS: STATUS_RUNNING,
    }


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_file(path, json.dumps(data, indent=2) + "\n")


def is_sweep_folder(path: Path) -> bool:
    """True when ``path`` holds a sweep.json written by tokensim."""
    try:
        m = json.loads((Path(path) / SWEEP_JSON).read_text())
        return bool(m.get(KEY_PACKAGE) == PACKAGE_NAME and m.get(KEY_KIND) == KIND_SWEEP)
    except (OSError, ValueError, AttributeError):
        return False


def check_folder(out: Path, manifest: Mapping[str, Any], resume: bool) -> None:
    """Refuse ``out`` unless it is new or empty, or (``resume``) the same sweep's folder."""
    if not (out.exists() and any(out.iterdir())):
        if out.exists() and not out.is_dir():
            raise ScenarioError([("--out", f"{out} exists and is not a folder")])
        return
    if not resume:
        raise ScenarioError([("--out", f"{out} is not empty (use --resume to continue it)")])
    if not is_sweep_folder(out):
        raise ScenarioError([("--out", f"{out} is not a tokensim sweep folder")])
    old = json.loads((out / SWEEP_JSON).read_text())
    if old.get(KEY_POINTS) != json.loads(json.dumps(manifest[KEY_POINTS])):
        raise ScenarioError(
            [("--resume", f"{out} holds a different sweep (its points differ from this one's)")]
        )


def _point_done(folder: Path, point: Point, seed: int, reps: int) -> bool:
    """True when ``folder`` is a complete run of ``point``'s scenario, seed and replications.

    An incomplete folder (missing, unfinished) is not done: resume runs the point again. A
    damaged one (its manifest holds values of the wrong type) is refused with ScenarioError
    naming the file: what else in it is wrong cannot be known, and the user decides.
    """
    try:
        m = check_run_folder(folder)
    except DamagedRunFolderError as e:
        raise ScenarioError(
            [("--resume", f"{e}; remove {folder} to run the point again")]
        ) from None
    except RunFolderError:
        return False
    return bool(
        m.get(KEY_SCENARIO_SHA256) == point.scenario.digest()
        and m.get(KEY_SEED) == seed
        and m.get(KEY_REPLICATIONS) == reps
    )


def _reused_kpis(folder: Path) -> pd.DataFrame:
    """The KPI table of a finished point folder that resume reuses, checked.

    Raises ScenarioError naming the file and the damaged cell or missing column (see
    ``sim.results.run_folder.read_table``), so a damaged table never enters points.csv.
    """
    f = folder / KPIS_BY_REPLICATION
    try:
        kpis = read_table(f)
    except (OSError, ValueError) as e:
        raise ScenarioError(
            [("--resume", f"{e}; remove {folder} to run the point again")]
        ) from None
    missing = [c for c in ("replication", *KPIS) if c not in kpis.columns]
    if missing:
        raise ScenarioError(
            [
                (
                    "--resume",
                    f"{f}: lacks column(s) {', '.join(missing)}; remove {folder} to run"
                    " the point again",
                )
            ]
        )
    return kpis


def _point_rows(point: Point, kpis: pd.DataFrame) -> pd.DataFrame:
    head = pd.DataFrame(
        {"point": point.id, **{k: [v] * len(kpis) for k, v in point.params.items()}}
    )
    return pd.concat([head, kpis.reset_index(drop=True)], axis=1)


def _write_table(out: Path, rows: Mapping[str, pd.DataFrame], pts: list[Point]) -> pd.DataFrame:
    frames = [rows[p.id] for p in pts if p.id in rows]  # in point order
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    atomic_file(out / POINTS_CSV, table.to_csv(index=False))
    return table


def render_point(
    scenario: Scenario, seed: int, plots: bool, *reps: ReplicationResult
) -> dict[str, bytes]:
    """A point's run folder as bytes, from its replications (runs on a worker)."""
    engine_s = sum(r.engine_s for r in reps)
    return render_run(
        RunResult(scenario=scenario, replications=list(reps), wall_s=engine_s), seed, plots
    )


@dataclass
class SweepResult:
    """What a sweep did: its folder, the tidy table, and how many points ran or were reused."""

    out: Path
    table: pd.DataFrame
    ran: list[str]
    reused: list[str]
    wall_s: float


def run_sweep(
    base: Scenario,
    spec: Sweep,
    out: Path,
    client: Client,
    seed: int | None = None,
    replications: int | None = None,
    resume: bool = False,
    plots: bool = False,
    on_point: Callable[[], object] | None = None,
) -> SweepResult:
    """Run every point of ``spec`` (each replication a dask task) into the sweep folder ``out``.

    ``resume``: reuse the point folders that are complete for the same scenario,
    seed and replications; without it, ``out`` must not exist or be empty.
    ``on_point`` is called after each finished point (progress bars).
    """
    t0 = time.perf_counter()
    seed = base.seed if seed is None else seed
    reps = base.replications if replications is None else replications
    pts = points(base, spec)
    out = Path(out)
    manifest = sweep_manifest(base, spec, pts, seed, reps)
    check_folder(out, manifest, resume)
    (out / POINTS_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(out / SWEEP_JSON, manifest)
    todo = [p for p in pts if not (resume and _point_done(point_folder(out, p.id), p, seed, reps))]
    reused_pts = [p for p in pts if p not in todo]
    reused = [p.id for p in reused_pts]
    rows = {p.id: _point_rows(p, _reused_kpis(point_folder(out, p.id))) for p in reused_pts}
    # dask is imported only here: readers of the sweep folder's names (the reports) skip it
    from sim.experiments.distributed import TASK_RETRIES, as_finished
    from sim.experiments.runner import replicate

    # one task per replication, then one per point that builds its folder's files from them
    # on a worker: the client only writes bytes, so it takes no CPU from the workers
    folders = {}
    for p in todo:
        tag = f"{p.id}-{p.scenario.digest()[:10]}-s{seed}"
        rep_futs = [
            client.submit(
                replicate,
                p.scenario,
                seed,
                r,
                None,
                key=f"{tag}-r{r}",
                pure=False,
                retries=TASK_RETRIES,
            )
            for r in range(reps)
        ]
        folders[p.id] = client.submit(
            render_point,
            p.scenario,
            seed,
            plots,
            *rep_futs,
            key=f"{tag}-folder",
            pure=False,
            retries=TASK_RETRIES,
        )
    by_key = {f.key: pid for pid, f in folders.items()}
    by_id = {p.id: p for p in todo}
    for fut, files in as_finished(client, list(folders.values())):
        p = by_id[by_key[fut.key]]
        write_files(files, point_folder(out, p.id))
        rows[p.id] = _point_rows(p, pd.read_csv(io.BytesIO(files[KPIS_BY_REPLICATION])))
        _write_table(out, rows, pts)
        if on_point is not None:
            on_point()
    table = _write_table(out, rows, pts)
    manifest[KEY_STATUS] = STATUS_COMPLETE
    manifest[KEY_WALL_S] = round(time.perf_counter() - t0, 3)
    _write_json(out / SWEEP_JSON, manifest)
    return SweepResult(out, table, [p.id for p in todo], reused, time.perf_counter() - t0)
