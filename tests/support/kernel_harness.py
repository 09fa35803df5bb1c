"""Drive the compiled admission and queue kernel (``serve_day``) on hand-made requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim.engine.admission import ClusterState, new_request_outputs, serve_day
from sim.world.rules import NO_LIMIT, RULE_CUTOFF

BIG = NO_LIMIT


@dataclass
class PlanSpec:
    """One plan's kernel parameters (defaults: cutoff, no limits, priority 0)."""

    rule: int = RULE_CUTOFF
    gap_s: float = 0.0
    deprioritise: bool = True
    down_pool: int = -1
    concurrency: int = BIG
    priority: int = 0
    pack_units: float = 0.0
    auto_buy: bool = False
    buy_prob: float = 0.0
    max_packs: int = 0


@dataclass
class Harness:
    """A cluster of pools (slots each; occupancy = output * occ_out with occ_in = 0 by default)."""

    slots: list[int]
    plans: list[PlanSpec] = field(default_factory=lambda: [PlanSpec()])
    n_prio: int = 3
    occ_in: list[float] | None = None
    occ_out: list[float] | None = None

    def run(
        self,
        t: NDArray,
        sub: NDArray,
        sub_plan: NDArray,
        quota: NDArray,
        charge: NDArray | None = None,
        output: NDArray | None = None,
        uncached: NDArray | None = None,
        pool: NDArray | None = None,
        u_buy: NDArray | None = None,
    ) -> dict[str, NDArray]:
        """Run one batch; return the kernel outputs plus the subscriber state."""
        n = len(t)
        n_sub = len(sub_plan)
        n_pool = len(self.slots)
        output = np.ones(n) if output is None else np.asarray(output, float)
        uncached = np.zeros(n) if uncached is None else np.asarray(uncached, float)
        charge = np.ones(n) if charge is None else np.asarray(charge, float)
        pool = np.zeros(n, dtype=np.int64) if pool is None else np.asarray(pool, np.int64)
        u_buy = np.ones(n) if u_buy is None else np.asarray(u_buy, float)
        P = self.plans
        slots = np.asarray(self.slots, dtype=np.int64)
        state = ClusterState(slots)
        sub_state = {
            "usage": np.zeros(n_sub),
            "quota_eff": np.asarray(quota, float).copy(),
            "last_adm": np.full(n_sub, -np.inf),
            "inflight": np.zeros(n_sub, dtype=np.int64),
            "exhausted": np.zeros(n_sub, dtype=np.int8),
            "declined": np.zeros(n_sub, dtype=np.int8),
            "packs": np.zeros(n_sub, dtype=np.int64),
        }
        out = new_request_outputs(n)
        serve_day(
            np.asarray(t, float), np.asarray(sub, np.int64), pool, charge, uncached, output,
            u_buy, np.asarray(sub_plan, np.int64),
            sub_state["usage"], sub_state["quota_eff"], sub_state["last_adm"],
            sub_state["inflight"], sub_state["exhausted"], sub_state["declined"],
            sub_state["packs"],
            np.array([p.rule for p in P], dtype=np.int8), np.array([p.gap_s for p in P]),
            np.array([p.deprioritise for p in P]), np.array([p.down_pool for p in P]),
            np.array([p.concurrency for p in P], dtype=np.int64),
            np.array([p.priority for p in P], dtype=np.int64),
            np.array([p.pack_units for p in P]), np.array([p.auto_buy for p in P]),
            np.array([p.buy_prob for p in P]), np.array([p.max_packs for p in P], np.int64),
            np.asarray(self.occ_in or [0.0] * n_pool, float),
            np.asarray(self.occ_out or [1.0] * n_pool, float),
            slots, state.heap_t, state.heap_s, state.offset, state.busy, self.n_prio,
            out["outcome"], out["pool_used"], out["occ"], out["start"], out["over"],
            out["bought"], out["crossed"],
        )  # fmt: skip
        out.update(sub_state)
        out["wait"] = out["start"] - np.asarray(t, float)
        return out
