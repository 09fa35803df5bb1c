"""From a validated scenario to plain arrays: the model the engine runs on.

Nothing downstream of this module sees pydantic objects or the file. Plans,
segments, pools and SLA classes become integer indices and numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.scenario.errors import ScenarioError
from sim.scenario.schema import (
    Bass,
    Empirical,
    LogNormal,
    Payg,
    Replay,
    Scenario,
    Segment,
    Throttle,
    Topup,
)
from sim.traces.readers import TraceError
from sim.traces.replay import ReplayTrace, load_replay
from sim.units import TOKENS_PER_MTOK
from sim.world.arrays import (
    F64,
    I64,
    TOKENS_EMPIRICAL,
    TOKENS_LOGNORMAL,
    TOKENS_REPLAY,
    Classes,
    Plans,
    Pools,
    Segments,
    World,
)
from sim.world.rules import (
    NO_LIMIT,
    RULE_CUTOFF,
    RULE_PAYG,
    RULE_THROTTLE_DOWNGRADE,
    RULE_THROTTLE_SLOW,
    RULE_TOPUP,
)


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


def build(s: Scenario) -> World:
    """Turn a validated scenario into the engine's plain arrays."""
    model_names = [m.name for m in s.catalog.models]
    m_idx = {n: i for i, n in enumerate(model_names)}
    plan_idx = {p.name: i for i, p in enumerate(s.plans)}
    gpu_cost = {g.name: g.cost_per_hour for g in s.catalog.gpus}
    n_m, n_p = len(model_names), len(s.plans)

    # --- pools
    pools = s.cluster.pools
    model_pool = np.full(n_m, -1, dtype=np.int64)
    occ_in, occ_out, prefill, tpot, cost = [], [], [], [], []
    months = s.horizon_months
    gpus = np.zeros((months, len(pools)), dtype=np.int64)
    slots = np.zeros((months, len(pools)), dtype=np.int64)
    for j, p in enumerate(pools):
        model_pool[m_idx[p.model]] = j
        llm = s.catalog.models[m_idx[p.model]]
        sv = next(v for v in llm.serving if v.gpu == p.gpu)
        g, b = sv.gpus_per_replica, sv.batch_slots_per_replica
        replica_prefill = sv.prefill_tokens_per_s_per_gpu * g
        replica_decode = sv.decode_tokens_per_s_per_gpu * g
        occ_in.append(b / replica_prefill)
        occ_out.append(b / replica_decode)
        prefill.append(replica_prefill)
        tpot.append(b / replica_decode)
        cost.append(gpu_cost[p.gpu])
        level = p.gpus
        changes = {c.month: c.gpus for c in p.schedule}
        for mo in range(months):
            level = changes.get(mo, level)
            gpus[mo, j] = level
            working = int(np.floor(level * (1.0 - p.unavailable_share) + 1e-9))
            slots[mo, j] = (working // g) * b
    pool_arr = Pools(
        names=[p.name for p in pools],
        model_names=[p.model for p in pools],
        model_pool=model_pool,
        pool_model=np.array([m_idx[p.model] for p in pools], dtype=np.int64),
        occ_in=np.array(occ_in),
        occ_out=np.array(occ_out),
        prefill_rate=np.array(prefill),
        tpot_s=np.array(tpot),
        cost_per_gpu_hour=np.array(cost),
        gpus_by_month=gpus,
        slots_by_month=slots,
        price_miss=np.array([m.price_input_miss_per_mtok for m in s.catalog.models]),
        price_hit=np.array([m.price_input_hit_per_mtok for m in s.catalog.models]),
        price_out=np.array([m.price_output_per_mtok for m in s.catalog.models]),
    )

    # --- SLA classes: dense ranks by priority; the throttled lane ranks last
    classes = s.cluster.sla_classes
    distinct = sorted({c.priority for c in classes})
    rank = {c.name: distinct.index(c.priority) for c in classes}
    cls_idx = {c.name: i for i, c in enumerate(classes)}
    inf = np.inf
    cls_arr = Classes(
        names=[c.name for c in classes],
        ttft_s=np.array([c.slo.ttft_s if c.slo.ttft_s is not None else inf for c in classes]),
        tpot_s=np.array([c.slo.tpot_s if c.slo.tpot_s is not None else inf for c in classes]),
        wait_s=np.array([c.slo.wait_s if c.slo.wait_s is not None else inf for c in classes]),
        n_prio=len(distinct) + 1,
    )

    # --- plans
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
    mw = np.zeros((n_p, n_m))
    listed = np.zeros((n_p, n_m))  # 1 where the plan lists the model (weight 0 = free of quota)
    for i, plan in enumerate(s.plans):
        ex = plan.on_exhaustion
        if isinstance(ex, Throttle):
            rule[i] = RULE_THROTTLE_SLOW if ex.mode == "slow_lane" else RULE_THROTTLE_DOWNGRADE
            gap[i] = ex.min_gap_s
            depri[i] = ex.deprioritise
            if ex.downgrade_model:
                down_pool[i] = model_pool[m_idx[ex.downgrade_model]]
        elif isinstance(ex, Payg):
            rule[i] = RULE_PAYG
            payg_price[i] = ex.price_per_munit / TOKENS_PER_MTOK
            payg_block[i] = ex.block_units
        elif isinstance(ex, Topup):
            rule[i] = RULE_TOPUP
            pack_units[i] = ex.pack_units
            pack_price[i] = ex.pack_price
            auto_buy[i] = ex.purchase == "auto"
            buy_prob[i] = ex.manual_buy_probability
            max_packs[i] = ex.max_packs_per_month
        else:
            rule[i] = RULE_CUTOFF
        for mname, wt in plan.models.items():
            mw[i, m_idx[mname]] = wt
            listed[i, m_idx[mname]] = 1.0
    plan_arr = Plans(
        names=[p.name for p in s.plans],
        channels=[p.channel for p in s.plans],
        fee=np.array([p.price_per_month for p in s.plans]),
        quota_in_requests=np.array([p.quota.unit == "requests" for p in s.plans]),
        quota=np.array([p.quota.amount for p in s.plans]),
        rule=rule,
        gap_s=gap,
        deprioritise=depri,
        down_pool=down_pool,
        payg_price_per_unit=payg_price,
        payg_block_units=payg_block,
        pack_units=pack_units,
        pack_price=pack_price,
        auto_buy=auto_buy,
        buy_prob=buy_prob,
        max_packs=max_packs,
        rollover_share=np.array([p.rollover.share for p in s.plans]),
        rollover_cap=np.array([p.rollover.cap_units for p in s.plans]),
        concurrency=np.array(
            [p.concurrency_limit if p.concurrency_limit else NO_LIMIT for p in s.plans],
            dtype=np.int64,
        ),
        priority=np.array([rank[p.sla_class] for p in s.plans], dtype=np.int64),
        sla_class=np.array([cls_idx[p.sla_class] for p in s.plans], dtype=np.int64),
        model_weight=mw,
        w_miss=np.array([p.token_class_weights.input_miss for p in s.plans]),
        w_hit=np.array([p.token_class_weights.input_hit for p in s.plans]),
        w_out=np.array([p.token_class_weights.output for p in s.plans]),
    )

    # --- segments
    segs = s.segments
    n_s = len(segs)
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
                key=lambda i: (plan_arr.fee[i], plan_arr.quota[i]),
            )
        )

    def arr(f: object) -> F64:
        return np.array([f(g) for g in segs], dtype=np.float64)  # type: ignore[operator]

    traces = [_replay(k, g.replay) if g.replay else None for k, g in enumerate(segs)]
    tin = _token_arrays(segs, "input_tokens", traces)
    tout = _token_arrays(segs, "output_tokens", traces)
    seg_arr = Segments(
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
                tr.requests_per_day / max(g.initial_subscribers, 1) if tr is not None else 0.0
                for tr, g in zip(traces, segs, strict=True)
            ]
        ),
        cache_hit=arr(lambda g: g.cache_hit_share),
        intensity_shape=arr(lambda g: g.intensity_shape),
        eng_start=arr(lambda g: g.engagement.start),
        eng_target=arr(lambda g: g.engagement.target),
        eng_tau_months=arr(lambda g: g.engagement.tau_months),
        eng_volatility=arr(lambda g: g.engagement.volatility),
        value_per_mtok=arr(lambda g: g.value_per_mtok),
        churn_intercept=arr(lambda g: g.churn_intercept),
        initial=np.array([g.initial_subscribers for g in segs], dtype=np.int64),
        acq_bass=np.array([isinstance(g.acquisition, Bass) for g in segs]),
        acq_per_month=arr(lambda g: getattr(g.acquisition, "per_month", 0.0)),
        acq_market=arr(lambda g: getattr(g.acquisition, "market_size", 0.0)),
        acq_p=arr(lambda g: getattr(g.acquisition, "p", 0.0)),
        acq_q=arr(lambda g: getattr(g.acquisition, "q", 0.0)),
        eligible=eligible,
        model_cum=model_cum,
        ladder=ladder,
    )
    ch = s.churn
    return World(
        name=s.name,
        currency=s.currency,
        horizon_months=s.horizon_months,
        days_per_month=s.days_per_month,
        start_weekday=s.start_weekday,
        seg=seg_arr,
        plan=plan_arr,
        pool=pool_arr,
        cls=cls_arr,
        churn=ch.model_dump(),
        write_ledger=s.outputs.ledger,
        write_plots=s.outputs.plots,
        model_names=model_names,
    )
