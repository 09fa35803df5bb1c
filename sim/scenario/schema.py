"""The entry seam: a strict, typed scenario schema, loading and validation.

A scenario file (YAML) is validated once, at the boundary, into these pydantic
models; the engine then runs on plain arrays built by :mod:`sim.compile`.
Unknown keys are errors (``extra="forbid"``), so a typo never silently falls
back to a default. Every field carries a description with its unit and, where
it has a default, the source of that default (see ``docs/parameters.md``).

Money is in the scenario's ``currency`` (one currency per scenario); tokens
are counts; times are seconds unless the name says otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from sim.scenario.assumptions import (
    ACQUISITION_PRICE_ELASTICITY,
    ACTIVITY_SIGMA,
    ACTIVITY_TIMESCALE_S,
    ARRIVAL_CV,
    BASS_P,
    BASS_Q,
    CHOICE_TEMPERATURE,
    CHURN_EXHAUSTED,
    CHURN_PRICE_VALUE,
    CHURN_REFERENCE_PRICE,
    CHURN_REFUSED,
    CHURN_SLO_MISS,
    CHURN_TENURE,
    CHURN_THROTTLED,
    CHURN_UNUSED,
    DOWNGRADE_AFTER_MONTHS,
    DOWNGRADE_PROBABILITY,
    DOWNGRADE_USE_BELOW,
    INTENSITY_SHAPE,
    KV_LINK_GBYTES_PER_S,
    KV_LINK_LATENCY_S,
    PREFILL_CHUNK_TOKENS,
    RETRY_BACKOFF_FACTOR,
    RETRY_BACKOFF_FACTOR_LIMIT,
    RETRY_BACKOFF_MAX_S,
    RETRY_BACKOFF_S,
    RETRY_MAX_RETRIES,
    RETRY_MAX_RETRIES_LIMIT,
    SLO_TPOT_S,
    SLO_TTFT_S,
    THROTTLE_MIN_GAP_S,
    THROTTLED_VALUE_SHARE,
    TOPUP_MANUAL_BUY_PROBABILITY,
    TOPUP_MAX_PACKS_PER_MONTH,
    UPGRADE_AFTER_MONTHS,
    UPGRADE_PROBABILITY,
    WINDOW_MAX_PER_PLAN,
)
from sim.scenario.base import (
    GPUs,
    Logit,
    LogSigma,
    Money,
    Month,
    Name,
    Pos,
    PosMoney,
    PosSeconds,
    PosTokens,
    PosWeight,
    QuotaUnits,
    Seconds,
    Share,
    Strict,
    Subscribers,
    TokenCount,
    TokenRate,
    Tokens,
    Weight,
)
from sim.scenario.events import Book, Event
from sim.scenario.limits import (
    MAX_BASS_COEFFICIENT,
    MAX_BATCH_SLOTS,
    MAX_CONCURRENCY,
    MAX_CV,
    MAX_DURATION_S,
    MAX_GPUS_PER_REPLICA,
    MAX_KV_TOKENS,
    MAX_MAGNITUDE,
    MAX_MEMBERS,
    MAX_MONTHS,
    MAX_PACKS_PER_MONTH,
    MAX_PRICE,
    MAX_QUOTA_UNITS,
    MAX_REQUESTS_PER_SESSION,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_SESSIONS_PER_DAY,
    MAX_SHAPE,
    MAX_SIGNUPS_PER_MONTH,
    MAX_SUBSCRIBERS,
    MAX_TEXT_LENGTH,
    MIN_CHOICE_TEMPERATURE,
    MIN_SHAPE,
)
from sim.scenario.references import check_references
from sim.scenario.windows import PeakWeight, UsageWindow, WindowBehaviour, check_windows
from sim.units import SECONDS_PER_DAY

# --------------------------------------------------------------------------- catalog


class StepTime(Strict):
    """How long one continuous-batching step of a replica takes (pools with serving: batched).

    ``t_step = base_s + prefill tokens in the step / (prefill rate of the replica)
    + per_request_s * requests decoding + per_context_token_s * context tokens they hold``.
    The prefill term comes from ``prefill_tokens_per_s_per_gpu`` x ``gpus_per_replica``.
    """

    base_s: Seconds = Field(
        description="fixed time of a step whatever the batch: weights read, launch overheads (s)"
    )
    per_request_s: Seconds = Field(description="added step time per request decoding (s)")
    per_context_token_s: Seconds = Field(
        description="added step time per context token held by the decoding requests (s)"
    )
    prefill_chunk_tokens: TokenCount = Field(
        default=PREFILL_CHUNK_TOKENS,
        description="prefill tokens one step carries (chunked prefill) (tokens)",
    )
    kv_cache_tokens_per_replica: Annotated[
        int, Field(ge=1, le=MAX_KV_TOKENS, json_schema_extra={"x-limit": "MAX_KV_TOKENS"})
    ] = Field(
        description="KV-cache budget of one replica: context tokens its running requests may"
        " hold together (tokens)"
    )

    @model_validator(mode="after")
    def _a_step_takes_time(self) -> StepTime:
        if self.base_s <= 0 and self.per_request_s <= 0:
            raise ValueError("base_s or per_request_s must be positive: a decode step takes time")
        return self


class Serving(Strict):
    """How fast one GPU type serves one model (a closed-form prefill/decode model)."""

    gpu: str = Field(description="GPU type name, as in catalog.gpus")
    prefill_tokens_per_s_per_gpu: TokenRate = Field(
        description="uncached input tokens/s one GPU prefills at full load (tokens/s)"
    )
    decode_tokens_per_s_per_gpu: TokenRate = Field(
        description="output tokens/s one GPU decodes at the batch size below (tokens/s)"
    )
    batch_slots_per_replica: Annotated[
        int, Field(ge=1, le=MAX_BATCH_SLOTS, json_schema_extra={"x-limit": "MAX_BATCH_SLOTS"})
    ] = Field(description="requests one replica serves concurrently (continuous-batching slots)")
    gpus_per_replica: Annotated[
        int,
        Field(ge=1, le=MAX_GPUS_PER_REPLICA, json_schema_extra={"x-limit": "MAX_GPUS_PER_REPLICA"}),
    ] = Field(description="GPUs in one replica")
    step_time: StepTime | None = Field(
        default=None,
        description="continuous-batching step time and KV budget (needed by batched pools)",
    )


class LLM(Strict):
    """One model of the catalog: API list prices and serving performance per GPU type."""

    name: Name = Field(description="model name, referred to by plans, segments and pools")
    price_input_miss_per_mtok: Money = Field(
        description="API list price, input tokens on a cache miss (currency per 1M tokens)"
    )
    price_input_hit_per_mtok: Money = Field(
        description="API list price, input tokens on a cache hit (currency per 1M tokens)"
    )
    price_output_per_mtok: Money = Field(
        description="API list price, output tokens (currency per 1M tokens)"
    )
    serving: list[Serving] = Field(min_length=1, description="performance on each GPU type")


class GPUType(Strict):
    """A GPU type and what an hour of it costs (rented or amortised)."""

    name: Name = Field(description="GPU type name, referred to by serving entries and pools")
    cost_per_hour: Money = Field(description="cost of one GPU for one hour (currency/GPU-hour)")


class Catalog(Strict):
    """Models and GPU types the scenario may refer to."""

    models: list[LLM] = Field(min_length=1)
    gpus: list[GPUType] = Field(min_length=1)


# --------------------------------------------------------------------------- plans


class Quota(Strict):
    """A plan's allowance per billing month, in tokens or in requests."""

    unit: Literal["tokens", "requests"] = Field(
        default="tokens", description="what the quota counts"
    )
    amount: QuotaUnits = Field(description="allowance per billing month (tokens or requests)")


class TokenClassWeights(Strict):
    """How many quota units one token of each class burns (1 = face value)."""

    input_miss: Weight = Field(default=1.0, description="per uncached input token")
    input_hit: Weight = Field(default=1.0, description="per cached (prefix-hit) input token")
    output: Weight = Field(default=1.0, description="per output token")


class Cutoff(Strict):
    """At exhaustion, refuse every request until renewal."""

    rule: Literal["cutoff"] = Field(description="refuse requests until renewal")


class Throttle(Strict):
    """At exhaustion, keep serving but worse: a slow lane, or a cheaper model."""

    rule: Literal["throttle"] = Field(description="keep serving, worse")
    mode: Literal["slow_lane", "downgrade"] = Field(
        default="slow_lane", description="slow lane (rate limit, low priority) or cheaper model"
    )
    min_gap_s: Seconds = Field(
        default=THROTTLE_MIN_GAP_S,
        description="a throttled subscriber gets at most one request per this many seconds (s)",
    )
    deprioritise: bool = Field(
        default=True,
        description="throttled requests queue behind every SLA class (lowest priority)",
    )
    downgrade_model: str | None = Field(
        default=None, description="mode=downgrade: the catalog model throttled requests go to"
    )

    @model_validator(mode="after")
    def _downgrade_needs_model(self) -> Throttle:
        if self.mode == "downgrade" and not self.downgrade_model:
            raise ValueError("mode 'downgrade' needs downgrade_model")
        return self


class Payg(Strict):
    """At exhaustion, keep serving and bill the overage."""

    rule: Literal["payg"] = Field(description="serve and bill the overage")
    price_per_munit: Money = Field(
        description="price per 1M quota units over the quota (currency per 1M tokens, or per 1M"
        " requests for request quotas)"
    )
    block_units: Annotated[
        float, Field(ge=1, le=MAX_QUOTA_UNITS, json_schema_extra={"x-limit": "MAX_QUOTA_UNITS"})
    ] = Field(default=1.0, description="overage is billed in whole blocks of this many quota units")


class Topup(Strict):
    """At exhaustion, buy packs of extra quota, automatically or by choice."""

    rule: Literal["topup"] = Field(description="sell packs of extra quota")
    pack_units: Annotated[
        float, Field(gt=0, le=MAX_QUOTA_UNITS, json_schema_extra={"x-limit": "MAX_QUOTA_UNITS"})
    ] = Field(description="quota units one pack adds (tokens or requests)")
    pack_price: Money = Field(description="price of one pack (currency)")
    purchase: Literal["auto", "manual"] = Field(
        default="auto", description="auto: always buy; manual: buy with a probability"
    )
    manual_buy_probability: Share = Field(
        default=TOPUP_MANUAL_BUY_PROBABILITY,
        description="manual purchase: chance a subscriber buys a pack when cut off",
    )
    max_packs_per_month: Annotated[
        int,
        Field(ge=0, le=MAX_PACKS_PER_MONTH, json_schema_extra={"x-limit": "MAX_PACKS_PER_MONTH"}),
    ] = Field(default=TOPUP_MAX_PACKS_PER_MONTH, description="cap on packs per billing month")


Exhaustion = Annotated[Cutoff | Throttle | Payg | Topup, Field(discriminator="rule")]


class Rollover(Strict):
    """Carry part of the unused quota into the next billing month."""

    share: Share = Field(default=0.0, description="share of unused quota carried over")
    cap_units: QuotaUnits = Field(default=0.0, description="cap on carried-over quota units")


class Plan(Strict):
    """A token package: fee, allowance, usable models, and what happens at exhaustion."""

    name: Name = Field(description="plan name, referred to by segments")
    price_per_month: Money = Field(description="monthly fee (currency/month)")
    quota: Quota = Field(description="allowance per billing month")
    models: dict[str, Weight] = Field(
        min_length=1,
        description="usable models and their quota weight (1 = face value, 2 = twice as fast,"
        " 0 = free of quota)",
    )
    token_class_weights: TokenClassWeights = Field(
        default_factory=TokenClassWeights, description="quota units per token of each class"
    )
    on_exhaustion: Exhaustion = Field(
        default_factory=lambda: Cutoff(rule="cutoff"),
        description="what happens when the quota runs out (rule: cutoff|throttle|payg|topup)",
    )
    rollover: Rollover = Field(default_factory=Rollover, description="carry-over of unused quota")
    concurrency_limit: (
        Annotated[
            int, Field(ge=1, le=MAX_CONCURRENCY, json_schema_extra={"x-limit": "MAX_CONCURRENCY"})
        ]
        | None
    ) = Field(default=None, description="requests a subscriber may have in flight at once")
    sla_class: str = Field(default="standard", description="SLA class name (priority, SLO)")
    channel: Literal["own_app", "api", "partner_app"] = Field(
        default="own_app", description="sales channel (reporting)"
    )
    windows: list[UsageWindow] = Field(
        default_factory=list,
        max_length=WINDOW_MAX_PER_PLAN,
        description="usage windows beside the month (a rolling 5-hour allowance, a weekly cap);"
        " a request is admitted only while every window has room",
    )
    peak_weights: list[PeakWeight] = Field(
        default_factory=list,
        description="quota weights by hour of day and weekday (e.g. 3x 14:00-18:00 on"
        " weekdays), applied to each request's quota charge; 1 outside them",
    )

    @model_validator(mode="after")
    def _windows_consistent(self) -> Plan:
        check_windows(self.windows, self.peak_weights)
        return self


# --------------------------------------------------------------------------- segments


class LogNormal(Strict):
    """A lognormal token length: median exp(mu) and log-sd sigma, optionally capped."""

    dist: Literal["lognormal"] = Field(default="lognormal", description="distribution family")
    median: PosTokens = Field(description="median length (tokens)")
    sigma: LogSigma = Field(description="standard deviation of ln(length)")
    max: PosTokens | None = Field(
        default=None, description="hard cap, e.g. the context window (tokens)"
    )


class Empirical(Strict):
    """An empirical token length: a quantile table sampled by inverse CDF (linear in between).

    ``quantiles[k]`` is the length at cumulative probability ``probs[k]``; a uniform draw u
    gives the length interpolated linearly between the two table points around u, rounded to
    whole tokens (at least 1, at most ``max``). ``tokensim calibrate`` writes these tables.
    """

    dist: Literal["empirical"] = Field(description="distribution family")
    quantiles: list[Tokens] = Field(
        min_length=2, description="lengths at the cumulative probabilities `probs` (tokens)"
    )
    probs: list[Share] | None = Field(
        default=None,
        description="cumulative probabilities of `quantiles`, from 0 to 1, increasing (share;"
        " default: equally spaced)",
    )
    max: PosTokens | None = Field(
        default=None, description="hard cap, e.g. the context window (tokens)"
    )

    @model_validator(mode="after")
    def _table(self) -> Empirical:
        q = self.quantiles
        if any(b < a for a, b in itertools.pairwise(q)):
            raise ValueError("quantiles must be non-decreasing")
        if self.probs is not None:
            p = self.probs
            if len(p) != len(q):
                raise ValueError(f"probs has {len(p)} entries, quantiles {len(q)}")
            if p[0] != 0.0 or p[-1] != 1.0:
                raise ValueError("probs must start at 0 and end at 1")
            if any(b <= a for a, b in itertools.pairwise(p)):
                raise ValueError("probs must be strictly increasing")
        return self

    def cumulative(self) -> list[float]:
        """The table's cumulative probabilities (``probs`` or equally spaced from 0 to 1)."""
        n = len(self.quantiles)
        return list(self.probs) if self.probs is not None else [k / (n - 1) for k in range(n)]

    def mean(self) -> float:
        """Mean length of the table's piecewise-linear quantile function (tokens, cap ignored)."""
        q, p = self.quantiles, self.cumulative()
        return sum((q[k] + q[k + 1]) / 2 * (p[k + 1] - p[k]) for k in range(len(q) - 1))


def _dist_tag(v: Any) -> str | None:
    """Which token-length family a value is: ``dist`` if given, lognormal by default."""
    d = v.get("dist", "lognormal") if isinstance(v, dict) else getattr(v, "dist", "lognormal")
    return d if isinstance(d, str) else None


TokenLength = Annotated[
    Annotated[LogNormal, Tag("lognormal")] | Annotated[Empirical, Tag("empirical")],
    Discriminator(_dist_tag),
]
"""A token-length distribution: ``dist: lognormal`` (the default) or ``dist: empirical``."""


class Replay(Strict):
    """Replay a real request trace as a segment's demand, at the trace's time of day every day.

    Each simulated day replays the requests of one day of the trace (trace day ``d mod n`` for a
    trace spanning ``n`` days; a trace shorter than a day repeats daily), at their time of day
    plus ``shift_s``, each assigned to one of the segment's active subscribers drawn uniformly
    at random. Token lengths come from the trace; the model is drawn from
    ``model_preference`` as usual; cached input = round(input x ``cache_hit_share``).
    """

    file: str = Field(
        description="trace file, relative to the scenario file (Python API: to the working"
        " directory); may be gzip-compressed (.gz); loading makes it absolute"
    )
    format: Literal["azure", "mooncake"] = Field(
        description="azure: CSV TIMESTAMP (datetime, or s from midnight), ContextTokens,"
        " GeneratedTokens; mooncake: JSONL timestamp (ms), input_length, output_length"
    )
    shift_s: Annotated[
        float,
        Field(
            ge=-MAX_DURATION_S, le=MAX_DURATION_S, json_schema_extra={"x-limit": "MAX_DURATION_S"}
        ),
    ] = Field(
        default=0.0,
        description="added to every request's time of day, modulo one day (s); e.g. to move"
        " a trace recorded in UTC to local time",
    )

    def path(self) -> Path:
        """The trace file's path (``load_scenario`` made a relative one absolute)."""
        return Path(self.file)


class Engagement(Strict):
    """How a subscriber's usage grows or fades with tenure (a multiplier on its request rate)."""

    start: PosWeight = Field(default=1.0, description="multiplier at sign-up")
    target: PosWeight = Field(default=1.0, description="level it converges to")
    tau_months: Annotated[
        float, Field(gt=0, le=MAX_MONTHS, json_schema_extra={"x-limit": "MAX_MONTHS"})
    ] = Field(default=3.0, description="time constant of the convergence (months)")
    volatility: LogSigma = Field(
        default=0.0, description="monthly lognormal shock on the multiplier (sd of its log)"
    )


class Patience(Strict):
    """How long a user waits for the first token before leaving (lognormal over requests).

    A request whose first token would come later than its patience leaves the queue before
    its service starts (abandons): it burns no quota and no GPU time, and counts for churn
    like a refusal.
    """

    median_s: PosSeconds = Field(
        description="median patience (s): the longest TTFT half the users wait"
    )
    sigma: LogSigma = Field(
        default=0.0, description="spread of the patience over requests (sd of its log; 0 = fixed)"
    )


Delay = Annotated[float, Field(gt=0, le=SECONDS_PER_DAY)]
"""A retry delay (s): retries are made within the day, so a longer one could never come."""


class Retry(Strict):
    """How a segment's clients retry a request that failed (bots' SDKs do; people rarely).

    A request that was abandoned (no first token within the patience), refused by a
    concurrency limit or refused by throttling is sent again after a back-off of
    ``backoff_s * backoff_factor ** k`` seconds (``k`` = retries made so far, at most
    ``backoff_max_s``), from the moment it failed: the user's timeout for an abandoned one
    (arrival + patience), the refusal for a refused one. Each retry is a new request with the
    same tokens and the same patience; at most ``max_retries`` retries, and none after the
    day's end. No jitter: the SDKs shorten each delay by up to a quarter at random.
    """

    max_retries: Annotated[int, Field(ge=1, le=RETRY_MAX_RETRIES_LIMIT)] = Field(
        default=RETRY_MAX_RETRIES, description="retries after the first attempt (count)"
    )
    backoff_s: Delay = Field(
        default=RETRY_BACKOFF_S, description="delay before the first retry (s)"
    )
    backoff_factor: Annotated[float, Field(ge=1.0, le=RETRY_BACKOFF_FACTOR_LIMIT)] = Field(
        default=RETRY_BACKOFF_FACTOR, description="each further delay is this times the last"
    )
    backoff_max_s: Delay = Field(
        default=RETRY_BACKOFF_MAX_S, description="the longest delay between attempts (s)"
    )


class Bass(Strict):
    """Bass diffusion toward a market size: new/month = (p + q N/M)(M - N)."""

    model: Literal["bass"] = Field(description="Bass diffusion")
    market_size: Annotated[
        float, Field(gt=0, le=MAX_SUBSCRIBERS, json_schema_extra={"x-limit": "MAX_SUBSCRIBERS"})
    ] = Field(description="potential subscribers M (subscribers)")
    p: Annotated[
        float,
        Field(ge=0, le=MAX_BASS_COEFFICIENT, json_schema_extra={"x-limit": "MAX_BASS_COEFFICIENT"}),
    ] = Field(default=BASS_P, description="innovation coefficient (1/month)")
    q: Annotated[
        float,
        Field(ge=0, le=MAX_BASS_COEFFICIENT, json_schema_extra={"x-limit": "MAX_BASS_COEFFICIENT"}),
    ] = Field(default=BASS_Q, description="imitation coefficient (1/month)")


class Constant(Strict):
    """A fixed expected number of sign-ups per month."""

    model: Literal["constant"] = Field(description="constant rate")
    per_month: Annotated[
        float,
        Field(
            ge=0, le=MAX_SIGNUPS_PER_MONTH, json_schema_extra={"x-limit": "MAX_SIGNUPS_PER_MONTH"}
        ),
    ] = Field(description="expected sign-ups per month (subscribers/month)")


Acquisition = Annotated[Bass | Constant, Field(discriminator="model")]


class Segment(Strict):
    """A kind of subscriber: how it adopts, chooses and uses tokens."""

    name: Name = Field(description="segment name")
    kind: Literal["chat", "household", "coder", "enterprise_bot", "other"] = Field(
        default="other", description="kind of user (reporting)"
    )
    plans: list[str] = Field(min_length=1, description="plans offered to this segment")
    initial_subscribers: Subscribers = Field(
        default=0, description="subscribers at t=0 (with a book: its count for the segment)"
    )
    reference_price: PosMoney | None = Field(
        default=None,
        description="the market's comparable monthly price for this segment (currency/month),"
        " e.g. a competitor's; enters churn and acquisition (none: no price comparison)",
    )
    acquisition: Acquisition = Field(
        default_factory=lambda: Constant(model="constant", per_month=0),
        description="sign-ups per month (model: bass|constant)",
    )
    members: Annotated[
        int, Field(ge=1, le=MAX_MEMBERS, json_schema_extra={"x-limit": "MAX_MEMBERS"})
    ] = Field(default=1, description="people sharing one subscription's quota (households, teams)")
    sessions_per_day: (
        Annotated[
            float,
            Field(
                ge=0, le=MAX_SESSIONS_PER_DAY, json_schema_extra={"x-limit": "MAX_SESSIONS_PER_DAY"}
            ),
        ]
        | None
    ) = Field(
        default=None,
        description="sessions per member per day at intensity 1 (required unless `replay`)",
    )
    requests_per_session: Annotated[
        float,
        Field(
            ge=1,
            le=MAX_REQUESTS_PER_SESSION,
            json_schema_extra={"x-limit": "MAX_REQUESTS_PER_SESSION"},
        ),
    ] = Field(default=1.0, description="mean requests per session (geometric, >= 1)")
    think_time_s: Seconds = Field(
        default=30.0, description="mean gap between requests of one session (s)"
    )
    think_time_cv: Annotated[
        float, Field(gt=0, le=MAX_CV, json_schema_extra={"x-limit": "MAX_CV"})
    ] = Field(
        default=1.0,
        description="coefficient of variation of the gaps within a session (Gamma renewal with"
        " shape 1/cv^2; 1 = exponential, > 1 = bursts of quick requests with long pauses)",
    )
    activity_sigma: LogSigma = Field(
        default=ACTIVITY_SIGMA,
        description="spread of each subscriber's activity over 10-minute windows (ln units): the"
        " rate is multiplied by exp(sigma Z - sigma^2/2), mean 1, with Z a stationary"
        " Ornstein-Uhlenbeck process per subscriber; 0 = no modulation (Poisson sessions with the"
        " hour profile); constant over windows of ACTIVITY_WINDOW_S (10 min)",
    )
    activity_timescale_s: PosSeconds = Field(
        default=ACTIVITY_TIMESCALE_S,
        description="correlation time of the activity process Z (s): its correlation after a lag"
        " L is exp(-L / timescale); used only when activity_sigma > 0",
    )
    arrival_cv: Annotated[
        float, Field(gt=0, le=MAX_CV, json_schema_extra={"x-limit": "MAX_CV"})
    ] = Field(
        default=ARRIVAL_CV,
        description="coefficient of variation of the gaps between a subscriber's session starts:"
        " a Gamma renewal process in the subscriber's own time scale (its rate following the"
        " hour profile and activity); 1 = Poisson, > 1 = bursts of sessions",
    )
    hour_profile: list[Weight] | None = Field(
        default=None,
        min_length=24,
        max_length=24,
        description="relative activity per hour of day (0-23) (required unless `replay`)",
    )
    weekday_profile: list[Weight] = Field(
        default_factory=lambda: [1.0] * 7,
        min_length=7,
        max_length=7,
        description="relative activity per weekday, Monday first",
    )
    input_tokens: TokenLength | None = Field(
        default=None,
        description="input (prompt) length per request (dist: lognormal|empirical; required"
        " unless `replay`)",
    )
    output_tokens: TokenLength | None = Field(
        default=None,
        description="output (completion) length per request (dist: lognormal|empirical;"
        " required unless `replay`)",
    )
    replay: Replay | None = Field(
        default=None,
        description="replay a real trace as this segment's demand instead of sessions (then"
        " sessions, profiles and token lengths are not used)",
    )
    cache_hit_share: Share = Field(description="share of input tokens served from prefix cache")
    model_preference: dict[str, Share] = Field(
        min_length=1, description="share of requests per model (renormalised over a plan's models)"
    )
    intensity_shape: Annotated[
        float, Field(ge=MIN_SHAPE, le=MAX_SHAPE, json_schema_extra={"x-limit": "MAX_SHAPE"})
    ] = Field(
        default=INTENSITY_SHAPE,
        description="Gamma shape of the personal intensity (mean 1); lower = more heterogeneous",
    )
    engagement: Engagement = Field(
        default_factory=Engagement, description="usage growth or fade with tenure"
    )
    patience: Patience | None = Field(
        default=None,
        description="the longest time to first token the segment's users wait before leaving"
        " (none: they wait for ever)",
    )
    retry: Retry | None = Field(
        default=None,
        description="how the segment's clients retry abandoned, concurrency-refused and throttled"
        " requests (none: they do not)",
    )
    at_window_limit: WindowBehaviour = Field(
        default_factory=WindowBehaviour,
        description="what the segment's users do when a usage window of their plan is full"
        " (plans' `windows` with on_limit: wait)",
    )
    value_per_mtok: Money = Field(
        description="value a subscriber gets from 1M served tokens (currency per 1M tokens)"
    )
    churn_intercept: Logit = Field(
        description="logit of the monthly churn probability of a satisfied, new subscriber"
    )

    @model_validator(mode="after")
    def _profiles_not_zero(self) -> Segment:
        if self.replay is None:
            missing = [
                f
                for f in ("sessions_per_day", "hour_profile", "input_tokens", "output_tokens")
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)}: required unless replay is set")
        if self.hour_profile is not None and sum(self.hour_profile) <= 0:
            raise ValueError("hour_profile must have a positive entry")
        if sum(self.weekday_profile) <= 0:
            raise ValueError("weekday_profile must have a positive entry")
        total = sum(self.model_preference.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"model_preference shares must sum to 1 (they sum to {total:g})")
        return self


# --------------------------------------------------------------------------- cluster


class CapacityChange(Strict):
    """A procurement step: from the start of ``month`` the pool has ``gpus`` cards."""

    month: Month = Field(description="calendar month (0 = first)")
    gpus: GPUs = Field(description="cards from that month on")


class Disaggregation(Strict):
    """Separate prefill and decode replicas (DistServe, Mooncake, DeepSeek's own serving).

    A request prefills on a prefill replica (its first token comes from there), its KV cache
    then crosses the network to a decode replica in ``link_latency_s + input tokens x
    kv_bytes_per_token / link_gbytes_per_s``, and it decodes its other tokens there. The
    pool's ``gpus`` and ``schedule`` are then its prefill cards; both sides use the model's
    replica shape and step time.
    """

    decode_gpus: GPUs = Field(description="decode cards at t=0")
    decode_schedule: list[CapacityChange] = Field(
        default_factory=list, description="procurement steps of the decode cards (month, gpus)"
    )
    kv_bytes_per_token: Pos = Field(
        description="KV-cache bytes one context token takes, moved from prefill to decode (bytes)"
    )
    link_gbytes_per_s: Pos = Field(
        default=KV_LINK_GBYTES_PER_S,
        description="KV transfer bandwidth between a prefill and a decode replica (GB/s)",
    )
    link_latency_s: Seconds = Field(
        default=KV_LINK_LATENCY_S, description="fixed time of one KV transfer (s)"
    )


class Pool(Strict):
    """GPUs serving one model; requests to that model queue here."""

    name: Name = Field(description="pool name")
    model: str = Field(description="the catalog model this pool serves")
    gpu: str = Field(description="GPU type of its cards")
    gpus: GPUs = Field(description="cards at t=0")
    schedule: list[CapacityChange] = Field(
        default_factory=list, description="procurement steps (month, gpus)"
    )
    unavailable_share: Share = Field(
        default=0.0, description="share of cards down at any time (failures); still paid for"
    )
    serving: Literal["slots", "batched"] = Field(
        default="slots",
        description="service model: 'slots' (one shared queue over fixed-time batch lanes) or"
        " 'batched' (replicas with step times that grow with the batch, a KV budget, a router)",
    )
    router: Literal["least_loaded", "round_robin"] = Field(
        default="least_loaded",
        description="batched pools: which replica a request goes to (fewest KV tokens held and"
        " queued, or in turn)",
    )
    disaggregated: Disaggregation | None = Field(
        default=None,
        description="batched pools: separate prefill and decode replicas (gpus and schedule are"
        " then the prefill cards)",
    )


class SLO(Strict):
    """Latency targets; a request meets the SLO when every set target holds."""

    ttft_s: PosSeconds | None = Field(default=None, description="time to first token target (s)")
    tpot_s: PosSeconds | None = Field(default=None, description="time per output token target (s)")
    wait_s: Seconds | None = Field(default=None, description="queue wait target (s)")


class SLAClass(Strict):
    """A service class: priority in the queues (0 = first) and latency targets."""

    name: Name = Field(description="class name, referred to by plans")
    priority: Annotated[int, Field(ge=0, le=8)] = Field(description="queue priority, 0 first")
    slo: SLO = Field(default_factory=SLO, description="latency targets")


class Cluster(Strict):
    """Model pools and service classes."""

    pools: list[Pool] = Field(min_length=1, description="one pool per served model")
    sla_classes: list[SLAClass] = Field(
        description="service classes (default: one 'standard' class with MLPerf targets)",
        default_factory=lambda: [
            SLAClass(name="standard", priority=1, slo=SLO(ttft_s=SLO_TTFT_S, tpot_s=SLO_TPOT_S))
        ],
    )


# --------------------------------------------------------------------------- churn


class Churn(Strict):
    """Renewal logit and plan switching; coefficients add to each segment's churn_intercept.

    logit P(churn) = intercept + price_value * ln(paid / value) + exhausted * [exhausted]
      + refused * refused_share + throttled * throttled_share + slo_miss * slo_miss_share
      + unused * unused_share + tenure * ln(1 + tenure_months)
    """

    price_value: Logit = Field(default=CHURN_PRICE_VALUE, description="per unit of ln(paid/value)")
    exhausted: Logit = Field(default=CHURN_EXHAUSTED, description="if the quota ran out")
    refused: Logit = Field(
        default=CHURN_REFUSED, description="per share of requests refused or abandoned"
    )
    throttled: Logit = Field(default=CHURN_THROTTLED, description="per share throttled")
    slo_miss: Logit = Field(default=CHURN_SLO_MISS, description="per share of SLO misses")
    unused: Logit = Field(default=CHURN_UNUSED, description="per share of quota left unused")
    tenure: Logit = Field(default=CHURN_TENURE, description="per unit of ln(1 + tenure months)")
    reference_price: Logit = Field(
        default=CHURN_REFERENCE_PRICE,
        description="per unit of ln(paid / the segment's market reference price), where a"
        " reference is set (segment reference_price or a competitor_price event)",
    )
    acquisition_price_elasticity: Annotated[float, Field(ge=0, le=10)] = Field(
        default=ACQUISITION_PRICE_ELASTICITY,
        description="sign-ups scale by (price index / reference price) ^ -elasticity, where a"
        " reference is set; the index is the expected fee of the segment's plan choice",
    )
    upgrade_after_months: Annotated[
        int, Field(ge=1, le=MAX_MONTHS, json_schema_extra={"x-limit": "MAX_MONTHS"})
    ] = Field(
        default=UPGRADE_AFTER_MONTHS, description="consecutive exhausted months before upgrading"
    )
    upgrade_probability: Share = Field(
        default=UPGRADE_PROBABILITY, description="chance to upgrade once the streak is reached"
    )
    downgrade_after_months: Annotated[
        int, Field(ge=1, le=MAX_MONTHS, json_schema_extra={"x-limit": "MAX_MONTHS"})
    ] = Field(
        default=DOWNGRADE_AFTER_MONTHS,
        description="consecutive wasteful months before downgrading",
    )
    downgrade_use_below: Share = Field(
        default=DOWNGRADE_USE_BELOW, description="a month 'wastes' quota below this used share"
    )
    downgrade_probability: Share = Field(
        default=DOWNGRADE_PROBABILITY,
        description="chance to downgrade once the streak is reached",
    )
    choice_temperature: Annotated[
        float,
        Field(ge=MIN_CHOICE_TEMPERATURE, le=MAX_PRICE, json_schema_extra={"x-limit": "MAX_PRICE"}),
    ] = Field(
        default=CHOICE_TEMPERATURE,
        description="logit scale of plan choice (currency): utility differences of this size"
        " shift odds by e",
    )
    throttled_value_share: Share = Field(
        default=THROTTLED_VALUE_SHARE,
        description="value of a token served over quota under throttle, relative to a normal one",
    )


# --------------------------------------------------------------------------- scenario


class Outputs(Strict):
    """What a run writes beside the headline tables."""

    ledger: bool = Field(default=True, description="write the subscriber-month ledger (Parquet)")
    plots: bool = Field(default=True, description="write PNG plots")


SweepValue = float | int | str | bool


class Range(Strict):
    """A continuous range of a swept parameter, sampled by a Latin hypercube."""

    low: Annotated[
        float,
        Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, json_schema_extra={"x-limit": "MAX_MAGNITUDE"}),
    ] = Field(description="lowest value (the parameter's unit)")
    high: Annotated[
        float,
        Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, json_schema_extra={"x-limit": "MAX_MAGNITUDE"}),
    ] = Field(description="highest value (the parameter's unit)")
    integer: bool = Field(default=False, description="round sampled values to whole numbers")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high:g}) must exceed low ({self.low:g})")
        return self


class Sweep(Strict):
    """Parameters to vary, by dotted path into this scenario (``tokensim sweep``).

    A path names a field as it appears in the file; list items with a ``name``
    are addressed by that name: ``plans.dev_pro.price_per_month``,
    ``cluster.pools.deepseek.gpus``, ``segments.coder.sessions_per_day``.
    ``tokensim run`` ignores this block and runs the scenario as written.
    """

    design: Literal["factorial", "lhs"] = Field(
        default="factorial",
        description="factorial: every combination of the listed values; lhs: a Latin"
        " hypercube sample of `samples` points",
    )
    parameters: dict[str, list[SweepValue] | Range] = Field(
        min_length=1,
        description="dotted path -> list of values (factorial or lhs) or {low, high} (lhs only)",
    )
    samples: (
        Annotated[int, Field(ge=2, le=MAX_SAMPLES, json_schema_extra={"x-limit": "MAX_SAMPLES"})]
        | None
    ) = Field(default=None, description="points of a Latin hypercube design (lhs only)")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED, json_schema_extra={"x-limit": "MAX_SEED"})] = (
        Field(default=0, description="seed of the Latin hypercube sample (not of the simulation)")
    )

    @model_validator(mode="after")
    def _consistent(self) -> Sweep:
        for path, spec in self.parameters.items():
            if isinstance(spec, list) and not spec:
                raise ValueError(f"parameters.{path}: give at least one value")
            if self.design == "factorial" and isinstance(spec, Range):
                raise ValueError(
                    f"parameters.{path}: a factorial design needs a list of values, not a range"
                )
        if self.design == "lhs" and self.samples is None:
            raise ValueError("samples: a Latin hypercube design needs the number of points")
        if self.design == "factorial" and self.samples is not None:
            raise ValueError("samples: only a Latin hypercube design takes a number of points")
        return self


class Scenario(Strict):
    """A whole scenario: catalog, plans, segments, cluster, churn, horizon and randomness."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", description="scenario name (letters, digits, _ . -)"
    )
    description: Annotated[str, Field(max_length=MAX_TEXT_LENGTH)] = Field(
        default="", description="free text shown in reports"
    )
    currency: Name = Field(default="CNY", description="currency of every money field")
    horizon_months: Annotated[int, Field(ge=1, le=120)] = Field(
        description="simulated calendar months"
    )
    days_per_month: Annotated[int, Field(ge=1, le=31)] = Field(
        default=30, description="length of a billing month (days)"
    )
    start_weekday: Annotated[int, Field(ge=0, le=6)] = Field(
        default=0, description="weekday of day 0 (0 = Monday)"
    )
    seed: Annotated[int, Field(ge=0, le=MAX_SEED, json_schema_extra={"x-limit": "MAX_SEED"})] = (
        Field(default=1, description="root seed of the named random streams")
    )
    replications: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=1, description="independent replications (confidence intervals need >= 2)"
    )
    catalog: Catalog = Field(description="models and GPU types")
    plans: list[Plan] = Field(min_length=1, description="token packages on sale")
    segments: list[Segment] = Field(min_length=1, description="kinds of subscribers")
    cluster: Cluster = Field(description="GPU pools and SLA classes")
    churn: Churn = Field(default_factory=Churn, description="renewal and switching behaviour")
    book: Book | None = Field(
        default=None, description="who holds which plan at t=0 (none: initial choice by logit)"
    )
    events: list[Event] = Field(
        default_factory=list, description="price, quota, plan, promotion, trial, market events"
    )
    outputs: Outputs = Field(default_factory=Outputs, description="optional outputs")
    sweep: Sweep | None = Field(
        default=None, description="parameters varied by `tokensim sweep` (ignored by `run`)"
    )

    @model_validator(mode="after")
    def _cross_references(self) -> Scenario:
        check_references(self)
        return self

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the validated scenario (identifies a run's input)."""
        text = json.dumps(self.model_dump(mode="json", exclude={"sweep"}), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
