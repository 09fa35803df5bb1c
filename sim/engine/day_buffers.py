"""Per-request arrays reused from one day to the next.

A day whose requests may be followed by retries or re-sends of deferred requests gets its
arrays with room after the day's rows (:mod:`sim.engine.admission` fills it). Allocating those
arrays afresh every day costs more than the copy into them: the operating system maps and
zeroes every new page on its first touch (measured on TPD with every coder on a windowed plan:
a third of the day's time). These buffers keep their pages: each day the day's rows are copied
into the front of one buffer per array and the room is cleared, so the kernel sees exactly
what a fresh array would hold.

A view handed out here is valid only until the same name is asked for again (the next day):
nothing may keep one past the day (tables copy what they keep).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

GROWTH = 1.25
"""A buffer that is too small is reallocated this many times the size asked for (ratio)."""


class DayBuffers:
    """Named buffers, each at least as long as the longest day asked of it so far."""

    def __init__(self) -> None:
        self._bufs: dict[str, NDArray[Any]] = {}

    def _buffer(self, name: str, size: int, dtype: Any) -> NDArray[Any]:
        b = self._bufs.get(name)
        if b is None or len(b) < size or b.dtype != np.dtype(dtype):
            b = np.empty(int(size * GROWTH) + 1, dtype=dtype)
            self._bufs[name] = b
        return b[:size]

    def with_room(self, name: str, x: NDArray[Any], room: int) -> NDArray[Any]:
        """``x`` followed by ``room`` zero rows (``x`` itself when there is no room)."""
        if room == 0:
            return x
        v = self._buffer(name, len(x) + room, x.dtype)
        v[: len(x)] = x
        v[len(x) :] = 0
        return v

    def filled(self, name: str, size: int, dtype: Any, fill: Any) -> NDArray[Any]:
        """``size`` rows of ``fill``."""
        v = self._buffer(name, size, dtype)
        v[:] = fill
        return v

    def counting(self, name: str, size: int) -> NDArray[np.int64]:
        """0, 1, ..., size - 1 (copied from a kept count, not made anew)."""
        ref = self._bufs.get("__count__")
        if ref is None or len(ref) < size:
            ref = np.arange(int(size * GROWTH) + 1, dtype=np.int64)
            self._bufs["__count__"] = ref
        v = self._buffer(name, size, np.int64)
        v[:] = ref[:size]
        return v
