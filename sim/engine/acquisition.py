"""Acquisition: expected sign-ups per segment and month (Bass diffusion or a constant rate)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.world.arrays import World


def expected_signups_per_month(world: World, active_by_seg: NDArray[np.int64]) -> NDArray:
    """Expected sign-ups per month by segment given the current subscribers."""
    s = world.seg
    bass = (s.acq_p + s.acq_q * active_by_seg / np.maximum(s.acq_market, 1.0)) * np.maximum(
        s.acq_market - active_by_seg, 0.0
    )
    return np.where(s.acq_bass, bass, s.acq_per_month)
