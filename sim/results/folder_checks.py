"""Checks of an output path: can it be written, and would replacing it lose a user's file.

Two failures the writers must catch early or refuse cleanly:

* an output that cannot be written (``--out`` under a regular file, or in a read-only
  folder) must be refused before simulating, not with a traceback after minutes of work:
  :func:`output_problem` tries it at once;
* replacing an output folder must never delete a file tokensim did not write: a file the
  user put there, before the command or while it ran. :func:`foreign_files` lists the files
  of a folder outside what its writer declares as its own, and :class:`FolderChangedError`
  is the refusal of the final move (``sim.results.atomic.atomic_folder``), which leaves the
  folder untouched and says where the new result was put instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

from sim.scenario.errors import ScenarioError

Owned = Callable[[Path], Collection[str]]
"""Given an existing output folder, the files (relative POSIX paths) its writer wrote there."""

PROBE_PREFIX = ".tokensim-probe-"
"""Prefix of the empty file :func:`output_problem` creates and removes to test writing."""


class FolderChangedError(ScenarioError):
    """The output folder holds files tokensim did not write: nothing in it was touched.

    ``kept`` is where the new result was moved instead (None when there was none).
    """

    def __init__(self, folder: Path, problem: str, kept: Path | None):
        self.folder = Path(folder)
        self.kept = kept
        where = f"; the new result is in {kept}" if kept is not None else ""
        super().__init__([(str(folder), f"{problem}; it was left untouched{where}")])


def listing(folder: Path) -> list[str]:
    """Every file (and symbolic link) under ``folder``, as sorted relative POSIX paths."""
    folder = Path(folder)
    out = []
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        links = [d for d in dirs if (base / d).is_symlink()]  # not followed: listed as files
        out += [(base / f).relative_to(folder).as_posix() for f in (*files, *links)]
    return sorted(out)


def foreign_files(folder: Path, owned: Owned | None) -> list[str]:
    """Files under ``folder`` that ``owned`` does not claim (none when ``owned`` is None)."""
    if owned is None:
        return []
    mine = set(owned(Path(folder)))
    return [f for f in listing(folder) if f not in mine]


def foreign_problem(folder: Path, foreign: list[str]) -> str:
    """'holds notes.txt (and 2 other files) that tokensim did not write' for a message."""
    more = f" and {len(foreign) - 1} other file(s)" if len(foreign) > 1 else ""
    return f"holds {Path(folder) / foreign[0]}{more}, which tokensim did not write"


def output_problem(path: Path, option: str = "--out", folder: bool = True) -> str | None:
    """Why the output ``path`` (a folder, or a file when not ``folder``) cannot be written.

    None when it can. Checked: an existing ``path`` of the other kind; an ancestor that is a
    file; and, in the nearest existing folder above ``path`` (where the writer stages and
    creates folders), that a file can be created (read-only folder or file system, no
    permission). The test file is removed at once.
    """
    path = Path(path)
    if path.exists() and folder and not path.is_dir():
        return f"{option} {path} exists and is not a folder"
    if path.is_dir() and not folder:
        return f"{option} {path} is a folder; give a file name"
    above = path.parent
    while not above.exists() and above.parent != above:
        if above.is_symlink():  # a dangling link: creating under it fails
            return f"{option} {path}: {above} is a broken link"
        above = above.parent
    if not above.is_dir():
        return f"{option} {path}: {above} is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=above)
    except OSError as e:
        return f"{option} {path}: cannot write in {above} ({e.strerror or e})"
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return None
