"""From a validated scenario to plain arrays: the model the engine runs on.

Nothing downstream of this module sees pydantic objects or the file. Plans,
segments, pools and SLA classes become integer indices and numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.scenario.assumptions import WINDOW_MAX_DEFERRALS, WINDOW_MAX_PER_PLAN
from sim.scenario.book_table import read_book_table
from sim.scenario.errors import ScenarioError
from sim.scenario.schema import (
    Bass,
    Empirical,
    LogNormal,
    Payg,
    Pool,
    Replay,
    Scenario,
    Segment,
    Serving,
    Throttle,
    Topup,
)
from sim.scenario.windows import PeakWeight, UsageWindow, WindowBehaviour
from sim.traces.readers import TraceError
from sim.traces.replay import ReplayTrace, load_replay
from sim.units import BYTES_PER_GB, SECONDS_PER_HOUR, TOKENS_PER_MTOK
from sim.world.arrays import (
    F64,
    I64,
    TOKENS_EMPIRICAL,
    TOKENS_LOGNORMAL,
    TOKENS_REPLAY,
    ChurnParams,
    Classes,
    Plans,
    Pools,
    Segments,
    World,
)
from sim.world.rules import NO_LIMIT, ROUTERS, rule_code
from sim.world.timeline import Book, Timeline, build_book, build_timeline
from sim.world.windows import (
    HOURS_PER_WEEK,
    LIMIT_RULES,
    WINDOW_KINDS,
    Windows,
)

WORKING_CARDS_TOLERANCE = 1e-9
"""Cards added before flooring the working count gpus x (1 - unavailable_share) (cards): float
error must not cost a whole card (5 x (1 - 0.8) is 0.9999999999999998, not 1)."""


def _norm_mean1(x: list[float]) -> F64:
    a = np.asarray(x, dtype=np.float64)
    return a / a.mean()


@dataclass(frozen=True)
class _TokenArrays:
    """Per-segment arrays of one token-length field."""

    mu: F64
    sigma: F64
    max: F64
    kind: I64
    p: F64
    q: F64
    n: I64
    mean: F64


def _token_arrays(
    segs: list[Segment], which: str, traces: list[ReplayTrace | None]
) -> _TokenArrays:
    """Per-segment arrays of one token-length field (``input_tokens`` or ``output_tokens``)."""
    n = len(segs)
    width = max(
        [2] + [len(d.quantiles) for g in segs if isinstance(d := getattr(g, which), Empirical)]
    )
    mu, sigma, cap, mean = np.zeros(n), np.zeros(n), np.full(n, np.inf), np.zeros(n)
    kind = np.zeros(n, dtype=np.int64)
    tp, tq = np.ones((n, width)), np.zeros((n, width))
    tn = np.zeros(n, dtype=np.int64)
    for k, g in enumerate(segs):
        d = getattr(g, which)
        tr = traces[k]
        if tr is not None:
            kind[k] = TOKENS_REPLAY
            mean[k] = float((tr.input if which == "input_tokens" else tr.output).mean())
            continue
        assert d is not None  # the schema requires it without replay
        cap[k] = d.max or np.inf
        if isinstance(d, LogNormal):
            mu[k] = np.log(d.median)
            sigma[k] = d.sigma
        else:
            kind[k] = TOKENS_EMPIRICAL
            m = len(d.quantiles)
            tp[k, :m] = d.cumulative()
            tq[k, :m] = d.quantiles
            tq[k, m:] = d.quantiles[-1]
            tn[k] = m
            mean[k] = d.mean()
    # lognormal means as one array operation, as before empirical tables existed
    mean = np.where(kind == TOKENS_LOGNORMAL, np.exp(mu + sigma**2 / 2), mean)
    return _TokenArrays(mu, sigma, cap, kind, tp, tq, tn, mean)


def _replay(segment: int, r: Replay) -> ReplayTrace:
    """Segment ``segment``'s replayed trace; a ScenarioError naming the field if unreadable."""
    try:
        return load_replay(r.path(), r.format, r.shift_s)
    except TraceError as e:
        raise ScenarioError([(f"segments[{segment}].replay.file", str(e))]) from None


def _capacity_by_month(
    p: Pool, sv: Serving, months: int, decode: bool = False
) -> tuple[list[int], list[int]]:
    """GPUs paid for and working batch slots of one pool in each month.

    The procurement schedule applies from each step's month on. The share of cards down is
    still paid for but has no slots, and only whole replicas of working cards serve.
    ``decode``: the decode cards of a disaggregated pool (zeros for any other pool).
    """
    g, b = sv.gpus_per_replica, sv.batch_slots_per_replica
    if decode:
        d = p.disaggregated
        if d is None:
            return [0] * months, [0] * months
        changes, level = {c.month: c.gpus for c in d.decode_schedule}, d.decode_gpus
    else:
        changes, level = {c.month: c.gpus for c in p.schedule}, p.gpus
    gpus, slots = [], []
    for mo in range(months):
        level = changes.get(mo, level)
        gpus.append(level)
        working = int(np.floor(level * (1.0 - p.unavailable_share) + WORKING_CARDS_TOLERANCE))
        slots.append((working // g) * b)
    return gpus, slots


def _pools(s: Scenario, m_idx: dict[str, int]) -> Pools:
    """Each pool's per-slot serving constants, GPU price, capacity by month and model prices.

    A slot is one continuous-batching lane of a replica: a request holds it for
    ``uncached_input * occ_in + output * occ_out`` seconds, so a replica with every slot busy
    runs at its catalog prefill and decode throughput (the admission kernel's queue model).
    """
    pools = s.cluster.pools
    gpu_cost = {g.name: g.cost_per_hour for g in s.catalog.gpus}
    model_pool = np.full(len(s.catalog.models), -1, dtype=np.int64)
    occ_in, occ_out, prefill, tpot, cost = [], [], [], [], []
    batch: list[int] = []
    steps: list[tuple[float, float, float, float, float]] = []
    months = s.horizon_months
    gpus = np.zeros((months, len(pools)), dtype=np.int64)
    slots = np.zeros((months, len(pools)), dtype=np.int64)
    decode_gpus = np.zeros((months, len(pools)), dtype=np.int64)
    decode_slots = np.zeros((months, len(pools)), dtype=np.int64)
    xfer: list[tuple[float, float]] = []
    for j, p in enumerate(pools):
        model_pool[m_idx[p.model]] = j
        llm = s.catalog.models[m_idx[p.model]]
        sv = next(v for v in llm.serving if v.gpu == p.gpu)
        g, b = sv.gpus_per_replica, sv.batch_slots_per_replica
        batch.append(b)
        replica_prefill = sv.prefill_tokens_per_s_per_gpu * g
        replica_decode = sv.decode_tokens_per_s_per_gpu * g
        occ_in.append(b / replica_prefill)
        occ_out.append(b / replica_decode)
        prefill.append(replica_prefill)
        tpot.append(b / replica_decode)
        cost.append(gpu_cost[p.gpu])
        st = sv.step_time
        if p.serving == "batched" and st is not None:
            steps.append(
                (
                    st.base_s,
                    st.per_request_s,
                    st.per_context_token_s,
                    st.prefill_chunk_tokens,
                    st.kv_cache_tokens_per_replica,
                )
            )
        else:
            steps.append((0.0, 0.0, 0.0, 0.0, 0.0))
        gpus[:, j], slots[:, j] = _capacity_by_month(p, sv, months)
        decode_gpus[:, j], decode_slots[:, j] = _capacity_by_month(p, sv, months, decode=True)
        d = p.disaggregated
        xfer.append((0.0, 0.0) if d is None else (
            d.kv_bytes_per_token / (d.link_gbytes_per_s * BYTES_PER_GB), d.link_latency_s
        ))  # fmt: skip
    return Pools(
        names=[p.name for p in pools],
        model_names=[p.model for p in pools],
        model_pool=model_pool,
        pool_model=np.array([m_idx[p.model] for p in pools], dtype=np.int64),
        occ_in=np.array(occ_in),
        occ_out=np.array(occ_out),
        prefill_rate=np.array(prefill),
        tpot_s=np.array(tpot),
        cost_per_gpu_hour=np.array(cost),
        gpus_by_month=gpus + decode_gpus,
        slots_by_month=slots,
        price_miss=np.array([m.price_input_miss_per_mtok for m in s.catalog.models]),
        price_hit=np.array([m.price_input_hit_per_mtok for m in s.catalog.models]),
        price_out=np.array([m.price_output_per_mtok for m in s.catalog.models]),
        batched=np.array([p.serving == "batched" for p in pools], dtype=np.bool_),
        batch_per_replica=np.array(batch, dtype=np.int64),
        step_base_s=np.array([x[0] for x in steps]),
        step_prefill_s=1.0 / np.array(prefill),
        step_request_s=np.array([x[1] for x in steps]),
        step_context_s=np.array([x[2] for x in steps]),
        prefill_chunk=np.array([x[3] for x in steps], dtype=np.float64),
        kv_tokens=np.array([x[4] for x in steps], dtype=np.float64),
        router=np.array([ROUTERS[p.router] for p in pools], dtype=np.int8),
        disaggregated=np.array([p.disaggregated is not None for p in pools], dtype=np.bool_),
        decode_slots_by_month=decode_slots,
        kv_transfer_s_per_token=np.array([x[0] for x in xfer]),
        kv_transfer_latency_s=np.array([x[1] for x in xfer]),
    )


def _class_ranks(s: Scenario) -> dict[str, int]:
    """Queue rank of each SLA class: its priority made dense (0 first, equal priorities tie).

    Dense ranks keep the kernel's per-priority queues few; the throttled lane ranks after them.
    """
    distinct = sorted({c.priority for c in s.cluster.sla_classes})
    return {c.name: distinct.index(c.priority) for c in s.cluster.sla_classes}


def _classes(s: Scenario) -> Classes:
    """SLA classes' SLO targets (inf where unset, so a missing target never fails).

    ``n_prio`` counts the distinct priorities plus one for the throttled lane, which ranks last.
    """
    classes = s.cluster.sla_classes
    inf = np.inf
    return Classes(
        names=[c.name for c in classes],
        ttft_s=np.array([c.slo.ttft_s if c.slo.ttft_s is not None else inf for c in classes]),
        tpot_s=np.array([c.slo.tpot_s if c.slo.tpot_s is not None else inf for c in classes]),
        wait_s=np.array([c.slo.wait_s if c.slo.wait_s is not None else inf for c in classes]),
        n_prio=len({c.priority for c in classes}) + 1,
    )


def _plan_models(s: Scenario, m_idx: dict[str, int]) -> tuple[F64, F64]:
    """Each plan's quota weight per model and whether it lists the model, both [P, M].

    Plans count a request against the quota at the model's weight; a listed model of weight 0
    is free of quota, while an unlisted one is not offered (segments' model choice needs both).
    """
    n_p, n_m = len(s.plans), len(s.catalog.models)
    weight = np.zeros((n_p, n_m))
    listed = np.zeros((n_p, n_m))  # 1 where the plan lists the model
    for i, plan in enumerate(s.plans):
        for mname, wt in plan.models.items():
            weight[i, m_idx[mname]] = wt
            listed[i, m_idx[mname]] = 1.0
    return weight, listed


def _exhaustion(s: Scenario, m_idx: dict[str, int], model_pool: I64) -> dict[str, NDArray[Any]]:
    """Each plan's exhaustion rule as a code plus the parameters of that rule, by Plans field.

    The kernel switches on the rule code, so every plan carries every rule's columns (zeros
    where a rule is unused); a throttle's downgrade model becomes the pool that serves it.
    """
    n_p = len(s.plans)
    rule = np.zeros(n_p, dtype=np.int8)
    gap = np.zeros(n_p)
    depri = np.zeros(n_p, dtype=bool)
    down_pool = np.full(n_p, -1, dtype=np.int64)
    payg_price = np.zeros(n_p)
    payg_block = np.ones(n_p)
    pack_units = np.zeros(n_p)
    pack_price = np.zeros(n_p)
    auto_buy = np.zeros(n_p, dtype=bool)
    buy_prob = np.zeros(n_p)
    max_packs = np.zeros(n_p, dtype=np.int64)
    for i, plan in enumerate(s.plans):
        ex = plan.on_exhaustion
        rule[i] = rule_code(ex.rule, getattr(ex, "mode", None))
        if isinstance(ex, Throttle):
            gap[i] = ex.min_gap_s
            depri[i] = ex.deprioritise
            if ex.downgrade_model:
                down_pool[i] = model_pool[m_idx[ex.downgrade_model]]
        elif isinstance(ex, Payg):
            payg_price[i] = ex.price_per_munit / TOKENS_PER_MTOK
            payg_block[i] = ex.block_units
        elif isinstance(ex, Topup):
            pack_units[i] = ex.pack_units
            pack_price[i] = ex.pack_price
            auto_buy[i] = ex.purchase == "auto"
            buy_prob[i] = ex.manual_buy_probability
            max_packs[i] = ex.max_packs_per_month
    return {
        "rule": rule,
        "gap_s": gap,
        "deprioritise": depri,
        "down_pool": down_pool,
        "payg_price_per_unit": payg_price,
        "payg_block_units": payg_block,
        "pack_units": pack_units,
        "pack_price": pack_price,
        "auto_buy": auto_buy,
        "buy_prob": buy_prob,
        "max_packs": max_packs,
    }


def _plans(s: Scenario, m_idx: dict[str, int], model_pool: I64, weight: F64) -> Plans:
    """Each plan's fee, quota, exhaustion rule, rollover, concurrency, queue rank and weights.

    ``weight`` is the plan's quota weight per model (from :func:`_plan_models`); a plan without
    a concurrency limit gets ``NO_LIMIT``.
    """
    rank = _class_ranks(s)
    cls_idx = {c.name: i for i, c in enumerate(s.cluster.sla_classes)}
    return Plans(
        names=[p.name for p in s.plans],
        channels=[p.channel for p in s.plans],
        fee=np.array([p.price_per_month for p in s.plans]),
        quota_in_requests=np.array([p.quota.unit == "requests" for p in s.plans]),
        quota=np.array([p.quota.amount for p in s.plans]),
        **_exhaustion(s, m_idx, model_pool),
        rollover_share=np.array([p.rollover.share for p in s.plans]),
        rollover_cap=np.array([p.rollover.cap_units for p in s.plans]),
        concurrency=np.array(
            [p.concurrency_limit if p.concurrency_limit else NO_LIMIT for p in s.plans],
            dtype=np.int64,
        ),
        priority=np.array([rank[p.sla_class] for p in s.plans], dtype=np.int64),
        sla_class=np.array([cls_idx[p.sla_class] for p in s.plans], dtype=np.int64),
        model_weight=weight,
        w_miss=np.array([p.token_class_weights.input_miss for p in s.plans]),
        w_hit=np.array([p.token_class_weights.input_hit for p in s.plans]),
        w_out=np.array([p.token_class_weights.output for p in s.plans]),
    )


def _segment_plans(
    s: Scenario, m_idx: dict[str, int], plans: Plans, listed: F64
) -> tuple[NDArray[np.bool_], F64, list[list[int]]]:
    """Which plans each segment may take, its model choice under each, and its plan ladder.

    Returns ``eligible`` [S, P]; ``model_cum`` [S, P, M], the cumulative model-choice
    probabilities: the segment's preferences restricted to the models the plan lists (last
    entry forced to 1 against rounding); and per segment the eligible plans ordered by fee,
    then quota, the ladder that renewals upgrade and downgrade along.
    """
    segs = s.segments
    plan_idx = {p.name: i for i, p in enumerate(s.plans)}
    n_s, n_p, n_m = len(segs), len(s.plans), len(s.catalog.models)
    eligible = np.zeros((n_s, n_p), dtype=bool)
    model_cum = np.zeros((n_s, n_p, n_m))
    ladder: list[list[int]] = []
    for k, segment in enumerate(segs):
        pref = np.zeros(n_m)
        for mname, wt in segment.model_preference.items():
            pref[m_idx[mname]] = wt
        for pn in segment.plans:
            i = plan_idx[pn]
            eligible[k, i] = True
            allowed = pref * listed[i]
            model_cum[k, i] = np.cumsum(allowed / allowed.sum())
            model_cum[k, i, -1] = 1.0
        ladder.append(
            sorted(
                (plan_idx[pn] for pn in segment.plans),
                key=lambda i: (plans.fee[i], plans.quota[i]),
            )
        )
    return eligible, model_cum, ladder


def _segments(
    s: Scenario, m_idx: dict[str, int], plans: Plans, listed: F64, initial: I64
) -> Segments:
    """Each segment's demand, token lengths, engagement, value, churn intercept and acquisition.

    Replayed segments load their trace here (a ScenarioError names an unreadable file) and
    take token lengths and request rates from it; the others get lognormal or empirical
    token-length arrays. Sessions per day count every member of a subscription.
    """
    segs = s.segments
    eligible, model_cum, ladder = _segment_plans(s, m_idx, plans, listed)
    traces = [_replay(k, g.replay) if g.replay else None for k, g in enumerate(segs)]
    tin = _token_arrays(segs, "input_tokens", traces)
    tout = _token_arrays(segs, "output_tokens", traces)

    def arr(f: Callable[[Segment], float]) -> F64:
        """One float per segment: ``f`` of each."""
        return np.array([f(g) for g in segs], dtype=np.float64)

    return Segments(
        names=[g.name for g in segs],
        kinds=[g.kind for g in segs],
        sessions_per_day=arr(lambda g: (g.sessions_per_day or 0.0) * g.members),
        requests_per_session=arr(lambda g: g.requests_per_session),
        think_time_s=arr(lambda g: g.think_time_s),
        think_time_cv=arr(lambda g: g.think_time_cv),
        activity_sigma=arr(lambda g: g.activity_sigma),
        activity_timescale_s=arr(lambda g: g.activity_timescale_s),
        arrival_cv=arr(lambda g: g.arrival_cv),
        hour_weight=np.array([_norm_mean1(g.hour_profile or [1.0] * 24) for g in segs]),
        weekday_weight=np.array([_norm_mean1(g.weekday_profile) for g in segs]),
        in_mu=tin.mu,
        in_sigma=tin.sigma,
        in_max=tin.max,
        out_mu=tout.mu,
        out_sigma=tout.sigma,
        out_max=tout.max,
        in_kind=tin.kind,
        out_kind=tout.kind,
        in_table_p=tin.p,
        in_table_q=tin.q,
        in_table_n=tin.n,
        out_table_p=tout.p,
        out_table_q=tout.q,
        out_table_n=tout.n,
        in_mean=tin.mean,
        out_mean=tout.mean,
        replay=traces,
        replay_requests_per_day=np.array(
            [
                tr.requests_per_day / max(int(n0), 1) if tr is not None else 0.0
                for tr, n0 in zip(traces, initial, strict=True)
            ]
        ),
        cache_hit=arr(lambda g: g.cache_hit_share),
        intensity_shape=arr(lambda g: g.intensity_shape),
        eng_start=arr(lambda g: g.engagement.start),
        eng_target=arr(lambda g: g.engagement.target),
        eng_tau_months=arr(lambda g: g.engagement.tau_months),
        eng_volatility=arr(lambda g: g.engagement.volatility),
        patience_median_s=arr(lambda g: g.patience.median_s if g.patience else np.inf),
        patience_sigma=arr(lambda g: g.patience.sigma if g.patience else 0.0),
        retry_max=np.array([g.retry.max_retries if g.retry else 0 for g in segs], dtype=np.int64),
        retry_backoff_s=arr(lambda g: g.retry.backoff_s if g.retry else 0.0),
        retry_factor=arr(lambda g: g.retry.backoff_factor if g.retry else 1.0),
        retry_backoff_max_s=arr(lambda g: g.retry.backoff_max_s if g.retry else 0.0),
        value_per_mtok=arr(lambda g: g.value_per_mtok),
        churn_intercept=arr(lambda g: g.churn_intercept),
        initial=initial,
        acq_bass=np.array([isinstance(g.acquisition, Bass) for g in segs]),
        acq_per_month=arr(lambda g: getattr(g.acquisition, "per_month", 0.0)),
        acq_market=arr(lambda g: getattr(g.acquisition, "market_size", 0.0)),
        acq_p=arr(lambda g: getattr(g.acquisition, "p", 0.0)),
        acq_q=arr(lambda g: getattr(g.acquisition, "q", 0.0)),
        eligible=eligible,
        model_cum=model_cum,
        ladder=ladder,
    )


def _churn(s: Scenario) -> ChurnParams:
    """The scenario's renewal and switching parameters as a typed, frozen record.

    Its fields are the schema's ``churn`` fields one for one, so a parameter added to the
    schema but not to :class:`ChurnParams` fails here, at build, and the engine reads them by
    attribute (type-checked) instead of as dictionary keys.
    """
    return ChurnParams(**s.churn.model_dump())


def build(s: Scenario) -> World:
    """Turn a validated scenario into the engine's plain arrays.

    The parts run in dependency order: pools first (a throttle's downgrade model maps to its
    pool), then SLA classes, plans (queue ranks, model weights) and segments (plan ladders by
    fee and quota, model choice among the models each plan lists).
    """
    model_names = [m.name for m in s.catalog.models]
    m_idx = {n: i for i, n in enumerate(model_names)}
    pools = _pools(s, m_idx)
    classes = _classes(s)
    weight, listed = _plan_models(s, m_idx)
    plans = _plans(s, m_idx, pools.model_pool, weight)
    book = _book(s)
    initial = (
        np.bincount(book.seg, minlength=len(s.segments)).astype(np.int64)
        if book is not None
        else np.array([g.initial_subscribers for g in s.segments], dtype=np.int64)
    )
    segments = _segments(s, m_idx, plans, listed, initial)
    return World(
        name=s.name,
        currency=s.currency,
        horizon_months=s.horizon_months,
        days_per_month=s.days_per_month,
        start_weekday=s.start_weekday,
        seg=segments,
        plan=plans,
        pool=pools,
        cls=classes,
        churn=_churn(s),
        write_ledger=s.outputs.ledger,
        write_plots=s.outputs.plots,
        model_names=model_names,
        timeline=_timeline(s, plans, segments),
        book=book,
        win=build_windows(s),
    )


def _timeline(s: Scenario, plans: Plans, segments: Segments) -> Timeline:
    """Plan terms by month from the events; a cycle of retirements is a scenario error."""
    try:
        return build_timeline(
            [e.model_dump() for e in s.events],
            plans.names,
            plans.fee,
            plans.quota,
            segments.names,
            np.array([g.reference_price or np.nan for g in s.segments], dtype=np.float64),
            s.horizon_months,
            s.days_per_month,
        )
    except ValueError as e:
        raise ScenarioError([("events", str(e))]) from None


def _book(s: Scenario) -> Book | None:
    """The book at t=0 as one row per subscriber (None: initial subscribers choose by logit)."""
    b = s.book
    if b is None:
        return None
    table = read_book_table(Path(b.file)) if b.file is not None else None
    return build_book(
        [e.model_dump() for e in b.entries],
        table,
        b.rechoose,
        [p.name for p in s.plans],
        [g.name for g in s.segments],
    )


def build_windows(s: Scenario) -> Windows:
    """The plans' windows and peak schedules, and the segments' behaviour at a full window.

    The engine arrays are :class:`sim.world.windows.Windows`.
    """
    return make_windows(
        [plan.windows for plan in s.plans],
        [plan.peak_weights for plan in s.plans],
        [g.at_window_limit for g in s.segments],
    )


def make_windows(
    windows: list[list[UsageWindow]],
    peaks: list[list[PeakWeight]],
    behaviours: list[WindowBehaviour],
) -> Windows:
    """Engine arrays from each plan's windows and peak rules and each segment's behaviour."""
    n_p, k_max = len(windows), WINDOW_MAX_PER_PLAN
    f = np.zeros((n_p, k_max))
    kind = np.zeros((n_p, k_max), dtype=np.int64)
    rule = np.zeros((n_p, k_max), dtype=np.int64)
    in_tokens = np.zeros((n_p, k_max), dtype=bool)
    length, allowance, gap = f.copy(), f.copy(), f.copy()
    ring = np.full((n_p, k_max), -1, dtype=np.int64)
    peak = np.ones((n_p, HOURS_PER_WEEK))
    n_ring = 0
    for p, plan_windows in enumerate(windows):
        for k, w in enumerate(plan_windows):
            kind[p, k] = WINDOW_KINDS[w.kind]
            rule[p, k] = LIMIT_RULES[w.on_limit]
            in_tokens[p, k] = w.unit == "tokens"
            length[p, k] = w.hours * SECONDS_PER_HOUR
            allowance[p, k] = w.allowance
            gap[p, k] = w.min_gap_s
            if w.kind == "rolling":
                ring[p, k] = n_ring
                n_ring += 1
        for rule_ in peaks[p]:
            peak[p, rule_.hours_of_week()] = rule_.weight
    return Windows(
        names=[[w.name for w in plan_windows] for plan_windows in windows],
        n=np.array([len(plan_windows) for plan_windows in windows], dtype=np.int64),
        kind=kind,
        length_s=length,
        allowance=allowance,
        in_tokens=in_tokens,
        rule=rule,
        gap_s=gap,
        ring=ring,
        peak=peak,
        wait_share=np.array([b.wait_share for b in behaviours]),
        max_wait_s=np.array([b.max_wait_hours * SECONDS_PER_HOUR for b in behaviours]),
        max_deferrals=WINDOW_MAX_DEFERRALS,
    )
