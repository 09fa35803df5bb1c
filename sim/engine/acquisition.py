"""Acquisition: expected sign-ups per segment and month (Bass diffusion or a constant rate).

A market reference price, where set, scales the rate by the segment's own prices against it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.choice import VALUE_FLOOR, price_index
from sim.world.arrays import World


def expected_signups_per_month(
    world: World, active_by_seg: NDArray[np.int64], month: int = 0
) -> NDArray:
    """Expected sign-ups per month by segment given the current subscribers.

    With events or reference prices (``world.timeline.active``), a segment with no plan on sale
    in ``month`` gets none, and where the segment has a market reference price the rate scales
    by (price index / reference) ^ -acquisition_price_elasticity (sim.engine.choice.price_index).
    """
    s = world.seg
    bass = (s.acq_p + s.acq_q * active_by_seg / np.maximum(s.acq_market, 1.0)) * np.maximum(
        s.acq_market - active_by_seg, 0.0
    )
    rate = np.where(s.acq_bass, bass, s.acq_per_month)
    if not world.timeline.active:
        return rate
    index = price_index(world, month)
    ref = world.timeline.reference[month]
    known = np.isfinite(ref) & np.isfinite(index)
    ratio = np.where(known, np.maximum(index, VALUE_FLOOR) / np.where(known, ref, 1.0), 1.0)
    scale = ratio ** (-world.churn.acquisition_price_elasticity)
    return np.where(np.isfinite(index), rate * scale, 0.0)
