"""Usage windows and peak weights as the engine sees them: fixed-shape arrays per plan.

Every plan has the same number of window slots (``WINDOW_MAX_PER_PLAN`` of the schema;
``n[p]`` of them used), so the arrays keep one shape (and the compiled kernel one type)
whether a scenario has windows or not; :func:`sim.world.build.make_windows` fills them.
Rolling windows each get a ring of admitted requests in :mod:`sim.engine.windows`; ``ring``
numbers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.units import HOURS_PER_DAY

HOURS_PER_WEEK = 7 * HOURS_PER_DAY
"""Hours in a week: peak weights are a weekly schedule (h)."""

WIN_ROLLING = 0
"""Window kind: sliding over the subscriber's last ``hours`` of admitted requests."""
WIN_SESSION = 1
"""Window kind: opens with the first request after the last one closed, lasts ``hours``."""
WIN_CALENDAR = 2
"""Window kind: fixed steps of ``hours`` from Monday 00:00 of the first week."""
WINDOW_KINDS = {"rolling": WIN_ROLLING, "session": WIN_SESSION, "calendar": WIN_CALENDAR}

LIMIT_WAIT = 0
"""At a full window the user may wait for it to roll (segment ``at_window_limit``)."""
LIMIT_CUTOFF = 1
"""At a full window the request is refused."""
LIMIT_THROTTLE = 2
"""At a full window the request is served on the slow lane (lowest priority, a minimum gap)."""
LIMIT_MONTHLY = 3
"""At a full window the plan's own exhaustion rule applies, as if the month's quota had run
out: cut-off refuses, throttle serves on its slow lane or cheaper model, pay-as-you-go serves
and bills the whole request (a top-up pack adds to the month, not to a window: refused)."""
LIMIT_RULES = {
    "wait": LIMIT_WAIT,
    "cutoff": LIMIT_CUTOFF,
    "throttle": LIMIT_THROTTLE,
    "monthly_rule": LIMIT_MONTHLY,
}


@dataclass(frozen=True)
class Windows:
    """Per plan: its windows (slots ``k < n[p]``) and its weekly peak-weight schedule."""

    names: list[list[str]]
    n: NDArray[np.int64]  # [P] windows used
    kind: NDArray[np.int64]  # [P, K] WIN_* code
    length_s: NDArray[np.float64]  # [P, K] window length (s)
    allowance: NDArray[np.float64]  # [P, K] requests or tokens per window
    in_tokens: NDArray[np.bool_]  # [P, K] the allowance counts quota units (else requests)
    rule: NDArray[np.int64]  # [P, K] LIMIT_* code
    gap_s: NDArray[np.float64]  # [P, K] throttle's minimum gap (s)
    ring: NDArray[np.int64]  # [P, K] ring of a rolling window, -1 otherwise
    peak: NDArray[np.float64]  # [P, 168] quota weight by hour of week (Monday 00:00 = 0)
    wait_share: NDArray[np.float64]  # [S] users who wait for a full window to roll
    max_wait_s: NDArray[np.float64]  # [S] longest wait from the first try (s)
    max_deferrals: int  # times one request may be deferred before its user gives it up

    @property
    def active(self) -> bool:
        """Some plan has a window."""
        return bool(self.n.any())

    @property
    def weighted(self) -> bool:
        """Some plan has a peak weight other than 1."""
        return bool((self.peak != 1.0).any())

    @property
    def n_rings(self) -> int:
        """Rolling windows over all plans."""
        return int((self.ring >= 0).sum())

    def waits(self) -> NDArray[np.bool_]:
        """[P] plans with a window whose users may wait for it."""
        used = np.arange(self.kind.shape[1])[None, :] < self.n[:, None]
        return ((self.rule == LIMIT_WAIT) & used).any(axis=1)

    def ring_slot(self) -> NDArray[np.int64]:
        """[rings] the window slot k of each ring."""
        return np.nonzero(self.ring >= 0)[1].astype(np.int64)
