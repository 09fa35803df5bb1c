"""Fuzzing the scenario edge (issue 14): mutated shipped scenarios through validate and run.

Hypothesis mutates one place of a shipped scenario (scenarios/*.yaml): a value's type or sign,
a non-finite, huge or empty value, a deleted or unknown key, a duplicated key, a dangling
reference. Every outcome must be exit 0 (with finite tables, for a run) or exit 2 naming a
field; never a traceback, a crash or a hang. The default run keeps a fast subset; ``-m slow``
runs many more examples. One small run is made with ``NUMBA_BOUNDSCHECK=1`` in a subprocess,
so an out-of-bounds index in a compiled kernel raises instead of corrupting memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.scenario_fuzz import (
    EMPTY,
    HUGE,
    NON_FINITE,
    REFERENCE_KEYS,
    SHIPPED,
    WRONG_TYPES,
    all_paths,
    assert_finite_tables,
    deleted,
    dump,
    get,
    load_data,
    replaced,
    run_outcome,
    validate_outcome,
    with_duplicate,
    with_unknown_key,
)

DATA = {p.name: load_data(p) for p in SHIPPED}
OPS = (
    "type",
    "sign",
    "non_finite",
    "huge",
    "scale",
    "empty",
    "delete",
    "unknown",
    "duplicate",
    "dangle",
)
"""Mutations: a wrong type, a flipped sign, inf or NaN, a huge value, a number scaled by a power
of ten (often still valid, so the run is exercised), an empty value, a deleted key or item, an
unknown key, a duplicated key, a reference to a name nothing defines."""


RUN_OPS = ("scale", "scale", "scale", "sign", "delete", "empty")
"""Mutations of the run tests: mostly ones that often stay valid, so the engine runs them."""


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _places(data: Any, op: str) -> list[tuple[str | int, ...]]:
    """The places of ``data`` operation ``op`` applies to."""
    paths = list(all_paths(data))
    if op in ("sign", "non_finite", "huge", "scale"):
        return [p for p in paths if _is_number(get(data, p))]
    if op == "unknown":
        return [p for p in paths if isinstance(get(data, p), dict)]
    if op == "duplicate":
        return [p for p in paths if isinstance(p[-1], str)]
    if op == "dangle":
        return [
            p
            for p in paths
            if isinstance(get(data, p), str)
            and (p[-1] in REFERENCE_KEYS or (len(p) > 1 and p[-2] in REFERENCE_KEYS))
        ]
    return paths


@st.composite
def mutations(
    draw: st.DrawFn, ops: tuple[str, ...] = OPS
) -> tuple[str, str, tuple[str | int, ...], Any]:
    """(scenario file name, operation, path, mutated data), the operation one of ``ops``."""
    name = draw(st.sampled_from(sorted(DATA)))
    data = DATA[name]
    op = draw(st.sampled_from(ops))
    paths = _places(data, op)
    path = draw(st.sampled_from(paths))
    value = get(data, path)
    if op == "type":
        out = replaced(data, path, draw(st.sampled_from(WRONG_TYPES)))
    elif op == "sign":
        out = replaced(data, path, -value if value else -1)
    elif op == "non_finite":
        out = replaced(data, path, draw(st.sampled_from(NON_FINITE)))
    elif op == "huge":
        out = replaced(data, path, draw(st.sampled_from(HUGE)))
    elif op == "scale":
        factor = 10.0 ** draw(st.integers(-6, 6))
        out = replaced(data, path, type(value)(value * factor) if value else factor)
    elif op == "empty":
        out = replaced(data, path, draw(st.sampled_from(EMPTY)))
    elif op == "delete":
        out = deleted(data, path)
    elif op == "unknown":
        out = with_unknown_key(data, path)
    elif op == "duplicate":
        out = with_duplicate(data, path, value)
    else:
        out = replaced(data, path, "no_such_name")
    return name, op, path, out


def _write(tmp_path_factory: pytest.TempPathFactory, data: Any) -> Path:
    f = tmp_path_factory.mktemp("fuzz") / "scenario.yaml"
    f.write_text(dump(data))
    return f


def _validate_case(tmp_path_factory: pytest.TempPathFactory, case: tuple) -> None:
    name, op, path, data = case
    rc = validate_outcome(_write(tmp_path_factory, data))
    anchors_only = str(path[0]).startswith("x-")  # an x- block may hold values nothing uses
    if op == "duplicate" or (op == "non_finite" and not anchors_only):
        assert rc == 2, f"{name}: {op} at {path} was accepted"


def _run_case(tmp_path_factory: pytest.TempPathFactory, case: tuple) -> None:
    _, _, _, data = case
    f = _write(tmp_path_factory, data)
    if validate_outcome(f) == 0:
        event(f"run exit {run_outcome(f, f.parent / 'out')}")
    else:
        event("refused by validate")


FAST = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FAST
@given(case=mutations())
def test_mutated_scenarios_validate_or_name_a_field(tmp_path_factory, case):
    _validate_case(tmp_path_factory, case)


@settings(FAST, max_examples=30)
@given(case=mutations(RUN_OPS))
def test_mutated_scenarios_run_or_name_a_field(tmp_path_factory, case):
    _run_case(tmp_path_factory, case)


@pytest.mark.slow
@settings(FAST, max_examples=2000, derandomize=False)
@given(case=mutations())
def test_many_mutated_scenarios_validate_or_name_a_field(tmp_path_factory, case):
    _validate_case(tmp_path_factory, case)


@pytest.mark.slow
@settings(FAST, max_examples=150, derandomize=False)
@given(case=mutations(RUN_OPS))
def test_many_mutated_scenarios_run_or_name_a_field(tmp_path_factory, case):
    _run_case(tmp_path_factory, case)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_runs_short_with_finite_tables(tmp_path, path):
    assert run_outcome(path, tmp_path / "out") == 0


@pytest.mark.slow
def test_a_run_with_numba_bounds_checks(tmp_path):
    """One small run whose compiled kernels check every index (NUMBA_BOUNDSCHECK=1).

    A fresh numba cache folder, so no kernel compiled without the checks is reused; compiling
    every kernel again takes over a minute of CPU, hence slow.
    """
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "NUMBA_BOUNDSCHECK": "1",
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
    }
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sim", "run", str(root / "scenarios" / "tpd-10k-30d.yaml")]
    args += ["--horizon-months", "1", "--demand-scale", "0.01", "--replications", "1"]
    args += ["--workers", "1", "--out", str(out), "--quiet", "--no-plots", "--ledger", "none"]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 0, r.stderr
    assert_finite_tables(out)
