"""The subscribers a scenario's book holds on a plan at t = 0, as intensity cells.

With ``book`` (docs/model.md, "The book at t=0") the subscribers at t = 0 hold the plans the
book says, not the logit's choice. ``sim.engine.lifecycle`` sets a book subscriber's intensity
from its ``monthly_tokens``: those tokens over the segment's mean monthly tokens at intensity 1
and the target engagement (uncapped mean lengths, as the engine takes them); a row without
``monthly_tokens`` draws its intensity from the segment's Gamma law. This module returns the
same population as weights over intensities, for :func:`sim.pricing.monthly_use.monthly_use`.
Rows that choose again (``rechoose``, plan -1) are left out: the logit's choosers stand for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.engine.choice import VALUE_FLOOR
from sim.world.arrays import F64, World


@dataclass(frozen=True)
class BookHolders:
    """The book's subscribers of one segment on one plan at t = 0."""

    weight: F64
    """Probability of each intensity in ``intensity`` (sums to 1)."""
    intensity: F64
    """Intensities (multiplier of the segment's mean demand, mean 1 over the segment)."""
    subscribers: int
    """How many the book holds on the plan (subscribers)."""
    share_of_segment: float
    """Their share of the segment's subscribers in the book with a plan (share)."""


def book_holders(world: World, s: int, p: int, cells: tuple[F64, F64]) -> BookHolders | None:
    """Segment ``s``'s book subscribers on plan ``p`` (None without a book or without any).

    ``cells``: the segment's Gamma intensity cells (probability, conditional mean), used for
    rows without ``monthly_tokens``.
    """
    book = world.book
    if book is None:
        return None
    in_seg = (book.seg == s) & (book.plan >= 0)
    mine = in_seg & (book.plan == p)
    n = int(mine.sum())
    if n == 0:
        return None
    seg = world.seg
    e_in, e_out = seg.mean_tokens()
    per_month = seg.mean_requests_per_day()[s] * world.days_per_month * (e_in[s] + e_out[s])
    known = book.monthly_tokens[mine]
    known = known[np.isfinite(known)]
    drawn = n - len(known)
    intensity = known / max(float(per_month * seg.eng_target[s]), VALUE_FLOOR)
    prob, node = cells
    weight = np.concatenate([np.full(len(known), 1.0 / n), prob * drawn / n])
    return BookHolders(
        weight=weight,
        intensity=np.concatenate([intensity, node]),
        subscribers=n,
        share_of_segment=n / int(in_seg.sum()),
    )
