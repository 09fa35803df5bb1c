"""Named model assumptions: every default the schema uses, with its unit and source.

Values taken from data cite the file and figure in ``docs/parameters.md``;
values that are modelling assumptions say so. Nothing here is read at run
time from ``../shared``: the derived numbers are carried in the product.
"""

from __future__ import annotations

# --- exhaustion rules ---------------------------------------------------------------------
THROTTLE_MIN_GAP_S = 600.0
"""Throttled subscribers get one request per 10 minutes (s). Assumption; the TPD benchmark's
THROTTLE_GAP (shared/bench/params.py)."""

TOPUP_MANUAL_BUY_PROBABILITY = 0.3
"""Chance a cut-off subscriber buys a pack by hand (share). Assumption, to be calibrated."""

TOPUP_MAX_PACKS_PER_MONTH = 10
"""Cap on packs bought per billing month (packs). Assumption: a spending guard."""

# --- usage windows (coding plans) -----------------------------------------------------------
WINDOW_WAIT_SHARE = 0.5
"""Share of users who, finding a usage window full, wait for it to roll and send the request
again (share); the others give it up (a refusal, which feeds churn). Assumption: no published
measurement of coders' behaviour at a 5-hour limit; set it from your own logs."""

WINDOW_MAX_WAIT_HOURS = 5.0
"""The longest a waiting user waits for a window to roll, from the request's first try (h):
one 5-hour window, the length coding plans use (MODEL.md, section 5). Assumption. A request
whose window rolls later, or after the day's end, is given up."""

WINDOW_MAX_DEFERRALS = 3
"""Times one request may be deferred before its user gives it up (count). A waiting user's
requests come back together when the window rolls; those that find it full again are deferred
again. The bound keeps a day's request arrays within (1 + this) times the windowed requests.
Assumption."""

WINDOW_MAX_PER_PLAN = 3
"""Usage windows a plan may carry beside its month (count): the market's coding plans use at
most two (5-hour and weekly; MODEL.md, section 5), the third is room."""

WINDOW_MAX_HOURS = 744.0
"""Longest usage window (h): 31 days; longer windows are the month's quota."""

# --- batched serving ---------------------------------------------------------------------
PREFILL_CHUNK_TOKENS = 2048
"""Prefill tokens one step of a batched replica carries (tokens): the chunked-prefill token
budget vLLM's tuning guide suggests for latency-sensitive chat (``max_num_batched_tokens``
about 2048; larger for throughput). Assumption for every catalog model."""

KV_LINK_GBYTES_PER_S = 87.0
"""KV-cache transfer bandwidth between a prefill and a decode replica (GB/s): Mooncake's
Transfer Engine measured 87 GB/s over 4 x 200 Gbps RoCE (190 GB/s over 8 x 400 Gbps; Mooncake
documentation, "Transfer Engine"). The lower figure, for nodes with fewer NICs."""

KV_LINK_LATENCY_S = 0.0
"""Fixed time of one KV transfer besides the bytes (s). No published per-transfer figure for
the RDMA path (set-up is microseconds against milliseconds of bytes), so none is assumed;
set it where a deployment measured its handoff."""

# --- retries ------------------------------------------------------------------------------
RETRY_MAX_RETRIES = 2
"""Retries a client makes after a failed request (count): the default of OpenAI's and
Anthropic's official Python SDKs (``DEFAULT_MAX_RETRIES = 2``), which they apply to time-outs,
429 rate limits and server errors."""

RETRY_BACKOFF_S = 0.5
"""Delay before the first retry (s): the same SDKs' ``INITIAL_RETRY_DELAY``."""

RETRY_BACKOFF_FACTOR = 2.0
"""Growth of the delay from one retry to the next: the same SDKs double it."""

RETRY_BACKOFF_MAX_S = 8.0
"""The longest delay between two attempts (s): the same SDKs' ``MAX_RETRY_DELAY``."""

RETRY_MAX_RETRIES_LIMIT = 10
"""Most retries a scenario may ask for (count): each retry may take a row of the day's
request arrays, so the bound keeps a day's memory within 11x its requests."""

RETRY_BACKOFF_FACTOR_LIMIT = 10.0
"""Largest back-off growth a scenario may ask for (ratio): beyond it the delays outrun a day."""

# --- demand -------------------------------------------------------------------------------
INTENSITY_SHAPE = 2.0
"""Gamma shape of the personal intensity multiplier (mean 1), CV = 1/sqrt(2) ~ 0.71.
Source: TPD benchmark (shared/bench/params.py, GAMMA_SHAPE)."""


ACTIVITY_SIGMA = 0.0
"""Spread of the per-subscriber activity process (ln units). 0: no modulation, the model before
the ServeGen fit (chat and coder traces are reproduced by sessions alone); the API preset sets
its fitted value."""

ACTIVITY_TIMESCALE_S = 17_700.0
"""Correlation time of the activity process (s), used when ``activity_sigma`` > 0. Source:
ServeGen M-large's aggregate 10-minute rate (its CV after the hour-of-day shape and
autocorrelation at lags 10 min-6 h), fitted by ``tokensim calibrate`` (sim.calibration.activity;
scenarios/presets/api_servegen_m_large.yaml, se 15,000 s)."""

ARRIVAL_CV = 1.0
"""CV of the gaps between a subscriber's session starts (1). 1: Poisson sessions, the model of
the chat and coder presets, whose burstiness comes from requests clustered in sessions; the API
preset sets the value fitted on ServeGen's per-customer windows."""

# --- acquisition (Bass diffusion) ---------------------------------------------------------
BASS_P = 0.01
"""Innovation coefficient (1/month): ~0.03/year-scale p of Bass (1969) meta-analyses is
0.03 per year for durables; monthly digital services adopt faster. Assumption."""

BASS_Q = 0.15
"""Imitation coefficient (1/month). Assumption in the range of Sultan, Farley & Lehmann (1990)
mean q = 0.38/year scaled for faster digital diffusion."""

# --- latency targets ----------------------------------------------------------------------
SLO_TTFT_S = 2.0
"""Default TTFT target (s): MLPerf Inference LLM server scenario, P99 TTFT 2 s (MODEL.md s.5)."""

SLO_TPOT_S = 0.2
"""Default time-per-output-token target (s): MLPerf 70B server scenario TPOT 200 ms."""

# --- churn logit (see docs/model.md, "Renewal and churn") ---------------------------------
CHURN_PRICE_VALUE = 0.6
"""Logit change per unit of ln(paid / realised value). Assumption, calibrated so that a
subscriber paying e times its value churns ~1.8x as often at 7% base churn."""

CHURN_EXHAUSTED = 0.5
"""Logit change when the quota ran out in the month. Assumption (TPD uses +10 points on 5%)."""

CHURN_REFUSED = 1.5
"""Logit change per share of requests refused (cut-off, rate limit, concurrency) or abandoned
(left the queue for want of patience)."""

CHURN_THROTTLED = 0.8
"""Logit change per share of requests throttled (slow lane or downgrade)."""

CHURN_SLO_MISS = 2.0
"""Logit change per share of served requests that missed the SLO. TPD's linear rule adds
0.30 per share of slow requests; at 5% base churn this logit is ~2 per share near zero."""

CHURN_UNUSED = 0.6
"""Logit change per share of quota left unused (paid for, not used)."""

CHURN_TENURE = -0.25
"""Logit change per unit of ln(1 + tenure months): loyalty grows with tenure."""

UPGRADE_AFTER_MONTHS = 2
"""Consecutive exhausted months before a subscriber considers the next larger plan."""

UPGRADE_PROBABILITY = 0.5
"""Chance to move up once the streak is reached (per renewal)."""

DOWNGRADE_AFTER_MONTHS = 3
"""Consecutive wasteful months before a subscriber considers the next smaller plan."""

DOWNGRADE_USE_BELOW = 0.2
"""A month wastes quota when less than this share of it was used."""

DOWNGRADE_PROBABILITY = 0.3
"""Chance to move down once the streak is reached (per renewal)."""

CHOICE_TEMPERATURE = 20.0
"""Logit scale of plan choice (currency). Assumption for CNY plans of 10-300 CNY/month."""

THROTTLED_VALUE_SHARE = 0.5
"""A token served over quota under throttling is worth half a normal token to the chooser."""

# --- the book and market prices -------------------------------------------------------------
BOOK_TENURE_MEAN_MONTHS = 3.0
"""Mean tenure (months) of a book's subscribers at t=0 when the book gives counts. Assumption:
the operators' token packages are "still in the early stage of market launch"
(../shared/context, token-packages article), so a book is months old; state an older book's
tenure. Tenures are drawn geometric (the steady state of a constant churn hazard)."""

CHURN_REFERENCE_PRICE = 0.8
"""Logit change of churn per unit of ln(paid / the segment's market reference price), when a
reference is set. Derived from firm-level price elasticities of mobile subscriptions, -0.47 to
-1.1 (Dewenter and Haucap 2007, Austrian mobile operators, dynamic panel): at a monthly churn
p of a few percent, d ln(churn) / d ln(price) = coefficient * (1 - p), so 0.8 puts the churn
response in the middle of that range."""

ACQUISITION_PRICE_ELASTICITY = 0.8
"""Elasticity of sign-ups to the segment's price index against its market reference price
(sign-ups scale by (index / reference) ^ -elasticity), when a reference is set. The middle of
the firm-level range -0.47 to -1.1 (Dewenter and Haucap 2007)."""
