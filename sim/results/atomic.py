"""Atomic writes: a folder or a file appears complete in one step, or not at all.

Run folders, sweep folders (their ``sweep.json``, ``points.csv`` and point folders) and
HTML reports are all written this way, so that a reader never sees a half-written
output and a failure (an exception, a full disk) leaves the previous output intact.
The new content is staged beside the target, in the same folder and so on the same
file system, where ``os.replace`` swaps it in as a single rename. Staging names start
with a dot and carry the process id, so concurrent writers do not collide and leftovers
are recognisable (``sim.results.leftovers`` removes those of killed writers).

Replacing a folder never deletes a file its writer did not write: ``atomic_folder`` takes
the folder's lock (``sim.results.locks``), and at the final move checks the folder it is
about to replace against what the writer declares as its own (``owned``). A file someone
put there, before the command or while it ran, makes it refuse (``FolderChangedError``):
the folder is left as it is and the new result is moved to a visible ``NAME.new-PID``.

Standard library and the project's own small modules only: this is the lowest layer that
writes files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sim.results.folder_checks import FolderChangedError, Owned, foreign_files, foreign_problem
from sim.results.locks import folder_lock

KEPT_LABEL = "new"
"""A result refused at the final move is kept as ``NAME.new-PID`` beside its target."""
PREVIOUS_LABEL = "previous"
"""A refused target that cannot be put back (its name taken meanwhile): ``NAME.previous-PID``."""


def atomic_folder(out_dir: Path, fill: Callable[[Path], None], owned: Owned | None = None) -> Path:
    """Fill a staging folder beside ``out_dir``, then move it into place (replacing it).

    ``fill`` receives the empty staging folder and writes the content into it. An existing
    ``out_dir`` is replaced as a whole, not merged into; with ``owned`` (what the writer
    wrote in an existing folder of its kind, see ``sim.results.folder_checks.Owned``) only
    when every file in it is owned, checked after it has been moved aside so that no file
    can slip in. Otherwise (or when ``out_dir`` is no longer a folder) nothing of it is
    touched, the new content is moved to ``NAME.new-PID`` beside it, and
    FolderChangedError names the first foreign file and that place. When ``fill`` raises,
    the staging folder is removed, ``out_dir`` is left as it was, and the exception
    propagates. The folder's lock is held throughout. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir):
        stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
        try:
            fill(stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        _move_into_place(stage, out_dir, owned)
    return out_dir


def _visible(out_dir: Path, label: str) -> Path:
    """A free visible name beside ``out_dir``: ``NAME.LABEL-PID`` (``-2``, ``-3``... if taken)."""
    base = out_dir.parent / f"{out_dir.name}.{label}-{os.getpid()}"
    path, n = base, 1
    while path.exists() or path.is_symlink():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _refuse(stage: Path, out_dir: Path, problem: str) -> FolderChangedError:
    """Move the staged result to a visible name beside ``out_dir``; the error to raise."""
    kept = _visible(out_dir, KEPT_LABEL)
    os.replace(stage, kept)
    return FolderChangedError(out_dir, problem, kept)


def _move_into_place(stage: Path, out_dir: Path, owned: Owned | None) -> None:
    """Swap the complete ``stage`` in for ``out_dir``, never deleting a foreign file."""
    try:
        if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
            raise _refuse(stage, out_dir, "is no longer a folder")
        if not out_dir.exists():
            try:
                os.replace(stage, out_dir)  # onto nothing, or onto an empty folder made meanwhile
                return
            except OSError:
                if not out_dir.is_dir():
                    raise
                # a folder with files appeared meanwhile: check it as below
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        foreign = foreign_files(old, owned)
        if foreign:
            try:
                os.replace(old, out_dir)
            except OSError:  # something new at out_dir: keep the old folder visible
                os.replace(old, _visible(out_dir, PREVIOUS_LABEL))
            raise _refuse(stage, out_dir, foreign_problem(out_dir, foreign))
        try:
            os.replace(stage, out_dir)
        except BaseException:
            os.replace(old, out_dir)
            raise
        shutil.rmtree(old)
    except FolderChangedError:
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


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
