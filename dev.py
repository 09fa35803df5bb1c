#!/usr/bin/env python3
"""Set up and run tokensim with nothing but python3: creates .venv, installs, runs.

    python3 dev.py run     # install (once), then simulate scenarios/baseline.yaml into results/
                           # (replications in parallel: tokensim run's default, one worker per core)
    python3 dev.py test    # install (once), then lint, type-check, check the layers, run every test

Any extra arguments go to the underlying command (``tokensim run`` or ``pytest``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"


def _sh(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def ensure_env(dev: bool) -> None:
    """Create the virtualenv and install the package when pyproject changed.

    ``dev`` adds the dev extras (test tools); ``run`` does without them, which saves a fresh
    clone's main job about 10 s. The stamp records the pyproject digest and the extras.
    """
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    have = STAMP.read_text() if STAMP.exists() and PY.exists() else ""
    if have in ((f"{digest}:dev",) if dev else (digest, f"{digest}:dev")):
        return
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    _sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _sh(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]" if dev else ".")
    STAMP.write_text(f"{digest}:dev" if dev else digest)


def ensure_chromium() -> None:
    """Install Debian's chromium for the report's browser test when missing and running as root.

    Idempotent and quiet: nothing happens when ``chromium`` is on PATH, when not root (the test
    then fails naming the missing browser), or when TOKENSIM_SKIP_BROWSER=1.
    """
    if os.environ.get("TOKENSIM_SKIP_BROWSER") == "1" or shutil.which("chromium"):
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    print("+ apt-get install chromium (for the report's browser test)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"warning: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}", flush=True)
            return


def main(argv: list[str]) -> int:
    """Dispatch ``run`` or ``test``."""
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    ensure_env(dev=cmd == "test")
    try:
        if cmd == "run":
            scenario = (
                rest[0] if rest and not rest[0].startswith("-") else "scenarios/baseline.yaml"
            )
            extra = rest[1:] if rest and not rest[0].startswith("-") else rest
            name = Path(scenario).stem
            _sh(BIN / "tokensim", "run", scenario, "--out", f"results/{name}", *extra)
        else:
            _sh(BIN / "ruff", "check", "sim", "tests", "benchmarks", "dev.py")
            _sh(BIN / "ruff", "format", "--check", "sim", "tests", "benchmarks", "dev.py")
            _sh(BIN / "mypy")
            _sh(BIN / "lint-imports", "--no-cache")
            ensure_chromium()
            _sh(PY, "-m", "pytest", *rest)
    except subprocess.CalledProcessError as e:
        return e.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
