"""The project's own packaging installs without warnings (issue 13: a clean install)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING_WARNINGS = ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "deprecated")
"""Words of setuptools' warnings about a project's configuration, as pip forwards them."""


@pytest.mark.slow
def test_the_editable_install_prints_no_packaging_warning(tmp_path: Path) -> None:
    """What dev.py does (pip install -e .), without dependencies: setuptools has no complaint."""
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    bindir = "Scripts" if sys.platform == "win32" else "bin"
    pip = [str(tmp_path / "venv" / bindir / "python"), "-m", "pip"]
    done = subprocess.run(
        [*pip, "install", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert not [w for w in PACKAGING_WARNINGS if w in said], said
