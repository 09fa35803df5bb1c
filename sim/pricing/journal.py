"""The tune folder's names, its question, and the journal of finished replications.

A tune folder (every file written atomically, :mod:`sim.results.atomic`)::

    tune.json          the question (scenario and digest, objective, constraints, parameters,
                       seed, replications), the status (running, then complete), the answer
    replications.csv   the journal: one row per simulated (point, replication) with the point's
                       values and every metric; rewritten as each replication finishes
    trials.csv         one row per point of the search: values, the objective's replication
                       values, mean and 95% CI, each constraint's mean, feasible, on the front
    reevaluation.csv   the best few and the scenario as given on fresh replications: objective
                       and constraints with 95% CIs, paired difference against the scenario as
                       given with its 95% CI, the one chosen
    pareto.csv         the points no other point beats on both gross margin and monthly churn
    pareto.png         gross margin against monthly churn, every point, the front, the answer
    surface.png        the objective against the parameters (one or two: the response surface)
    scenario.yaml      the scenario at the chosen point (runs as is with ``tokensim run``)

While the search runs the folder holds ``tune.json`` (status ``running``) and the journal; when
it ends the whole folder is replaced in one step by the complete one. A tune run again into its
folder with ``resume`` replays the search (the sampler is seeded, so it asks for the same points
in the same order) and takes every replication the journal holds instead of simulating it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim import __version__
from sim.pricing.objectives import METRICS, Constraint, Objective, TuneError
from sim.pricing.space import Parameter, Point, point_key
from sim.results.atomic import atomic_file
from sim.results.run_folder import (
    KEY_PACKAGE,
    KEY_SCENARIO,
    KEY_SCENARIO_SHA256,
    KEY_STATUS,
    KEY_VERSION,
    PACKAGE_NAME,
)
from sim.scenario.schema import Scenario

TUNE_JSON = "tune.json"
"""The question, the status and the answer (see the module docstring)."""
REPLICATIONS_CSV = "replications.csv"
"""The journal: one row per simulated (point, replication)."""
TRIALS_CSV = "trials.csv"
"""One row per point of the search."""
REEVALUATION_CSV = "reevaluation.csv"
"""The re-evaluated points on fresh replications, with paired differences."""
PARETO_CSV = "pareto.csv"
"""The Pareto front of gross margin against monthly churn."""
PARETO_PNG = "pareto.png"
"""The Pareto plot."""
SURFACE_PNG = "surface.png"
"""The response surface plot."""
SCENARIO_YAML = "scenario.yaml"
"""The scenario at the chosen point."""
KEY_KIND = "kind"
"""Key of tune.json telling a tune folder from run, sweep and sizing folders."""
KIND_TUNE = "tune"
"""Value of :data:`KEY_KIND` in tune.json."""
KEY_QUESTION = "question"
"""Key of tune.json: what was asked (a resumed tune must ask the same)."""
STATUS_RUNNING = "running"
"""tune.json's status until the folder is complete (then ``complete``)."""
TRIAL = "trial"
"""Column of the point's trial number (0: the scenario as given)."""
REPLICATION = "replication"
"""Column of the replication index (its random streams are those of (seed, replication))."""


def question(
    base: Scenario,
    objective: Objective,
    constraints: Sequence[Constraint],
    params: Sequence[Parameter],
    seed: int,
    replications: int,
    final_replications: int,
    top: int,
    batch: int,
) -> dict[str, Any]:
    """What a tune asks, as tune.json records it.

    The budget is left out: a resumed tune may ask for more (or fewer) points, and its first
    points are the same.
    """
    return {
        KEY_SCENARIO: base.name,
        KEY_SCENARIO_SHA256: base.digest(),
        "objective": objective.name,
        "metric": objective.metric,
        "constraints": [c.label for c in constraints],
        "parameters": [
            {"path": p.path, "low": p.low, "high": p.high, "integer": p.integer, "step": p.step}
            for p in params
        ],
        "seed": seed,
        "replications": replications,
        "final_replications": final_replications,
        "top": top,
        "batch": batch,
    }


def manifest(q: Mapping[str, Any], status: str, **more: Any) -> dict[str, Any]:
    """The content of tune.json."""
    return {
        KEY_PACKAGE: PACKAGE_NAME,
        KEY_KIND: KIND_TUNE,
        KEY_VERSION: __version__,
        KEY_QUESTION: dict(q),
        KEY_STATUS: status,
        **more,
    }


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def json_text(data: Mapping[str, Any]) -> str:
    """tune.json's text (NaN as null)."""
    return json.dumps(_clean(dict(data)), indent=2) + "\n"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """tune.json of the folder ``path`` if it is a tune folder written by tokensim, else None."""
    try:
        m = json.loads((Path(path) / TUNE_JSON).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(m, dict) and m.get(KEY_PACKAGE) == PACKAGE_NAME and m.get(KEY_KIND) == KIND_TUNE
    return m if ok else None


def is_tune_folder(path: Path) -> bool:
    """True when ``path`` holds a tune.json written by tokensim."""
    return read_manifest(path) is not None


def check_folder(out: Path, q: Mapping[str, Any], resume: bool) -> None:
    """Refuse ``out`` unless it is new or empty, or (``resume``) a tune folder of the same question.

    A folder that is not a tune folder is never written into; a tune folder is continued only
    when asked to (``resume``), and only for the question it holds.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TuneError(f"--out {out} exists and is not a folder")
    if not (out.exists() and any(out.iterdir())):
        return
    m = read_manifest(out)
    if m is None:
        raise TuneError(
            f"--out {out} is a non-empty folder that is not a tokensim tune folder;"
            " refusing to write into it"
        )
    if not resume:
        raise TuneError(
            f"--out {out} holds a tune already: add --resume to continue it, or choose another"
            " --out"
        )
    old = m.get(KEY_QUESTION) or {}
    new = json.loads(json.dumps(dict(q)))
    differ = [k for k in new if old.get(k) != new[k]]
    if differ:
        raise TuneError(
            f"--resume: {out} holds a different tune (it differs in {', '.join(differ)})"
        )


class Journal:
    """Every finished (point, replication) with its metrics, kept on disk as it grows.

    Points are identified by their values (:func:`sim.pricing.space.point_key`), so a point the
    sampler asks for twice, or again after a restart, is simulated once.
    """

    def __init__(self, params: Sequence[Parameter], out: Path | None = None):
        self.params = list(params)
        self.out = None if out is None else Path(out)
        self.done: dict[tuple[float, ...], dict[int, dict[str, float]]] = {}
        self.trial_of: dict[tuple[float, ...], int] = {}
        self.values_of: dict[tuple[float, ...], dict[str, float | int]] = {}

    def load(self) -> int:
        """Read the journal in ``out`` (if any); the number of replications it holds."""
        if self.out is None or not (self.out / REPLICATIONS_CSV).exists():
            return 0
        table = pd.read_csv(self.out / REPLICATIONS_CSV)
        paths = [p.path for p in self.params]
        metrics = [m for m in METRICS if m in table.columns]
        if table.empty or any(p not in table.columns for p in paths):
            return 0
        for row in table.to_dict(orient="records"):
            values = {p.path: p.value(row[p.path]) for p in self.params}
            kpis = {m: float(row[m]) for m in metrics}
            self.add(int(row[TRIAL]), values, int(row[REPLICATION]), kpis)
        return len(table)

    def get(self, point: Point, replication: int) -> dict[str, float] | None:
        """The metrics of ``point``'s replication if already simulated."""
        return self.done.get(point.key, {}).get(replication)

    def add(
        self, trial: int, values: Mapping[str, float | int], replication: int, m: dict[str, float]
    ) -> None:
        """Record one finished replication of the point at ``values``."""
        key = point_key(self.params, values)
        self.trial_of.setdefault(key, trial)
        self.values_of.setdefault(key, dict(values))
        self.done.setdefault(key, {})[replication] = m

    def table(self) -> pd.DataFrame:
        """The journal as a tidy table: trial, replication, the values, every metric."""
        rows = []
        for key, reps in self.done.items():
            head = {TRIAL: self.trial_of[key], **self.values_of[key]}
            for r in sorted(reps):
                m = {k: v for k, v in reps[r].items() if k != REPLICATION}
                rows.append({**head, REPLICATION: r, **m})
        table = pd.DataFrame(rows)
        if table.empty:
            return table
        return table.sort_values([TRIAL, REPLICATION], kind="stable").reset_index(drop=True)

    def flush(self) -> None:
        """Write the journal to ``out`` atomically (nothing without a folder)."""
        if self.out is not None:
            atomic_file(self.out / REPLICATIONS_CSV, self.table().to_csv(index=False))
