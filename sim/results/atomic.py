"""Atomic writes: a folder or a file appears complete in one step, or not at all.

Run folders, sweep folders (their ``sweep.json``, ``points.csv`` and point folders) and
HTML reports are all written this way, so that a reader never sees a half-written
output and a failure (an exception, a full disk) leaves the previous output intact.
The new content is staged beside the target, in the same folder and so on the same
file system, where ``os.replace`` swaps it in as a single rename. Staging names start
with a dot and carry the process id, so concurrent writers do not collide and leftovers
are recognisable.

Standard library only: this is the lowest layer that writes files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def atomic_folder(out_dir: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a staging folder beside ``out_dir``, then move it into place (replacing it).

    ``fill`` receives the empty staging folder and writes the content into it. Any
    existing ``out_dir`` is replaced as a whole, not merged into. When ``fill`` (or the
    move) raises, the staging folder is removed, ``out_dir`` is left as it was, and the
    exception propagates. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        fill(stage)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(stage, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out_dir


def atomic_file(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then replace ``path`` with it.

    ``str`` data is written as UTF-8 exactly as given (no newline translation), ``bytes``
    as they are. The parent folder is created when missing. On any failure the temporary
    file is removed and ``path`` keeps its previous content (or stays absent). Returns
    ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.write_bytes(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
