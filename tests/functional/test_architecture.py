"""The layer contract (import-linter, pyproject.toml) holds, and catches each kind of violation.

Each violation is made on a copy of the package, so the check is shown to bite: a contract that
passed whatever the imports would be no contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "sim", tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layer_contract(copy: Path) -> None:
    done = _lint(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("results/kpis.py", "from sim.report.html import fmt", "sim.results is not allowed to"),
        ("engine/billing.py", "from sim.scenario.schema import Plan", "sim.engine is not allowed"),
        ("world/arrays.py", "import pydantic", "sim.world is not allowed to import pydantic"),
        ("scenario/errors.py", "from sim.cli import main", "sim.scenario is not allowed"),
        # churn already imports choice (VALUE_FLOOR): this closes a loop
        ("engine/choice.py", "from sim.engine.churn import churn_probability", "No cycles"),
    ],
)
def test_a_deliberate_violation_breaks_the_contract(
    copy: Path, module: str, line: str, broken: str
) -> None:
    target = copy / "sim" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = _lint(copy)
    assert done.returncode == 1, done.stdout
    assert broken in done.stdout, done.stdout
