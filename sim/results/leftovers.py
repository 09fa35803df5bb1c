"""Leftovers of killed writers: found, and removed when their writer is gone.

The atomic writers (``sim.results.atomic``) stage beside their target under hidden names
that carry the writer's process id: ``.NAME.staging-PID/`` (a folder being filled),
``.NAME.old-PID/`` (the folder being replaced, removed right after the move) and
``.NAME.tmp-PID`` (a file being written, e.g. a sweep's ``.points.csv.tmp-PID``). A writer
killed with ``kill -9`` or by a power cut cannot remove them, so the next writer into the
same place does, before it writes: :func:`clean_leftovers` removes each one whose process is
no longer alive and keeps (and reports) the others, which may still be in use.

It is called with the target's lock held (``sim.results.locks``), so no other tokensim
process is writing there; the process check is a second guard, against writers of versions
without the lock and against removing a folder some live process still fills.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old|tmp)-(?P<pid>\d+)$")
"""Hidden names of the atomic writers' staging folders, replaced folders and temporary files."""


@dataclass(frozen=True)
class Leftover:
    """A staging folder, replaced folder or temporary file left by writer ``pid``."""

    path: Path
    pid: int
    removed: bool
    """True when it was removed (its writer is gone); False when kept (its writer is alive)."""

    def describe(self) -> str:
        """One line for the user: what was removed or kept, and why."""
        if self.removed:
            return f"removed {self.path}, left by process {self.pid} (no longer running)"
        return f"kept {self.path}: process {self.pid} that writes it is still running"


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host (this process included)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours (EPERM), or cannot tell: keep its files
        return True
    return True


def _matches(folder: Path, name: str | None) -> list[tuple[Path, int]]:
    """Leftovers directly in ``folder`` (of target ``name`` only, when given)."""
    try:
        entries = list(folder.iterdir())
    except OSError:  # absent, not a folder, or unreadable: nothing of ours to clean there
        return []
    out = []
    for p in sorted(entries):
        m = LEFTOVER.match(p.name)
        if m and (name is None or m["name"] == name):
            out.append((p, int(m["pid"])))
    return out


def find_leftovers(target: Path) -> list[tuple[Path, int]]:
    """Leftovers of writers of ``target``: (path, writer's pid).

    Those beside it (``.NAME.staging-PID`` and the like, of this NAME only), inside it and
    inside its subfolders (a sweep's ``points/``, temporary files of ``points.csv``).
    """
    target = Path(target)
    found = _matches(target.parent, target.name)
    if target.is_dir() and not target.is_symlink():
        found += _matches(target, None)
        for sub in sorted(p for p in target.iterdir() if p.is_dir() and not p.is_symlink()):
            if not LEFTOVER.match(sub.name):
                found += _matches(sub, None)
    return found


def clean_leftovers(target: Path) -> list[Leftover]:
    """Remove the leftovers of ``target`` whose writer is gone; report every one found."""
    out = []
    for path, pid in find_leftovers(target):
        if pid_alive(pid):
            out.append(Leftover(path, pid, removed=False))
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        out.append(Leftover(path, pid, removed=True))
    return out
