"""One writer per output folder: a lock file beside the folder, held while it is written.

Two commands writing to the same ``--out`` would both stage their folder and the second move
would silently replace the first's result. :func:`folder_lock` prevents that: it takes an
exclusive ``fcntl.flock`` on ``.NAME.lock`` beside the folder ``NAME`` (beside, not inside, so
that the atomic move of the folder leaves it alone) and writes the holder's process id, host
and start time into it. A second writer does not wait: it gets :class:`FolderLockedError`
naming the holder, and the command refuses with exit code 2.

Why ``flock``: the kernel releases the lock when its holder dies, ``kill -9`` included, so a
crashed run never blocks the next one; the lock file it leaves is simply locked again. The
holder removes the file when it is done; a writer that opened the file just before that
removal checks, once it holds the lock, that the path still names the file it locked, and
starts again otherwise (so two writers can never both hold "the" lock). The lock is
re-entrant within a process: the command line holds it from before simulating until the end,
and the atomic move (``sim.results.atomic``) takes it again without blocking itself.

POSIX only (``fcntl``), as is the rest of the tool's process handling.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sim.scenario.errors import ScenarioError

LOCK_SUFFIX = ".lock"
"""A folder NAME's lock file is ``.NAME.lock``, in the folder's parent."""

_held: dict[Path, int] = {}
"""Lock files this process holds, and how many times it has taken each (re-entrancy)."""
_held_guard = threading.Lock()


class FolderLockedError(ScenarioError):
    """Another process is writing the folder; the message names it (pid, host, start time)."""

    def __init__(self, folder: Path, holder: dict[str, Any]):
        self.folder = Path(folder)
        self.holder = holder
        super().__init__([(str(folder), f"is being written by {describe_holder(holder)}")])


def lock_path(folder: Path) -> Path:
    """The lock file of ``folder``: ``.NAME.lock`` beside it."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


def describe_holder(holder: dict[str, Any]) -> str:
    """'process 123 on host h (started 2025-01-01T00:00:00Z: tokensim run ...)' for a message."""
    what = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    started = holder.get("started_utc")
    command = holder.get("command")
    if started or command:
        what += f" (started {started or '?'}" + (f": {command}" if command else "") + ")"
    return what + "; wait for it to finish or choose another output"


def this_holder(command: str | None = None) -> dict[str, Any]:
    """What a lock file says of this process: pid, host, UTC start time and command line."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
    }


def read_holder(path: Path) -> dict[str, Any]:
    """The holder recorded in the lock file ``path`` (empty when unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _acquire(path: Path, folder: Path) -> int:
    """Lock file ``path`` of ``folder``, locked without waiting: its descriptor.

    Raises FolderLockedError when another process holds it.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(folder, read_holder(path)) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: again


@contextmanager
def folder_lock(folder: Path, command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (which may not exist yet) for the ``with`` block.

    Creates the folder's parent when missing. Raises FolderLockedError (a ScenarioError:
    exit code 2 on the command line) naming the holder when another process holds it; taken
    again by the same process, it returns at once. Yields the lock file's path.
    """
    path = lock_path(Path(folder)).absolute()
    with _held_guard:
        if path in _held:
            _held[path] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, Path(folder))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(this_holder(command)) + "\n").encode("utf-8"))
        with _held_guard:
            _held[path] = 1
        try:
            yield path
        finally:
            with _held_guard:
                del _held[path]
            path.unlink(missing_ok=True)  # while still locked: see the module docstring
    finally:
        os.close(fd)
