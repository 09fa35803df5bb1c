"""Mutations of the shipped scenarios, and the checks every outcome must pass (issue 14).

A mutation changes one place of a scenario's parsed data (a value's type or sign, a
non-finite, huge or empty value, a deleted or unknown key, a dangling reference) or of its
text (a duplicated key). :func:`validate_outcome` and :func:`run_outcome` push the mutated
file through ``tokensim validate`` and a short ``tokensim run`` in-process, so any exception
fails the test with its traceback; the allowed outcomes are exit 0 (with finite tables) or
exit 2 with every problem naming a field.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
"""The shipped scenarios mutated (scenarios/*.yaml; presets are fragments, not scenarios)."""

Path_ = tuple[str | int, ...]

NON_FINITE = [math.inf, -math.inf, math.nan]
HUGE = [1e308, 10**12, 10**30, 1e15, 2**63]
WRONG_TYPES: list[Any] = ["x", [], {}, None, True, [1, 2], {"a": 1}]
EMPTY: list[Any] = ["", [], {}, 0]
REFERENCE_KEYS = {"plans", "plan", "model", "gpu", "segment", "migrate_to", "sla_class"}
"""Keys whose values name other entries: a dangling one must be refused by name."""

RUN_MEMORY_GB = "2"
"""Memory limit of the fuzzed runs (GB, via TOKENSIM_MAX_RUN_GB): a larger run is refused."""

RUN_REQUESTS_PER_DAY = 3000.0
"""Requests per day a fuzzed run is scaled down to (--demand-scale), so each takes seconds."""


def load_data(path: Path) -> Any:
    """A shipped scenario's data, its relative file paths made absolute (book, replay)."""
    data = yaml.safe_load(path.read_text())
    book = data.get("book")
    if isinstance(book, dict) and isinstance(book.get("file"), str):
        book["file"] = str((path.parent / book["file"]).resolve())
    for g in data.get("segments", []):
        rp = g.get("replay") if isinstance(g, dict) else None
        if isinstance(rp, dict) and isinstance(rp.get("file"), str):
            rp["file"] = str((path.parent / rp["file"]).resolve())
    return data


def all_paths(data: Any, here: Path_ = ()) -> Iterator[Path_]:
    """Every place in the data (mappings' values and list items), depth first."""
    if here:
        yield here
    if isinstance(data, dict):
        for k, v in data.items():
            yield from all_paths(v, (*here, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from all_paths(v, (*here, i))


def get(data: Any, path: Path_) -> Any:
    """The value at ``path``."""
    for p in path:
        data = data[p]
    return data


def replaced(data: Any, path: Path_, value: Any) -> Any:
    """A deep copy of ``data`` with the value at ``path`` replaced."""
    out = copy.deepcopy(data)
    get(out, path[:-1])[path[-1]] = value
    return out


def deleted(data: Any, path: Path_) -> Any:
    """A deep copy of ``data`` without the key or item at ``path``."""
    out = copy.deepcopy(data)
    del get(out, path[:-1])[path[-1]]
    return out


def with_unknown_key(data: Any, path: Path_) -> Any:
    """A deep copy of ``data`` with an unknown key in the mapping at ``path``."""
    out = copy.deepcopy(data)
    get(out, path)["no_such_key"] = 1
    return out


DUP = "__duplicate_of__"


def with_duplicate(data: Any, path: Path_, value: Any) -> Any:
    """``data`` whose mapping at ``path[:-1]`` will repeat key ``path[-1]`` (see :func:`dump`)."""
    out = copy.deepcopy(data)
    get(out, path[:-1])[f"{DUP}{path[-1]}"] = value
    return out


def dump(data: Any) -> str:
    """YAML text of ``data``; keys marked by :func:`with_duplicate` become duplicates."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text.replace(DUP, "")


def _cli(args: list[str]) -> tuple[int, str]:
    """Run ``tokensim ARGS`` in-process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    return rc, err.getvalue()


def assert_refusal_names_fields(stderr: str) -> None:
    """An exit-2 report names where each problem is (``  path: message`` or ``error: x: y``)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, "exit 2 without a message"
    assert "Traceback" not in stderr
    problems = [ln for ln in lines if ln.startswith("  ")] or lines
    for ln in problems:
        where, sep, msg = ln.strip().removeprefix("error: ").partition(": ")
        assert sep, f"problem without a path: {ln!r}"
        assert where.strip(), f"problem without a path: {ln!r}"
        assert msg.strip(), f"problem without a message: {ln!r}"


def validate_outcome(path: Path) -> int:
    """``tokensim validate PATH``: exit 0, or exit 2 naming every problem's field."""
    rc, err = _cli(["validate", str(path)])
    assert rc in (0, 2), f"validate exited {rc}: {err}"
    if rc == 2:
        assert_refusal_names_fields(err)
    return rc


def demand_scale(path: Path) -> float:
    """A --demand-scale that brings the scenario near RUN_REQUESTS_PER_DAY (within its bounds)."""
    from sim.scenario.loading import load_scenario
    from sim.scenario.run_size import estimate

    size = estimate(load_scenario(path))
    per_day = sum(size.requests_per_day) + sum(size.subscribers)
    return min(1.0, max(1e-6, RUN_REQUESTS_PER_DAY / max(per_day, 1.0)))


@contextlib.contextmanager
def memory_limit(gb: str) -> Iterator[None]:
    """Set TOKENSIM_MAX_RUN_GB for the block."""
    old = os.environ.get("TOKENSIM_MAX_RUN_GB")
    os.environ["TOKENSIM_MAX_RUN_GB"] = gb
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENSIM_MAX_RUN_GB", None)
        else:
            os.environ["TOKENSIM_MAX_RUN_GB"] = old


def run_outcome(path: Path, out: Path) -> int:
    """A 1-month, scaled-down, 1-replication ``tokensim run``: exit 0 with finite tables written
    and a complete run folder, or exit 2 naming a field with nothing written."""
    scale = demand_scale(path)
    args = ["run", str(path), "--horizon-months", "2", "--demand-scale", f"{scale:.9g}"]
    args += ["--replications", "1", "--workers", "1", "--out", str(out), "--quiet", "--no-plots"]
    args += ["--ledger", "none"]
    with memory_limit(RUN_MEMORY_GB):
        rc, err = _cli(args)
    assert rc in (0, 2), f"run exited {rc}: {err}"
    if rc == 2:
        assert_refusal_names_fields(err)
        assert not out.exists() or not any(out.iterdir()), "a refused run wrote files"
        return rc
    assert_finite_tables(out)
    return rc


def assert_finite_tables(out: Path) -> None:
    """Every number of the run folder's monthly and hourly tables and summary is finite."""
    monthly = pd.read_csv(out / "monthly.csv")
    hourly = pd.read_parquet(out / "hourly_cluster.parquet")
    for name, df in (("monthly.csv", monthly), ("hourly_cluster.parquet", hourly)):
        num = df.select_dtypes("number")
        bad = [c for c in num.columns if not num[c].dropna().map(math.isfinite).all()]
        assert not bad, f"{name}: non-finite values in {bad}"
    summary = json.loads((out / "summary.json").read_text())
    for k, v in _numbers(summary):
        assert v is None or not math.isinf(v), f"summary.json {k} = {v}"


def _numbers(obj: Any, key: str = "") -> Iterator[tuple[str, float | None]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{key}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(obj, float):
        yield key, obj
