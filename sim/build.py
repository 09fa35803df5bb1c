"""From a validated scenario to plain arrays: the model the engine runs on.

Nothing downstream of this module sees pydantic objects or the file. Plans,
segments, pools and SLA classes become integer indices and numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim import cluster as K
from sim.defaults import TOKENS_PER_MTOK
from sim.replay import ReplayTrace, replay_trace
from sim.scenario import Bass, Empirical, LogNormal, Payg, Scenario, Segment, Throttle, Topup

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Segments:
    """Per-segment demand, adoption and churn parameters (index = segment id)."""

    names: list[str]
    kinds: list[str]
    sessions_per_day: F64  # sessions per subscriber per day at intensity 1 (members included)
    requests_per_session: F64
    think_time_s: F64
    think_time_cv: F64  # CV of the within-session gaps (Gamma; 1 = exponential)
    activity_sigma: F64  # spread of the 10-min activity multiplier (ln units; 0 = none)
    activity_timescale_s: F64  # correlation time of the activity process (s)
    arrival_cv: F64  # CV of the gaps between session starts (Gamma renewal; 1 = Poisson)
    hour_weight: F64  # [S, 24] relative rate per hour, mean 1
    weekday_weight: F64  # [S, 7] relative rate per weekday, mean 1
    in_mu: F64
    in_sigma: F64
    in_max: F64
    out_mu: F64
    out_sigma: F64
    out_max: F64
    in_kind: I64  # TOKENS_LOGNORMAL, TOKENS_EMPIRICAL or TOKENS_REPLAY
    out_kind: I64
    in_table_p: F64  # [S, K] cumulative probabilities of empirical tables (padded with 1)
    in_table_q: F64  # [S, K] lengths at those probabilities (tokens)
    in_table_n: I64  # [S] table points in use
    out_table_p: F64
    out_table_q: F64
    out_table_n: I64
    in_mean: F64  # mean input tokens per request (caps ignored)
    out_mean: F64  # mean output tokens per request
    cache_hit: F64
    intensity_shape: F64
    eng_start: F64
    eng_target: F64
    eng_tau_months: F64
    eng_volatility: F64
    value_per_mtok: F64
    churn_intercept: F64
    initial: I64
    acq_bass: NDArray[np.bool_]
    acq_per_month: F64  # constant model
    acq_market: F64
    acq_p: F64
    acq_q: F64
    eligible: NDArray[np.bool_]  # [S, P]
    model_cum: F64  # [S, P, M] cumulative model-choice probabilities under each plan
    ladder: list[list[int]]  # per segment: eligible plans ordered by fee then quota
    replay: list[ReplayTrace | None] = field(default_factory=list)  # per segment, or None
    replay_requests_per_day: F64 = field(default_factory=lambda: np.zeros(0))
    """Replay segments: trace requests per day over the initial subscribers (at least 1)."""

    def mean_tokens(self) -> tuple[F64, F64]:
        """Mean input and output tokens per request (caps ignored; replay: the trace's)."""
        return self.in_mean, self.out_mean

    def mean_requests_per_day(self) -> F64:
        """Expected requests per subscriber per day at intensity and engagement 1."""
        synthetic = self.sessions_per_day * self.requests_per_session
        if not any(r is not None for r in self.replay):
            return synthetic
        is_replay = np.array([r is not None for r in self.replay])
        return np.where(is_replay, self.replay_requests_per_day, synthetic)


@dataclass(frozen=True)
class Plans:
    """Per-plan prices, allowances and rules (index = plan id)."""

    names: list[str]
    channels: list[str]
    fee: F64
    quota_in_requests: NDArray[np.bool_]
    quota: F64
    rule: NDArray[np.int8]
    gap_s: F64
    deprioritise: NDArray[np.bool_]
    down_pool: I64
    payg_price_per_unit: F64
    payg_block_units: F64
    pack_units: F64
    pack_price: F64
    auto_buy: NDArray[np.bool_]
    buy_prob: F64
    max_packs: I64
    rollover_share: F64
    rollover_cap: F64
    concurrency: I64
    priority: I64  # dense queue rank of the plan's SLA class
    sla_class: I64
    model_weight: F64  # [P, M]
    w_miss: F64
    w_hit: F64
    w_out: F64


@dataclass(frozen=True)
class Pools:
    """Per-pool serving constants and capacity by month (index = pool id)."""

    names: list[str]
    model_names: list[str]
    model_pool: I64  # [M] pool of each catalog model
    pool_model: I64  # [pools] catalog model each pool serves
    occ_in: F64  # slot-seconds per uncached input token
    occ_out: F64  # slot-seconds per output token
    prefill_rate: F64  # replica prefill speed for TTFT (tokens/s)
    tpot_s: F64  # time per output token (s)
    cost_per_gpu_hour: F64
    gpus_by_month: I64  # [months, pools] cards paid for
    slots_by_month: I64  # [months, pools] working slots
    price_miss: F64  # [M] API list prices (currency per 1M tokens), by model
    price_hit: F64
    price_out: F64


@dataclass(frozen=True)
class Classes:
    """SLA classes: queue rank and SLO targets (inf where unset)."""

    names: list[str]
    ttft_s: F64
    tpot_s: F64
    wait_s: F64
    n_prio: int  # ranks in use, plus one for the throttled lane


@dataclass(frozen=True)
class World:
    """Everything a replication needs, as plain arrays."""

    name: str
    currency: str
    horizon_months: int
    days_per_month: int
    start_weekday: int
    seg: Segments
    plan: Plans
    pool: Pools
    cls: Classes
    churn: dict[str, float]
    write_ledger: bool
    write_plots: bool
    model_names: list[str] = field(default_factory=list)

    @property
    def horizon_days(self) -> int:
        """Simulated days."""
        return self.horizon_months * self.days_per_month

    def month_of(self, day: int) -> int:
        """Calendar month of a day (days past the horizon belong to the last month)."""
        return min(day // self.days_per_month, self.horizon_months - 1)


TOKENS_LOGNORMAL = 0
"""Token-length kind: lognormal(mu, sigma) from the tokens stream."""
TOKENS_EMPIRICAL = 1
"""Token-length kind: inverse CDF of an empirical quantile table from the tokens stream."""
TOKENS_REPLAY = 2
"""Token-length kind: taken from a replayed trace (no draw)."""


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
            rule[i] = K.RULE_THROTTLE_SLOW if ex.mode == "slow_lane" else K.RULE_THROTTLE_DOWNGRADE
            gap[i] = ex.min_gap_s
            depri[i] = ex.deprioritise
            if ex.downgrade_model:
                down_pool[i] = model_pool[m_idx[ex.downgrade_model]]
        elif isinstance(ex, Payg):
            rule[i] = K.RULE_PAYG
            payg_price[i] = ex.price_per_munit / TOKENS_PER_MTOK
            payg_block[i] = ex.block_units
        elif isinstance(ex, Topup):
            rule[i] = K.RULE_TOPUP
            pack_units[i] = ex.pack_units
            pack_price[i] = ex.pack_price
            auto_buy[i] = ex.purchase == "auto"
            buy_prob[i] = ex.manual_buy_probability
            max_packs[i] = ex.max_packs_per_month
        else:
            rule[i] = K.RULE_CUTOFF
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
            [p.concurrency_limit if p.concurrency_limit else K.NO_LIMIT for p in s.plans],
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

    traces = [replay_trace(k, g.replay) if g.replay else None for k, g in enumerate(segs)]
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
