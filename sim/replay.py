"""Real traces as a segment's demand: loading, day folding, and checks at load time.

A replayed trace is folded into days: a request at trace time ``t`` (s, plus the segment's
``replay.shift_s``) belongs to trace day ``floor(t / 86400) - first day`` at time of day
``t mod 86400``. Simulated day ``d`` replays trace day ``d mod n_days`` (``sim.workload``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sim.defaults import SECONDS_PER_DAY
from sim.scenario import Replay, Scenario, ScenarioError
from sim.traces import TraceError, read_trace


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


def replay_trace(segment: int, r: Replay) -> ReplayTrace:
    """The folded trace of segment ``segment``'s replay; ScenarioError naming the field."""
    path = r.path()
    where = f"segments[{segment}].replay.file"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise ScenarioError([(where, f"cannot read {path}: {e.strerror}")]) from None
    try:
        return _load(str(path), r.format, float(r.shift_s), mtime)
    except TraceError as e:
        raise ScenarioError([(where, str(e))]) from None


def check_replays(s: Scenario, base: Path) -> None:
    """Make relative replay files absolute against ``base`` and read each once.

    ``base`` is the scenario file's folder; absolute paths let copies of the scenario (sweep
    points, the run folder's resolved scenario.yaml) find the trace from anywhere.
    """
    problems: list[tuple[str, str]] = []
    for k, g in enumerate(s.segments):
        if g.replay is not None:
            if not Path(g.replay.file).is_absolute():
                g.replay.file = str((base / g.replay.file).resolve())
            try:
                replay_trace(k, g.replay)
            except ScenarioError as e:
                problems.extend(e.problems)
    if problems:
        raise ScenarioError(problems)
