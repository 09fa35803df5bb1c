"""One replication: SimPy drives the clock, the processes, and the vectorised day steps.

SimPy processes (started in this order, so same-time events run in it):

* ``capacity``: at each calendar month start, sets each pool's GPUs and slots
  from the procurement schedule and books the month's GPU cost per hour;
* ``lifecycle``: each day, closes the billing months that end (churn,
  switching, renewal fees), then signs up the day's new subscribers;
* ``demand``: each day, draws the day's requests for all active subscribers
  (numpy) and runs them through admission and the cluster queues (the
  compiled kernel in :mod:`sim.engine.admission`), then folds the outcomes into the
  counters.

The per-request work never enters SimPy's event queue: a request costs about
0.1-0.3 us here instead of ~9 us as a SimPy process (docs/model.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy
from numpy.typing import NDArray

from sim.engine.admission import ClusterState, new_request_outputs, serve_day
from sim.engine.batching import BatchState
from sim.engine.billing import Ledger
from sim.engine.day_buffers import DayBuffers
from sim.engine.demand import DemandGenerator, Requests
from sim.engine.lifecycle import (
    close_open_months,
    initial_population,
    renew,
    sign_up,
    snapshot_active,
)
from sim.engine.metrics import Accumulators
from sim.engine.outcomes import ABANDONED, DOWNGRADED, SERVED
from sim.engine.population import Population
from sim.engine.streams import Streams
from sim.engine.windows import WindowState, no_window_rows, window_rows
from sim.units import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.world.arrays import World
from sim.world.rules import RULE_TOPUP

Progress = Callable[[int], object]
"""Called with the number of days just finished (for progress bars)."""


@dataclass
class ReplicationResult:
    """Everything one replication produced."""

    world: World
    replication: int
    seed: int
    acc: Accumulators
    ledger: pd.DataFrame
    requests: int
    subscriber_months: int
    engine_s: float
    requests_export: pd.DataFrame | None = None


class Replication:
    """A single seeded run of a world."""

    def __init__(
        self,
        world: World,
        seed: int,
        replication: int = 0,
        export_days: tuple[int, int] | None = None,
    ):
        self.w = world
        self.export_days = export_days
        self._export: list[pd.DataFrame] = []
        self.seed = seed
        self.replication = replication
        self.streams = Streams(seed, replication)
        self.env = simpy.Environment()
        n0 = int(world.seg.initial.sum())
        self.pop = Population(capacity=int(n0 * 1.3) + 64, n_models=len(world.model_names))
        self.acc = Accumulators(world)
        self.ledger = Ledger(world, world.write_ledger)
        self.demand_gen = DemandGenerator(world, self.streams)
        po = world.pool
        self.state = ClusterState(np.where(po.batched, 0, po.slots_by_month.max(axis=0)))
        self.batch = BatchState(
            po.replicas_by_month().max(axis=0),
            po.decode_replicas_by_month().max(axis=0),
            po.batch_per_replica,
            world.cls.n_prio,
            step=(
                po.step_base_s,
                po.step_prefill_s,
                po.step_request_s,
                po.step_context_s,
                po.prefill_chunk,
                po.kv_tokens,
            ),
            transfer=(po.kv_transfer_s_per_token, po.kv_transfer_latency_s),
            router=po.router,
            batched=po.batched,
            disaggregated=po.disaggregated,
        )
        self.windows = WindowState(
            world.win, self.pop.capacity, self.acc.window, world.start_weekday
        )
        self.slots = world.pool.slots_by_month[0].copy()
        self.prefill_s = 1.0 / world.pool.prefill_rate  # s per uncached input token, by pool
        self.requests = 0
        self.buffers = DayBuffers()  # the day's per-request arrays, reused from day to day

    # ---------------------------------------------------------------- processes

    def capacity(self) -> Generator[simpy.Event, None, None]:
        """Apply the procurement schedule at every calendar month start; book GPU cost."""
        w = self.w
        h = self.acc.hourly
        hours_per_month = w.days_per_month * HOURS_PER_DAY
        for month in range(w.horizon_months):
            self.slots = w.pool.slots_by_month[month].copy()
            self.batch.set_decode_replicas(w.pool.decode_replicas_by_month()[month])
            gpus = w.pool.gpus_by_month[month]
            rows = slice(month * hours_per_month, (month + 1) * hours_per_month)
            h["gpus"][rows] = gpus
            h["slots"][rows] = w.pool.all_slots_by_month()[month]
            h["gpu_cost"][rows] = gpus * w.pool.cost_per_gpu_hour
            yield self.env.timeout(hours_per_month * SECONDS_PER_HOUR)

    def lifecycle(self) -> Generator[simpy.Event, None, None]:
        """Each day: renewals first, then sign-ups; snapshots at month boundaries."""
        w = self.w
        for day in range(w.horizon_days):
            if day % w.days_per_month == 0:
                snap = snapshot_active(w, self.pop)
                m = day // w.days_per_month
                self.acc.monthly["subscribers_start"][m] = snap
                if m > 0:
                    self.acc.monthly["subscribers_end"][m - 1] = snap
            renew(w, self.pop, self.acc, self.ledger, self.streams, day)
            sign_up(w, self.pop, self.acc, self.streams, day)
            yield self.env.timeout(SECONDS_PER_DAY)

    def demand(self, progress: Progress | None) -> Generator[simpy.Event, None, None]:
        """Each day: draw requests, admit and queue them, account the outcomes."""
        for day in range(self.w.horizon_days):
            self.serve(day)
            if progress is not None:
                progress(1)
            yield self.env.timeout(SECONDS_PER_DAY)

    # ---------------------------------------------------------------- the day step

    def serve(self, day: int) -> None:
        """Run one day's requests through plans and the cluster."""
        w, pop = self.w, self.pop
        req = self.demand_gen.day(pop, day)
        n = len(req)
        if n == 0 and len(self.batch.ghosts) == 0:
            return
        self.requests += n
        pl = w.plan
        plan = pop.plan[req.sub]
        uncached = req.input - req.cached
        token_units = (
            pl.w_miss[plan] * uncached + pl.w_hit[plan] * req.cached + pl.w_out[plan] * req.output
        )
        charge = pl.model_weight[plan, req.model] * np.where(
            pl.quota_in_requests[plan], 1.0, token_units
        )
        win = w.win
        peak = self.windows.peak_weights(plan, req.t) if win.weighted else None
        if peak is not None:  # quota units counted at the hour's weight
            charge = charge * peak
        pool_req = w.pool.model_pool[req.model]
        if np.any((pl.rule == RULE_TOPUP) & ~pl.auto_buy):
            u_buy = self.streams["buy"].random(n)
        else:
            u_buy = np.ones(n)
        patience = self._patience(req, pop)
        # room for retries: a row for every retry the day's requests' clients may make
        room = int(w.seg.retry_max[pop.seg[req.sub]].sum()) if w.seg.retry_max.any() else 0
        if win.active:
            weight = pl.model_weight[plan, req.model] * (1.0 if peak is None else peak)
            u_wait = np.ones(n)  # a draw for each request of a plan whose users may wait
            if self.windows.waits:
                may_wait = self.windows.plan_waits[plan]
                u_wait[may_wait] = self.streams["window"].random(int(may_wait.sum()))
            wrows = window_rows(req.t, weight, weight * token_units, u_wait)
            wrows = {k: self.buffers.with_room(k, v, room) for k, v in wrows.items()}
            # ring entries the day may add: one per windowed request admitted, retries included
            rows_added = int((win.n[plan] > 0).sum()) + room
            self.windows.prepare(pop.plan, pop.n, rows_added, day * SECONDS_PER_DAY)
        else:
            wrows = no_window_rows()
        t, sub, pool_req, charge, uncached, output, inp, u_buy, patience = (
            self.buffers.with_room(name, x, room)
            for name, x in (
                ("t", req.t),
                ("sub", req.sub),
                ("pool_req", pool_req),
                ("charge", charge),
                ("uncached", uncached),
                ("output", req.output),
                ("input", req.input),
                ("u_buy", u_buy),
                ("patience", patience),
            )
        )
        rows = n + room
        out = new_request_outputs(rows, self.batch.active, room > 0, self.buffers)
        c = pop.cols
        st = self.state
        bs = self.batch
        ent = bs.arena(uncached, inp, output, sub)
        carry = bs.carry_buffer(len(ent))
        hand = bs.handoffs(len(ent))
        # every argument by keyword: a renamed or reordered kernel parameter fails loudly
        serve_day(
            t=t,
            sub=sub,
            pool_req=pool_req,
            charge=charge,
            uncached=uncached,
            output=output,
            u_buy=u_buy,
            patience=patience,
            n_arrivals=n,
            sub_plan=c["plan"],
            sub_seg=pop.seg,
            usage=c["usage"],
            quota_eff=c["quota_eff"],
            last_adm=c["last_adm"],
            inflight=c["inflight"],
            exhausted=c["exhausted"],
            declined=c["declined"],
            packs=c["packs"],
            rule=pl.rule,
            gap=pl.gap_s,
            deprioritise=pl.deprioritise,
            down_pool=pl.down_pool,
            conc=pl.concurrency,
            prio=pl.priority,
            pack_units=pl.pack_units,
            auto_buy=pl.auto_buy,
            buy_prob=pl.buy_prob,
            max_packs=pl.max_packs,
            retry_max=w.seg.retry_max,
            retry_backoff=w.seg.retry_backoff_s,
            retry_factor=w.seg.retry_factor,
            retry_backoff_max=w.seg.retry_backoff_max_s,
            occ_in=w.pool.occ_in,
            occ_out=w.pool.occ_out,
            prefill_s=self.prefill_s,
            slots=self.slots,
            ht=st.heap_t,
            hs=st.heap_s,
            off=st.offset,
            busy=st.busy,
            n_prio=w.cls.n_prio,
            bpp=bs.pp,
            brs=bs.rs,
            bheap=bs.heap,
            bhand=hand,
            bent=ent,
            bcarry=carry,
            bcount=bs.count,
            day_end=(day + 1) * SECONDS_PER_DAY,
            windows=self.windows.kernel_args(w.month_of(day), wrows),
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
        out["defers"], out["t0"] = wrows["defers"], wrows["t0"]
        out["charge"] = charge if peak is not None else np.zeros(1)  # read for peak weights
        if bs.active:
            bs.keep_ghosts(carry, out["outcome"], ABANDONED)
        out["decode_start"] = bs.decode_starts(ent, rows)
        if room:  # the day's requests and the retries made: accounted as requests of their own
            used = int(out["retry_rows"][0])
            self.requests += used - n
            o = out["origin"][:used]
            req = Requests(
                t=t[:used],
                sub=sub[:used],
                model=req.model[o],
                input=req.input[o],
                cached=req.cached[o],
                output=req.output[o],
            )
            out = {
                k: (v[:used] if len(v) == rows and k != "retry_rows" else v) for k, v in out.items()
            }
        self.acc.account_requests(pop, req, out, day)
        if self.export_days and self.export_days[0] <= day < sum(self.export_days):
            self._export.append(
                pd.DataFrame(
                    {
                        "timestamp_s": req.t - self.export_days[0] * SECONDS_PER_DAY,
                        "input_tokens": req.input.astype(np.int64),
                        "output_tokens": req.output.astype(np.int64),
                        "cached_tokens": req.cached.astype(np.int64),
                        "model": pd.Categorical.from_codes(req.model, w.model_names),
                        "segment": pd.Categorical.from_codes(pop.seg[req.sub], w.seg.names),
                        "subscriber": req.sub,
                        "outcome": out["outcome"],
                        "attempt": out["attempt"] if room else np.zeros(len(req), np.int64),
                        **self._latency_columns(req, out, pop),
                    }
                )
            )

    def _patience(self, req: Requests, pop: Population) -> NDArray[np.float64]:
        """Each request's patience for its first token (s): lognormal by segment, inf if none.

        Drawn on the ``patience`` stream only when some segment has a patience, so scenarios
        without one draw exactly as before.
        """
        seg = self.w.seg
        if not np.isfinite(seg.patience_median_s).any():
            return np.full(len(req), np.inf)
        g = pop.seg[req.sub]
        z = self.streams["patience"].standard_normal(len(req))
        return seg.patience_median_s[g] * np.exp(seg.patience_sigma[g] * z)

    def _latency_columns(self, req: Requests, out: dict, pop: Population) -> dict[str, Any]:
        """Exported requests' day, hour of day, pool, SLA class and latencies (s).

        Computed exactly as sim.engine.accounting.tally_day computes them for the histograms:
        slot pools: wait = start - arrival, TTFT = wait + uncached input / prefill rate, TPOT =
        the pool's decode time per token, end-to-end = TTFT + output x TPOT; batched pools: the
        replica's first- and last-token times, TPOT = (last - first) / max(output - 1, 1);
        service = the slot-seconds
        the request held (its share of a replica's batch); NaN for refused requests.
        Class ``throttled`` (index = number of classes) marks slow-lane and downgraded ones.
        """
        w = self.w
        pool = out["pool_used"]
        served = out["outcome"] <= DOWNGRADED
        in_plan_class = w.plan.sla_class[pop.plan[req.sub]]
        cls = np.where(served & (out["outcome"] != SERVED), len(w.cls.names), in_plan_class)
        safe = np.maximum(pool, 0)
        wait = np.where(served, out["start"] - req.t, np.nan)
        ttft = wait + (req.input - req.cached) / w.pool.prefill_rate[safe]
        tpot = np.where(served, w.pool.tpot_s[safe], np.nan)
        e2e = ttft + req.output * tpot
        batched = served & w.pool.batched[safe]
        if batched.any():  # measured on the replica (sim.engine.accounting.latencies)
            ttft = np.where(batched, out["first"] - req.t, ttft)
            e2e = np.where(batched, out["end"] - req.t, e2e)
            decode = np.maximum(req.output - 1.0, 1.0)
            tpot = np.where(batched, (out["end"] - out["first"]) / decode, tpot)
        hour = (req.t // SECONDS_PER_HOUR).astype(np.int64)
        return {
            "day": hour // HOURS_PER_DAY,
            "hour_of_day": hour % HOURS_PER_DAY,
            "pool": pd.Categorical.from_codes(pool, w.pool.names),
            "sla_class": pd.Categorical.from_codes(cls, [*w.cls.names, "throttled"]),
            "wait_s": wait,
            "ttft_s": ttft,
            "tpot_s": tpot,
            "e2e_s": e2e,
            "service_s": np.where(served, out["occ"], np.nan),
        }

    # ---------------------------------------------------------------- run

    def run(self, progress: Progress | None = None) -> ReplicationResult:
        """Simulate the whole horizon and return the accumulated results."""
        t0 = time.perf_counter()
        initial_population(self.w, self.pop, self.acc, self.streams)
        self.env.process(self.capacity())
        self.env.process(self.lifecycle())
        self.env.process(self.demand(progress))
        self.env.run(until=self.w.horizon_days * SECONDS_PER_DAY)
        self.acc.monthly["subscribers_end"][-1] = snapshot_active(self.w, self.pop)
        close_open_months(self.w, self.pop, self.acc, self.ledger)
        self.acc.check_finite()  # never report a run whose tables hold inf or NaN
        engine_s = time.perf_counter() - t0
        return ReplicationResult(
            world=self.w,
            replication=self.replication,
            seed=self.seed,
            acc=self.acc,
            ledger=self.ledger.frame(),
            requests=self.requests,
            subscriber_months=int(self.acc.monthly["submonths"].sum()),
            engine_s=engine_s,
            requests_export=pd.concat(self._export, ignore_index=True) if self._export else None,
        )


def run_replication(
    world: World,
    seed: int,
    replication: int = 0,
    progress: Progress | None = None,
    export_days: tuple[int, int] | None = None,
) -> ReplicationResult:
    """Run one replication of a built world.

    ``export_days`` = (first day, number of days): keep every request arriving in that window
    (times in seconds from midnight of its first day) as ``requests_export``.
    """
    return Replication(world, seed, replication, export_days).run(progress)
