"""Drive the compiled admission and queue kernel (``serve_day``) on hand-made requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim.engine.admission import ClusterState, new_request_outputs, serve_day
from sim.engine.batching import BatchState
from sim.engine.outcomes import ABANDONED
from sim.units import SECONDS_PER_DAY
from sim.world.rules import NO_LIMIT, ROUTERS, RULE_CUTOFF

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
class BatchSpec:
    """A batched pool's replica (sim.engine.batching): step-time coefficients, KV, router."""

    base_s: float = 0.02
    prefill_s: float = 0.0  # step time per prefill token (s)
    request_s: float = 0.0
    context_s: float = 0.0
    chunk: float = 2048.0
    kv_tokens: float = 1e12
    max_batch: int = 64
    router: str = "least_loaded"


@dataclass
class Harness:
    """A cluster of pools (slots each; occupancy = output * occ_out with occ_in = 0 by default)."""

    slots: list[int]
    plans: list[PlanSpec] = field(default_factory=lambda: [PlanSpec()])
    n_prio: int = 3
    occ_in: list[float] | None = None
    occ_out: list[float] | None = None
    prefill_s: list[float] | None = None  # s per uncached token by pool (default 0)
    batch: list[BatchSpec | None] | None = None  # batched pools (slots = replicas x max_batch)
    _batch: BatchState | None = field(default=None, init=False, repr=False)

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
        patience: NDArray | None = None,
        input_tokens: NDArray | None = None,
        day: int = 0,
    ) -> dict[str, NDArray]:
        """Run one batch; return the kernel outputs plus the subscriber state.

        With batched pools, one day is simulated (arrival times within day ``day``), drained at
        its end; the requests it carries into the next day are returned as ``ghosts``, and a
        following call with ``day`` + 1 starts from them (its own subscribers' state is fresh).
        """
        n = len(t)
        n_sub = len(sub_plan)
        n_pool = len(self.slots)
        output = np.ones(n) if output is None else np.asarray(output, float)
        uncached = np.zeros(n) if uncached is None else np.asarray(uncached, float)
        charge = np.ones(n) if charge is None else np.asarray(charge, float)
        pool = np.zeros(n, dtype=np.int64) if pool is None else np.asarray(pool, np.int64)
        u_buy = np.ones(n) if u_buy is None else np.asarray(u_buy, float)
        patience = np.full(n, np.inf) if patience is None else np.asarray(patience, float)
        P = self.plans
        slots = np.asarray(self.slots, dtype=np.int64)
        specs = self.batch or [None] * n_pool
        is_b = np.array([b is not None for b in specs])
        max_b = np.array([b.max_batch if b else 1 for b in specs], dtype=np.int64)
        state = ClusterState(np.where(is_b, 0, slots))
        if day == 0 or self._batch is None:
            self._batch = BatchState(
                np.where(is_b, slots // max_b, 0),
                max_b,
                self.n_prio,
                step=tuple(
                    np.array([getattr(b, f) if b else 0.0 for b in specs], dtype=np.float64)
                    for f in ("base_s", "prefill_s", "request_s", "context_s", "chunk", "kv_tokens")
                ),
                router=np.array([ROUTERS[b.router] if b else 0 for b in specs], dtype=np.int8),
                batched=is_b,
            )
        bstate = self._batch
        inp = uncached if input_tokens is None else np.asarray(input_tokens, float)
        ent = bstate.arena(uncached, inp, output, np.asarray(sub, np.int64))
        carry = bstate.carry_buffer(len(ent))
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
            t=np.asarray(t, float),
            sub=np.asarray(sub, np.int64),
            pool_req=pool,
            charge=charge,
            uncached=uncached,
            output=output,
            u_buy=u_buy,
            patience=patience,
            sub_plan=np.asarray(sub_plan, np.int64),
            usage=sub_state["usage"],
            quota_eff=sub_state["quota_eff"],
            last_adm=sub_state["last_adm"],
            inflight=sub_state["inflight"],
            exhausted=sub_state["exhausted"],
            declined=sub_state["declined"],
            packs=sub_state["packs"],
            rule=np.array([p.rule for p in P], dtype=np.int8),
            gap=np.array([p.gap_s for p in P]),
            deprioritise=np.array([p.deprioritise for p in P]),
            down_pool=np.array([p.down_pool for p in P]),
            conc=np.array([p.concurrency for p in P], dtype=np.int64),
            prio=np.array([p.priority for p in P], dtype=np.int64),
            pack_units=np.array([p.pack_units for p in P]),
            auto_buy=np.array([p.auto_buy for p in P]),
            buy_prob=np.array([p.buy_prob for p in P]),
            max_packs=np.array([p.max_packs for p in P], np.int64),
            occ_in=np.asarray(self.occ_in or [0.0] * n_pool, float),
            occ_out=np.asarray(self.occ_out or [1.0] * n_pool, float),
            prefill_s=np.asarray(self.prefill_s or [0.0] * n_pool, float),
            slots=slots,
            ht=state.heap_t,
            hs=state.heap_s,
            off=state.offset,
            busy=state.busy,
            n_prio=self.n_prio,
            bpp=bstate.pp,
            brs=bstate.rs,
            bheap=bstate.heap,
            bent=ent,
            bcarry=carry,
            bcount=bstate.count,
            day_end=float((day + 1) * SECONDS_PER_DAY),
            outcome=out["outcome"],
            pool_used=out["pool_used"],
            occ=out["occ"],
            start=out["start"],
            first=out["first"],
            end=out["end"],
            over=out["over"],
            bought=out["bought"],
            crossed=out["crossed"],
        )
        out.update(sub_state)
        if bstate.active:
            bstate.keep_ghosts(carry, out["outcome"], ABANDONED)
            out["ghosts"] = bstate.ghosts
        out["wait"] = out["start"] - np.asarray(t, float)
        return out
