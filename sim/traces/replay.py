"""Real traces as a segment's demand: loading, day folding, and checks at load time.

A replayed trace is folded into days: a request at trace time ``t`` (s, plus the segment's
``replay.shift_s``) belongs to trace day ``floor(t / 86400) - first day`` at time of day
``t mod 86400``. Simulated day ``d`` replays trace day ``d mod n_days`` (``sim.engine.demand``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sim.traces.readers import TraceError, read_trace
from sim.units import SECONDS_PER_DAY


@dataclass(frozen=True)
class ReplayTrace:
    """A trace folded into days: per trace day, its requests sorted by time of day."""

    tod: NDArray[np.float64]  # time of day (s, [0, 86400))
    input: NDArray[np.float64]  # input tokens
    output: NDArray[np.float64]  # output tokens
    day_start: NDArray[np.int64]  # [n_days + 1] row ranges of each trace day

    @property
    def n_days(self) -> int:
        """Trace days (at least 1)."""
        return len(self.day_start) - 1

    @property
    def requests_per_day(self) -> float:
        """Mean requests per replayed day."""
        return len(self.tod) / self.n_days

    def day(self, d: int) -> slice:
        """Rows replayed on simulated day ``d`` (trace day ``d mod n_days``)."""
        k = d % self.n_days
        return slice(int(self.day_start[k]), int(self.day_start[k + 1]))


@lru_cache(maxsize=16)
def _load(path: str, fmt: str, shift_s: float, mtime_ns: int) -> ReplayTrace:
    tr = read_trace(path, fmt)
    t = tr.t + shift_s
    day = np.floor(t / SECONDS_PER_DAY).astype(np.int64)
    day -= day.min()
    tod = t - np.floor(t / SECONDS_PER_DAY) * SECONDS_PER_DAY
    order = np.lexsort((tod, day))
    n_days = int(day.max()) + 1
    starts = np.searchsorted(day[order], np.arange(n_days + 1), side="left").astype(np.int64)
    return ReplayTrace(
        tod=tod[order],
        input=tr.input[order].astype(np.float64),
        output=tr.output[order].astype(np.float64),
        day_start=starts,
    )


def load_replay(path: Path, fmt: str, shift_s: float = 0.0) -> ReplayTrace:
    """The trace file at ``path`` (format ``azure`` or ``mooncake``) folded into days.

    Cached by path, format, shift and the file's modification time, so sweep points and
    replications read a file once. Raises TraceError (unreadable file or bad content).
    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise TraceError(f"cannot read {path}: {e.strerror}") from None
    return _load(str(path), fmt, float(shift_s), mtime)
