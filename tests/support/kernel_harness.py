"""Drive the compiled admission and queue kernel (``serve_day``) on hand-made requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim.engine.admission import ClusterState, new_request_outputs, serve_day
from sim.engine.batching import BatchState
from sim.engine.outcomes import ABANDONED
from sim.engine.windows import WindowState, no_window_rows, window_rows
from sim.scenario.windows import PeakWeight, UsageWindow, WindowBehaviour
from sim.units import SECONDS_PER_DAY
from sim.world.build import make_windows
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
    decode_replicas: int | None = None  # a number: prefill and decode on separate replicas
    transfer_s_per_token: float = 0.0  # KV transfer, prefill -> decode (s per input token)
    transfer_latency_s: float = 0.0  # fixed time of a KV transfer (s)


@dataclass
class RetrySpec:
    """Every subscriber's client retry policy (sim.scenario.schema.Retry), one segment."""

    max_retries: int = 2
    backoff_s: float = 0.5
    factor: float = 2.0
    backoff_max_s: float = 8.0


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
    retry: RetrySpec | None = None  # clients retry failed requests (rows for them are added)
    windows: list[list[UsageWindow]] | None = None  # each plan's usage windows
    peaks: list[list[PeakWeight]] | None = None  # each plan's peak weights
    at_limit: WindowBehaviour = field(default_factory=lambda: WindowBehaviour(wait_share=1.0))
    _batch: BatchState | None = field(default=None, init=False, repr=False)
    _win: WindowState | None = field(default=None, init=False, repr=False)

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
        window_charge: NDArray | None = None,
    ) -> dict[str, NDArray]:
        """Run one batch; return the kernel outputs plus the subscriber state.

        With batched pools, one day is simulated (arrival times within day ``day``), drained at
        its end; the requests it carries into the next day are returned as ``ghosts``, and a
        following call with ``day`` + 1 starts from them (its own subscribers' state is fresh).
        Usage windows keep their state from call to call (a fresh Harness starts them empty);
        ``window_charge`` is each request's charge in a window counting requests (default 1;
        a window counting tokens counts ``charge``). Peak weights are applied to ``charge``
        here as the replication does.
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
            disagg = np.array([b is not None and b.decode_replicas is not None for b in specs])
            self._batch = BatchState(
                np.where(is_b, slots // max_b, 0),
                np.array([(b.decode_replicas or 0) if b else 0 for b in specs], dtype=np.int64),
                max_b,
                self.n_prio,
                step=tuple(
                    np.array([getattr(b, f) if b else 0.0 for b in specs], dtype=np.float64)
                    for f in ("base_s", "prefill_s", "request_s", "context_s", "chunk", "kv_tokens")
                ),
                transfer=tuple(
                    np.array([getattr(b, f) if b else 0.0 for b in specs], dtype=np.float64)
                    for f in ("transfer_s_per_token", "transfer_latency_s")
                ),  # type: ignore[arg-type]
                router=np.array([ROUTERS[b.router] if b else 0 for b in specs], dtype=np.int8),
                batched=is_b,
                disaggregated=disagg,
            )
        bstate = self._batch
        inp = uncached if input_tokens is None else np.asarray(input_tokens, float)
        ent = bstate.arena(uncached, inp, output, np.asarray(sub, np.int64))
        carry = bstate.carry_buffer(len(ent))
        hand = bstate.handoffs(len(ent))
        sub_state = {
            "usage": np.zeros(n_sub),
            "quota_eff": np.asarray(quota, float).copy(),
            "last_adm": np.full(n_sub, -np.inf),
            "inflight": np.zeros(n_sub, dtype=np.int64),
            "exhausted": np.zeros(n_sub, dtype=np.int8),
            "declined": np.zeros(n_sub, dtype=np.int8),
            "packs": np.zeros(n_sub, dtype=np.int64),
        }
        r = self.retry
        room = n * r.max_retries if r else 0
        if self.windows is not None or self.peaks is not None:
            win = make_windows(
                self.windows or [[] for _ in P],
                self.peaks or [[] for _ in P],
                [self.at_limit],
            )
            if self._win is None:
                self._win = WindowState(
                    win, n_sub, np.zeros((day + 1, 3, len(P), 1, win.kind.shape[1])), 0
                )
            ws = self._win
            plan_of = np.asarray(sub_plan, np.int64)[np.asarray(sub, np.int64)]
            peak = ws.peak_weights(plan_of, np.asarray(t, float))
            wreq = np.ones(n) if window_charge is None else np.asarray(window_charge, float)
            charge = charge * peak
            wrows = window_rows(np.asarray(t, float), wreq * peak, charge.copy(), np.zeros(n))
        else:
            ws = WindowState(make_windows([[] for _ in P], [[] for _ in P], [self.at_limit]), 1,
                             np.zeros((1, 3, len(P), 1, 3)), 0)  # fmt: skip
            wrows = no_window_rows()

        def roomy(x, dtype=float):
            x = np.asarray(x, dtype)
            return np.concatenate((x, np.zeros(room, dtype))) if room else x.copy()

        t_all, sub_all, inp_all = roomy(t), roomy(sub, np.int64), roomy(inp)
        pool, charge, uncached, output = (
            roomy(pool, np.int64),
            roomy(charge),
            roomy(uncached),
            roomy(output),
        )
        u_buy, patience = roomy(u_buy), roomy(patience)
        if ws.active:
            wrows = {k: roomy(v, v.dtype) for k, v in wrows.items()}
            ws.prepare(np.asarray(sub_plan, np.int64), n_sub, n + room, day * SECONDS_PER_DAY)
        if room:  # the arena holds the retries' rows too
            ent = bstate.arena(uncached, inp_all, output, sub_all)
            carry = bstate.carry_buffer(len(ent))
            hand = bstate.handoffs(len(ent))
        out = new_request_outputs(n + room)
        serve_day(
            t=t_all,
            sub=sub_all,
            pool_req=pool,
            charge=charge,
            uncached=uncached,
            output=output,
            u_buy=u_buy,
            patience=patience,
            n_arrivals=n,
            sub_plan=np.asarray(sub_plan, np.int64),
            sub_seg=np.zeros(n_sub, np.int64),
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
            retry_max=np.array([r.max_retries if r else 0], np.int64),
            retry_backoff=np.array([r.backoff_s if r else 0.0]),
            retry_factor=np.array([r.factor if r else 1.0]),
            retry_backoff_max=np.array([r.backoff_max_s if r else 0.0]),
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
            bhand=hand,
            bent=ent,
            bcarry=carry,
            bcount=bstate.count,
            day_end=float((day + 1) * SECONDS_PER_DAY),
            windows=ws.kernel_args(day, wrows),
            outcome=out["outcome"],
            pool_used=out["pool_used"],
            occ=out["occ"],
            start=out["start"],
            first=out["first"],
            end=out["end"],
            over=out["over"],
            bought=out["bought"],
            crossed=out["crossed"],
            attempt=out["attempt"],
            origin=out["origin"],
            retry_rows=out["retry_rows"],
        )
        out.update(sub_state)
        out["window_used"] = ws.used
        out["window_acc"] = ws.acc
        if ws.active:
            out["defers"], out["t0"] = wrows["defers"], wrows["t0"]
        if bstate.active:
            bstate.keep_ghosts(carry, out["outcome"], ABANDONED)
            out["ghosts"] = bstate.ghosts
        out["decode_start"] = bstate.decode_starts(ent, n + room)
        out["t"] = t_all
        out["sub"] = sub_all
        if room:  # the requests and the retries made, in row order
            used = int(out["retry_rows"][0])
            out = {
                k: (v[:used] if k != "retry_rows" and len(v) == n + room else v)
                for k, v in out.items()
            }
        out["wait"] = out["start"] - out["t"]
        return out
