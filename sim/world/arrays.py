"""The world one replication runs on: plain frozen dataclasses of numpy arrays, no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim.traces.replay import ReplayTrace
from sim.world.timeline import Book, Timeline
from sim.world.windows import Windows

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
    patience_median_s: F64  # median patience for the first token (s; inf = waits for ever)
    patience_sigma: F64  # spread of the patience (ln units)
    retry_max: I64  # retries after a failed attempt (0: none)
    retry_backoff_s: F64  # delay before the first retry (s)
    retry_factor: F64  # growth of the delay from one retry to the next
    retry_backoff_max_s: F64  # the longest delay (s)
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
    # batched serving (sim.engine.batching); slot pools carry zeros here
    batched: NDArray[np.bool_]  # pool runs serving: batched
    batch_per_replica: I64  # requests one replica runs at once
    step_base_s: F64  # b0: fixed step time (s)
    step_prefill_s: F64  # b1: step time per prefill token (s) = 1 / replica prefill rate
    step_request_s: F64  # b2: step time per decoding request (s)
    step_context_s: F64  # b3: step time per context token held (s)
    prefill_chunk: F64  # prefill tokens a step carries
    kv_tokens: F64  # KV budget of a replica (tokens)
    router: NDArray[np.int8]  # sim.engine.batching.ROUTERS code
    # disaggregated pools: slots_by_month are the prefill replicas' slots, gpus_by_month
    # counts both sides' cards
    disaggregated: NDArray[np.bool_]  # pool prefills and decodes on separate replicas
    decode_slots_by_month: I64  # [months, pools] working slots of decode replicas (else 0)
    kv_transfer_s_per_token: F64  # KV transfer time per context token, prefill -> decode (s)
    kv_transfer_latency_s: F64  # fixed time of one KV transfer (s)

    def replicas_by_month(self) -> I64:
        """[months, pools] working replicas of the batched pools (0 for slot pools).

        Disaggregated pools: their prefill replicas.
        """
        per = np.maximum(self.batch_per_replica, 1)
        return np.where(self.batched, self.slots_by_month // per, 0)

    def decode_replicas_by_month(self) -> I64:
        """[months, pools] working decode replicas of the disaggregated pools (else 0)."""
        return self.decode_slots_by_month // np.maximum(self.batch_per_replica, 1)

    def all_slots_by_month(self) -> I64:
        """[months, pools] every working slot: prefill and decode replicas' both."""
        return self.slots_by_month + self.decode_slots_by_month


@dataclass(frozen=True)
class Classes:
    """SLA classes: queue rank and SLO targets (inf where unset)."""

    names: list[str]
    ttft_s: F64
    tpot_s: F64
    wait_s: F64
    n_prio: int  # ranks in use, plus one for the throttled lane


@dataclass(frozen=True)
class ChurnParams:
    """Renewal logit and plan-switching parameters (the scenario's ``churn`` block).

    logit P(churn) = segment intercept + price_value * ln(paid / value)
      + exhausted * [quota ran out] + refused * refused_share + throttled * throttled_share
      + slo_miss * slo_miss_share + unused * unused_share + tenure * ln(1 + tenure months)
      + reference_price * ln(paid / the segment's market reference price), where one is set
    """

    price_value: float
    """Logit change per unit of ln(paid / realised value)."""
    exhausted: float
    """Logit change when the quota ran out in the month."""
    refused: float
    """Logit change per share of requests refused or abandoned (0-1 share)."""
    throttled: float
    """Logit change per share of requests throttled (0-1 share)."""
    slo_miss: float
    """Logit change per share of SLO misses (0-1 share)."""
    unused: float
    """Logit change per share of quota left unused (0-1 share)."""
    tenure: float
    """Logit change per unit of ln(1 + tenure months)."""
    reference_price: float
    """Logit change per unit of ln(paid / market reference price), where a reference is set."""
    acquisition_price_elasticity: float
    """Sign-ups scale by (price index / reference price) ^ -this, where a reference is set."""
    upgrade_after_months: int
    """Consecutive exhausted months (count) before a subscriber considers the next plan up."""
    upgrade_probability: float
    """Probability of moving one plan up once that streak is reached (per renewal)."""
    downgrade_after_months: int
    """Consecutive wasteful months (count) before a subscriber considers the next plan down."""
    downgrade_use_below: float
    """A month wastes quota below this used share of it (0-1 share)."""
    downgrade_probability: float
    """Probability of moving one plan down once that streak is reached (per renewal)."""
    choice_temperature: float
    """Logit scale of plan choice (currency per month): utility gaps this size shift odds by e."""
    throttled_value_share: float
    """Value of a token served over quota under throttling relative to a normal one (0-1)."""


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
    churn: ChurnParams
    write_ledger: bool
    write_plots: bool
    model_names: list[str]
    timeline: Timeline
    """Plan terms by month and the events that change them."""
    book: Book | None
    """The subscribers at t=0 as given (None: they choose their plans by the logit)."""
    win: Windows
    """Plans' usage windows and peak weights (sim.world.windows)."""

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
