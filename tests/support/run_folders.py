"""Helpers for tests that damage or edit finished run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim.results.run_folder import MANIFEST


def set_manifest(folder: Path, **changes: Any) -> None:
    """Rewrite the folder's manifest.json with ``changes`` applied to its top-level keys."""
    m = json.loads((folder / MANIFEST).read_text())
    m.update(changes)
    (folder / MANIFEST).write_text(json.dumps(m))
