"""Headline KPIs: their names, units and definitions, per replication, and their intervals."""

from __future__ import annotations

import numpy as np

from sim.engine.metrics import hist_quantile
from sim.engine.replication import ReplicationResult
from sim.results.busy_hour import worst_busy_hour
from sim.results.intervals import CI_LEVEL, Bounds, bounded_ci
from sim.units import HOURS_PER_DAY, SECONDS_PER_HOUR, TOKENS_PER_MTOK

# headline KPI -> (unit, description); every one is computed per replication
KPIS: dict[str, tuple[str, str]] = {
    "subscribers_end": ("subscribers", "active subscribers at the end of the horizon"),
    "churn_rate_monthly": ("share", "mean over months of churned / renewal decisions"),
    "revenue_fees": ("currency", "monthly fees billed over the horizon"),
    "revenue_overage": ("currency", "pay-as-you-go overage billed"),
    "revenue_topups": ("currency", "top-up packs sold"),
    "revenue_total": ("currency", "fees + overage + top-ups"),
    "gpu_cost": ("currency", "GPU-hours paid for times their price"),
    "gross_margin": ("currency", "revenue_total - gpu_cost"),
    "gross_margin_share": ("share", "gross_margin / revenue_total"),
    "requests": ("requests", "requests made"),
    "tokens_served": ("tokens", "input + output tokens served"),
    "refused_share": ("share", "requests refused / requests made"),
    "abandoned_share": (
        "share",
        "requests that left the queue for want of patience / requests made",
    ),
    "throttled_share": ("share", "requests throttled / requests made"),
    "deferred_share": (
        "share",
        "requests that found a usage window full and were sent again when it rolled / requests"
        " made (each request once, however often it was deferred)",
    ),
    "wait_mean_s": ("s", "mean queue wait of served requests"),
    "wait_p95_s": ("s", "95th percentile queue wait of served requests"),
    "ttft_p95_s": ("s", "95th percentile time to first token, requests in their SLA class"),
    "slo_attainment_served": (
        "share",
        "requests meeting every SLO target / requests served in their SLA class (refusals and"
        " throttled requests left out)",
    ),
    "goodput_share": (
        "share",
        "requests served in their SLA class within every SLO target / all requests made"
        " (refused and throttled requests count as misses)",
    ),
    "gpu_utilisation": ("share", "busy slot-seconds / working slot-seconds, whole horizon"),
    "busy_hour_utilisation": (
        "share",
        "worst pool and month: busy slot-seconds / working slot-seconds at the busy hour"
        " (the hour of day with the most offered load over the month, ITU-T E.500)",
    ),
    "busy_hour_ttft_p95_s": (
        "s",
        "worst pool and month: TTFT p95 of requests in an SLA class arriving at the busy hour",
    ),
    "busy_hour_deferred_share": (
        "share",
        "worst pool and month: requests arriving at the busy hour that a usage window deferred"
        " to a later hour / requests arriving at the busy hour",
    ),
    "exhausted_share": ("share", "subscriber-months that crossed their quota / all started"),
    "effective_price_per_mtok": ("currency/1M tokens", "revenue_total per 1M tokens served"),
    "api_list_value": ("currency", "served tokens valued at API list prices"),
}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


SIGNED_KPIS = frozenset({"gross_margin", "gross_margin_share"})
"""KPIs that can be negative (a loss) although their unit is money or a share."""


def bounds_of_unit(unit: str) -> Bounds:
    """The range of a quantity in ``unit``: shares in [0, 1], every other unit we use >= 0."""
    return "unit" if unit == "share" else "nonneg"


def kpi_bounds(name: str) -> Bounds:
    """The range of a headline KPI (:data:`KPIS`), for its confidence interval."""
    return "none" if name in SIGNED_KPIS else bounds_of_unit(KPIS[name][0])


def mean_ci(x: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (NaN bounds with fewer than two values).

    For a quantity that can take any sign (a difference, a margin); a KPI's own interval is
    :func:`kpi_ci`, which respects its range.
    """
    return bounded_ci(x, "none", level)


def kpi_ci(name: str, x: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and confidence interval of KPI ``name`` over replications, inside its range."""
    return bounded_ci(x, kpi_bounds(name), level)


def replication_kpis(r: ReplicationResult) -> dict[str, float]:
    """Headline KPIs of one replication (see KPIS)."""
    w, a = r.world, r.acc
    tot = {k: float(v.sum()) for k, v in a.monthly.items()}
    hours = w.horizon_days * HOURS_PER_DAY
    rev = tot["revenue_fees"] + tot["revenue_overage"] + tot["revenue_topups"]
    cost = float(a.hourly["gpu_cost"][:hours].sum())
    churn = a.monthly["churned"].sum(axis=(1, 2))
    ren = a.monthly["renewals"].sum(axis=(1, 2))
    rates = churn[ren > 0] / ren[ren > 0]
    served = tot["served"]
    all_wait = a.hist[..., 0, :].sum(axis=(0, 1, 2, 3), dtype=np.int64)
    ttft = a.hist[..., :-1, 1, :].sum(axis=(0, 1, 2, 3), dtype=np.int64)
    cap = float(a.hourly["slots"][:hours].sum()) * SECONDS_PER_HOUR
    return {
        "replication": r.replication,
        "subscribers_end": float(a.monthly["subscribers_end"][-1].sum()),
        "churn_rate_monthly": float(rates.mean()) if len(rates) else float("nan"),
        "revenue_fees": tot["revenue_fees"],
        "revenue_overage": tot["revenue_overage"],
        "revenue_topups": tot["revenue_topups"],
        "revenue_total": rev,
        "gpu_cost": cost,
        "gross_margin": rev - cost,
        "gross_margin_share": _ratio(rev - cost, rev),
        "requests": tot["requests"],
        "tokens_served": tot["tokens_served"],
        "refused_share": _ratio(tot["requests"] - served - tot["abandoned"], tot["requests"]),
        "abandoned_share": _ratio(tot["abandoned"], tot["requests"]),
        "throttled_share": _ratio(tot["throttled"], tot["requests"]),
        "deferred_share": _ratio(tot["deferred"], tot["requests"]),
        "wait_mean_s": _ratio(float(a.wait_sum.sum()), served),
        "wait_p95_s": hist_quantile(all_wait, 0.95),
        "ttft_p95_s": hist_quantile(ttft, 0.95),
        "slo_attainment_served": _ratio(tot["slo_met"], tot["slo_counted"]),
        "goodput_share": _ratio(tot["slo_met"], tot["requests"]),
        "gpu_utilisation": _ratio(float(a.hourly["busy_slot_s"][:hours].sum()), cap),
        **worst_busy_hour(r),
        "exhausted_share": _ratio(tot["exhausted"], tot["submonths"]),
        "effective_price_per_mtok": _ratio(rev * TOKENS_PER_MTOK, tot["tokens_served"]),
        "api_list_value": tot["api_list_value"],
    }


# ---------------------------------------------------------------------- the run folder
