"""Subscribers as a structure of arrays: one row per subscriber who ever signed up.

Rows are never removed (a churned subscriber keeps its row with ``active``
False), so a subscriber's index is its id for the whole run. Per-subscriber
state splits into what persists (segment, plan, intensity, engagement,
tenure) and what the billing month accumulates (usage, counters), which
:meth:`Population.reset_month` clears at each renewal.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.accounting import SUB_COUNTERS

# Counters accumulated over a billing month live as rows of one float64 array (the layout the
# compiled tally expects); token counters of "requested"/"refused" include every request.
MONTH_COUNTERS: tuple[str, ...] = SUB_COUNTERS

# Plan-state columns reset at renewal and read by the cluster kernel.
KERNEL_STATE: dict[str, tuple[type, float]] = {
    "usage": (np.float64, 0.0),
    "quota_eff": (np.float64, 0.0),
    "last_adm": (np.float64, -np.inf),
    "exhausted": (np.int8, 0),
    "declined": (np.int8, 0),
    "packs": (np.int64, 0),
    "fee_billed": (np.float64, 0.0),
}

PERSISTENT: dict[str, tuple[type, float]] = {
    "seg": (np.int64, 0),
    "plan": (np.int64, 0),
    "intensity": (np.float64, 1.0),
    "engagement": (np.float64, 1.0),
    "join_day": (np.int64, 0),
    "month_start_day": (np.int64, 0),
    "tenure_months": (np.int64, 0),
    "active": (np.bool_, False),
    "inflight": (np.int64, 0),
    "exhaust_streak": (np.int64, 0),
    "waste_streak": (np.int64, 0),
    # terms of the subscriber's plan (sim.world.timeline): its own fee, which price change last
    # reached it, a promotion's discount and the months it has left, months on this plan
    "price": (np.float64, 0.0),
    "charge": (np.float64, 0.0),
    "price_epoch": (np.int64, -1),
    "promo_left": (np.int64, 0),
    "promo_share": (np.float64, 0.0),
    "plan_months": (np.int64, 0),
}


class Population:
    """Growable column store of subscribers; columns are numpy arrays of length ``capacity``."""

    def __init__(self, capacity: int, n_models: int):
        self.n = 0
        self.n_models = n_models
        self.capacity = max(int(capacity), 16)
        self.cols: dict[str, NDArray] = {}
        for name, (dt, fill) in {**PERSISTENT, **KERNEL_STATE}.items():
            self.cols[name] = np.full(self.capacity, fill, dtype=dt)
        self.counters = np.zeros((self.capacity, len(MONTH_COUNTERS)))
        self._link_counters()
        # served tokens by model and class: [capacity, models, 3] (input miss, input hit, output)
        self.tokens_by_model = np.zeros((self.capacity, n_models, 3), dtype=np.float64)

    def _link_counters(self) -> None:
        for k, name in enumerate(MONTH_COUNTERS):
            self.cols[name] = self.counters[:, k]

    def __getattr__(self, name: str) -> NDArray:
        try:
            return self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name) from None

    def _grow(self, need: int) -> None:
        cap = self.capacity
        while cap < need:
            cap *= 2
        if cap == self.capacity:
            return
        for name, (dt, fill) in {**PERSISTENT, **KERNEL_STATE}.items():
            b: NDArray = np.full(cap, fill, dtype=dt)
            b[: self.capacity] = self.cols[name]
            self.cols[name] = b
        counters = np.zeros((cap, len(MONTH_COUNTERS)))
        counters[: self.capacity] = self.counters
        self.counters = counters
        self._link_counters()
        t = np.zeros((cap, self.n_models, 3))
        t[: self.capacity] = self.tokens_by_model
        self.tokens_by_model = t
        self.capacity = cap

    def add(
        self,
        seg: NDArray[np.int64],
        plan: NDArray[np.int64],
        intensity: NDArray[np.float64],
        engagement: NDArray[np.float64],
        join_day: NDArray[np.int64],
        quota: NDArray[np.float64],
    ) -> NDArray[np.int64]:
        """Append subscribers; return their ids."""
        k = len(seg)
        self._grow(self.n + k)
        ids = np.arange(self.n, self.n + k, dtype=np.int64)
        c = self.cols
        c["seg"][ids] = seg
        c["plan"][ids] = plan
        c["intensity"][ids] = intensity
        c["engagement"][ids] = engagement
        c["join_day"][ids] = join_day
        c["month_start_day"][ids] = join_day
        c["active"][ids] = True
        c["quota_eff"][ids] = quota
        self.n += k
        return ids

    def reset_month(self, ids: NDArray[np.int64], quota_eff: NDArray[np.float64], day: int) -> None:
        """Start a new billing month for ``ids`` with the given effective quota."""
        c = self.cols
        for name, (_, fill) in KERNEL_STATE.items():
            c[name][ids] = fill
        c["quota_eff"][ids] = quota_eff
        c["month_start_day"][ids] = day
        self.counters[ids] = 0.0
        self.tokens_by_model[ids] = 0.0

    def view(self, name: str) -> NDArray:
        """The live part (first ``n`` rows) of a column."""
        return self.cols[name][: self.n]
