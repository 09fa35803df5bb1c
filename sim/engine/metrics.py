"""Metric names and units, declared once, and the accumulators a replication fills.

Three grains: per calendar month x plan x segment (subscribers, requests,
tokens, money), per hour x pool (cluster load), and, per month x hour of day x
pool x class, latency histograms (log-spaced bins, quantiles within 1.6%, see
sim.engine.resolution) and SLO counters (offered, served in class, met). The
hour-of-day grain is what busy-hour figures are read from (sim.results.busy_hour).
A request belongs to the calendar month and hour of day of its arrival; money to
the month it is billed in.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.accounting import (
    HOURLY_FILLED,
    KEY_MIN,
    MANTISSA_SHIFT,
    REQUEST_METRICS,
    SLO_COUNTS,
    tally_day,
)
from sim.engine.demand import Requests
from sim.engine.population import Population
from sim.engine.resolution import HIST_MANTISSA_BITS, HIST_OCTAVES
from sim.engine.windows import WINDOW_METRICS
from sim.units import HOURS_PER_DAY
from sim.world.arrays import World

# name -> (unit, description); the monthly table by month x plan x segment
MONTHLY: dict[str, tuple[str, str]] = {
    "subscribers_start": ("subscribers", "active at the start of the month"),
    "subscribers_end": ("subscribers", "active at the end of the month"),
    "new": ("subscribers", "signed up during the month"),
    "renewals": ("subscribers", "renewal decisions taken (renewed + churned)"),
    "churned": ("subscribers", "left at a renewal"),
    "switched_in": ("subscribers", "moved to this plan at a renewal"),
    "switched_out": ("subscribers", "moved away from this plan at a renewal"),
    "migrated": ("subscribers", "moved off a retired plan at a renewal (also switched_out)"),
    "trial_converted": ("subscribers", "took a paid plan at the end of a free trial"),
    "trial_lapsed": ("subscribers", "left at the end of a free trial (also churned)"),
    "submonths": ("subscriber-months", "billing months started (sign-ups, renewals, initial)"),
    "exhausted": ("subscriber-months", "billing months in which the quota was crossed"),
    "requests": ("requests", "requests made (a retry is a request of its own)"),
    "retries": ("requests", "requests that retry one abandoned or refused earlier (segment retry)"),
    "served": ("requests", "requests admitted (including throttled)"),
    "throttled": ("requests", "admitted over quota on the slow lane or a cheaper model"),
    "refused_quota": ("requests", "refused: quota exhausted (cut-off or declined top-up)"),
    "refused_throttle": ("requests", "refused: throttled within the minimum gap"),
    "refused_concurrency": ("requests", "refused: concurrency limit reached"),
    "refused_capacity": ("requests", "refused: the model's pool has no working GPU"),
    "abandoned": (
        "requests",
        "admitted, then left the queue: the first token would have come after the user's"
        " patience (no quota, no GPU time)",
    ),
    "refused_window": (
        "requests",
        "refused: a usage window of the plan was full and its user gave the request up",
    ),
    "deferred": (
        "requests",
        "found a usage window full and sent again by their users when it rolled (also counted"
        " by the outcome of that re-send)",
    ),
    "slo_met": ("requests", "served in their SLA class and meeting every SLO target"),
    "slo_counted": ("requests", "served in their SLA class (the SLO denominator)"),
    "tokens_requested": ("tokens", "input + output tokens of every request"),
    "tokens_served": ("tokens", "input + output tokens of admitted requests"),
    "tokens_refused": ("tokens", "input + output tokens of refused requests"),
    "tokens_throttled": ("tokens", "input + output tokens of throttled requests"),
    "tokens_abandoned": ("tokens", "input + output tokens of abandoned requests"),
    "input_miss_tokens": ("tokens", "served uncached input tokens"),
    "input_hit_tokens": ("tokens", "served cached input tokens"),
    "output_tokens": ("tokens", "served output tokens"),
    "revenue_fees": ("currency", "monthly fees billed"),
    "revenue_overage": ("currency", "pay-as-you-go overage billed"),
    "revenue_topups": ("currency", "top-up packs sold"),
    "discounts": ("currency", "fees waived by promotions (list fee less the fee billed)"),
    "api_list_value": ("currency", "served tokens valued at the catalog's API list prices"),
    "peak_extra_units": (
        "quota units",
        "quota units that peak-hour weights charged admitted requests beyond their face value",
    ),
}

# name -> (unit, description); the hourly table by hour x pool
HOURLY: dict[str, tuple[str, str]] = {
    "gpus": ("GPUs", "cards paid for"),
    "slots": ("slots", "working batch slots"),
    "arrivals": ("requests", "admitted requests arriving in the hour"),
    "started": ("requests", "requests starting service in the hour"),
    "wait_sum_s": ("s", "sum of queue waits of requests starting in the hour"),
    "slo_met": ("requests", "requests starting in the hour that met their SLO"),
    "slo_counted": ("requests", "requests starting in the hour with an SLO"),
    "busy_slot_s": (
        "slot-s",
        "slot-seconds of service inside the hour (batched pools: places held in a batch)",
    ),
    "offered": ("requests", "requests arriving in the hour for the pool, refused ones included"),
    "offered_slot_s": (
        "slot-s",
        "slot-seconds of work arriving in the hour that reached the pool (offered load x 3600)",
    ),
    "deferred": (
        "requests",
        "requests first sent in the hour that found a usage window full and were sent again"
        " when it rolled (their re-sends arrive, and count as offered, in a later hour)",
    ),
    "gpu_cost": ("currency", "cost of the cards paid for in the hour"),
}

LATENCY = ("wait_s", "ttft_s", "tpot_s", "e2e_s")
"""Latency metrics histogrammed per request (the axis before the bins in Accumulators.hist)."""
N_BINS = HIST_OCTAVES * 2**HIST_MANTISSA_BITS + 1
HOURS_MARGIN = 48
"""Hours kept beyond the horizon for service that ends after the last day."""


def bin_value(b: NDArray[np.int64] | int) -> NDArray[np.float64]:
    """Representative value of a latency bin: the geometric centre of its edges (0 for bin 0)."""
    b = np.atleast_1d(np.asarray(b, dtype=np.int64))
    key = np.maximum(b - 1, 0) + KEY_MIN
    lo = (key << MANTISSA_SHIFT).view(np.float64)
    hi = ((key + 1) << MANTISSA_SHIFT).view(np.float64)
    return np.where(b == 0, 0.0, np.sqrt(lo * hi))


def hist_quantiles(h: NDArray[np.integer], q: float) -> NDArray[np.float64]:
    """Quantile q of every histogram along the last axis (NaN where a histogram is empty).

    The value is the centre of the first bin whose cumulative count reaches q x total, so it
    is within 1.6% of the sample quantile
    (sim.engine.resolution.HIST_RELATIVE_ERROR).
    """
    c = np.cumsum(h, axis=-1, dtype=np.int64)
    total = c[..., -1:]
    k = (c < q * total).sum(axis=-1)
    centre = bin_value(np.arange(h.shape[-1]))
    return np.where(total[..., 0] > 0, centre[np.minimum(k, h.shape[-1] - 1)], np.nan)


def hist_quantile(h: NDArray[np.int64], q: float) -> float:
    """Quantile q of one histogram over the latency bins (NaN when empty)."""
    return float(hist_quantiles(h, q))


class NonFiniteResultError(ArithmeticError):
    """A replication's table holds an infinite or NaN value: the run must not be reported."""


class Accumulators:
    """Every counter a replication fills, as dense arrays (dict entries are views)."""

    def check_finite(self) -> None:
        """Raise NonFiniteResultError naming the first table holding an inf or NaN.

        Called once per replication, after its last day (one pass over each table, not per
        request): scenarios are validated finite and bounded (sim.scenario.limits), so a
        non-finite total means a kernel overflowed, and the run must fail rather than be
        written as complete with ``tokens_served = inf``.
        """
        tables: dict[str, NDArray] = {f"monthly.{k}": v for k, v in self.monthly.items()}
        tables |= {f"hourly.{k}": v for k, v in self.hourly.items()}
        tables |= {"model_tokens": self.model_tokens, "wait_sum": self.wait_sum, "slo": self.slo}
        tables |= {"window": self.window}
        for name, v in tables.items():
            if not np.isfinite(v).all():
                raise NonFiniteResultError(f"non-finite value in the replication's table {name}")

    def __init__(self, world: World):
        w = world
        months, n_p, n_s = w.horizon_months, len(w.plan.names), len(w.seg.names)
        n_pool, n_c = len(w.pool.names), len(w.cls.names) + 1
        self.world = w
        self.req_monthly = np.zeros((months, len(REQUEST_METRICS), n_p, n_s))
        self.monthly = {k: np.zeros((months, n_p, n_s)) for k in MONTHLY}
        for j, k in enumerate(REQUEST_METRICS):
            self.monthly[k] = self.req_monthly[:, j]
        hours = w.horizon_days * 24 + HOURS_MARGIN
        self.hourly_filled = np.zeros((hours, n_pool, len(HOURLY_FILLED)))
        self.hourly = {k: np.zeros((hours, n_pool)) for k in HOURLY}
        for j, k in enumerate(HOURLY_FILLED):
            self.hourly[k] = self.hourly_filled[:, :, j]
        # month x hour of day x pool x class x metric x bin; int32: a bin of one month-hour
        # holds far fewer than 2^31 requests, and half the memory of int64 (sums upcast)
        self.hist = np.zeros(
            (months, HOURS_PER_DAY, n_pool, n_c, len(LATENCY), N_BINS), dtype=np.int32
        )
        self.model_tokens = np.zeros((months, len(w.model_names), 3))
        self.wait_sum = np.zeros((months, n_pool, n_c))
        # month x hour of day x pool x class x SLO_COUNTS (offered, counted, met)
        self.slo = np.zeros((months, HOURS_PER_DAY, n_pool, n_c, len(SLO_COUNTS)))
        # usage windows: month x WINDOW_METRICS x plan x segment x window slot
        n_k = w.win.kind.shape[1]
        self.window = np.zeros((months, len(WINDOW_METRICS), n_p, n_s, n_k))

    def add_ps(self, name: str, month: int, plan: NDArray, seg: NDArray, w: NDArray | None = None):
        """Add counts (or weights ``w``) at (month, plan, seg)."""
        n_s = len(self.world.seg.names)
        n_p = len(self.world.plan.names)
        self.monthly[name][month] += np.bincount(
            plan * n_s + seg, weights=w, minlength=n_p * n_s
        ).reshape(n_p, n_s)

    def account_requests(self, pop: Population, req: Requests, out: dict, day: int) -> None:
        """Fold one day's request outcomes into the subscriber counters and the tables."""
        w = self.world
        month = w.month_of(day)
        retries = out["attempt"] > 0
        if len(retries) == len(req.t) and retries.any():  # (a 1-row placeholder: no retries)
            subs = req.sub[retries]
            self.add_ps("retries", month, pop.plan[subs], pop.seg[subs])
        pl, po, cl = w.plan, w.pool, w.cls
        # every argument by keyword: a renamed or reordered kernel parameter fails loudly
        tally_day(
            t=req.t,
            sub=req.sub,
            model=req.model,
            inp=req.input,
            cached=req.cached,
            output=req.output,
            outcome=out["outcome"],
            pool_used=out["pool_used"],
            occ=out["occ"],
            start=out["start"],
            first=out["first"],
            end=out["end"],
            decode_start=out["decode_start"],
            over=out["over"],
            bought=out["bought"],
            defers=out["defers"],
            t0=out["t0"],
            charge=out["charge"],
            sub_plan=pop.plan,
            sub_seg=pop.seg,
            sub_counters=pop.counters,
            tokens_by_model=pop.tokens_by_model,
            plan_rule=pl.rule,
            plan_class=pl.sla_class,
            pack_price=pl.pack_price,
            prefill_rate=po.prefill_rate,
            tpot=po.tpot_s,
            batched=po.batched,
            disaggregated=po.disaggregated,
            slo_ttft=cl.ttft_s,
            slo_tpot=cl.tpot_s,
            slo_wait=cl.wait_s,
            price_miss=po.price_miss,
            price_hit=po.price_hit,
            price_out=po.price_out,
            n_class=len(cl.names),
            pool_model=po.pool_model,
            track_models=w.write_ledger,
            peak=w.win.peak,
            week_offset=w.start_weekday * HOURS_PER_DAY,
            monthly=self.req_monthly[month],
            hist=self.hist[month],
            wait_sum=self.wait_sum[month],
            slo=self.slo[month],
            model_tokens=self.model_tokens[month],
            hourly=self.hourly_filled,
        )
