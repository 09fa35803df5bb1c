"""Directional checks: change one lever of the small scenario, the outcome moves the right way.

Each comparison runs both variants with the same seeds (common random numbers: the demand
draws are shared) and uses a large change of the lever, so the expected direction is not a
matter of luck. Where a segment's plan matters, the segment is offered a single plan, so that
plan choice does not blur the comparison.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from support.scenarios import small_dict

from sim.experiments.runner import run_scenario
from sim.results.tables import RunResult
from sim.scenario.loading import validate_data

SEEDS = (1, 2)


def runs(d: dict[str, Any], seeds: tuple[int, ...] = SEEDS) -> list[RunResult]:
    s = validate_data(d)
    return [run_scenario(s, seed=seed) for seed in seeds]


def total(r: RunResult, metric: str, plan: str | None = None, segment: str | None = None) -> float:
    """A monthly metric summed over months (and plans/segments unless one is named)."""
    rep = r.replications[0]
    a = rep.acc.monthly[metric]
    if plan is not None:
        a = a[:, rep.world.plan.names.index(plan)]
        if segment is not None:
            a = a[:, rep.world.seg.names.index(segment)]
    elif segment is not None:
        a = a[:, :, rep.world.seg.names.index(segment)]
    return float(a.sum())


def refused(r: RunResult, plan: str | None = None) -> float:
    return total(r, "requests", plan) - total(r, "served", plan)


def compare(
    base: dict[str, Any], edit: Callable[[dict[str, Any]], None], seeds: tuple[int, ...] = SEEDS
) -> tuple[list[RunResult], list[RunResult]]:
    """Runs of ``base`` and of ``base`` changed by ``edit``, with the same seeds."""
    other = copy.deepcopy(base)
    edit(other)
    return runs(base, seeds), runs(other, seeds)


def chat_on_lite_only(**lite: Any) -> dict[str, Any]:
    """Chat subscribers may only take 'lite' (cut-off, small quota unless overridden)."""
    d = small_dict(horizon_months=1)
    d["segments"][0]["plans"] = ["lite"]
    d["plans"][0]["quota"]["amount"] = 100_000
    d["plans"][0].update(lite)
    return d


# --------------------------------------------------------------------------- capacity


def test_more_gpus_shorten_the_queue():
    d = small_dict(horizon_months=1)
    for m in d["catalog"]["models"]:  # one slow slot per GPU: the 'big' pool is congested
        sv = m["serving"][0]
        sv["batch_slots_per_replica"] = 1
        sv["prefill_tokens_per_s_per_gpu"] /= 8
        sv["decode_tokens_per_s_per_gpu"] /= 8
    d["cluster"]["pools"][0]["gpus"] = 1

    def more(x: dict[str, Any]) -> None:
        x["cluster"]["pools"][0]["gpus"] = 4

    few, many = compare(d, more)
    for a, b in zip(few, many, strict=True):
        ka, kb = a.kpis().iloc[0], b.kpis().iloc[0]
        assert ka["wait_p95_s"] > 2.0, "the base case should be congested"
        assert kb["wait_p95_s"] < 0.5 * ka["wait_p95_s"]
        assert kb["wait_mean_s"] < 0.2 * ka["wait_mean_s"]
        assert kb["gpu_utilisation"] < ka["gpu_utilisation"]
        assert kb["slo_attainment_served"] >= ka["slo_attainment_served"]


# --------------------------------------------------------------------------- price and quota


def test_a_higher_price_does_not_lower_churn():
    # coders are the only segment of 'pro' and may take nothing else; quota never runs out
    d = small_dict(horizon_months=2)
    d["segments"][0]["plans"] = ["lite"]
    d["segments"][0]["initial_subscribers"] = 30
    d["segments"][1]["initial_subscribers"] = 400
    d["plans"][1]["price_per_month"] = 10.0
    d["plans"][1]["quota"]["amount"] = 1e10

    def dearer(x: dict[str, Any]) -> None:
        x["plans"][1]["price_per_month"] = 200.0

    cheap, dear = compare(d, dearer)

    def rate(rs: list[RunResult]) -> float:
        churned = sum(total(r, "churned", "pro", "coder") for r in rs)
        return churned / sum(total(r, "renewals", "pro", "coder") for r in rs)

    assert sum(total(r, "renewals", "pro", "coder") for r in cheap) > 300
    assert rate(dear) >= rate(cheap)
    assert rate(dear) > 1.5 * rate(cheap)  # the price term is large at 20x the price
    # per seed, too: same demand, same churn draws
    for a, b in zip(cheap, dear, strict=True):
        assert total(b, "churned", "pro") >= total(a, "churned", "pro")


def test_a_larger_quota_exhausts_fewer_subscriber_months():
    small_quota, large_quota = compare(
        chat_on_lite_only(), lambda x: x["plans"][0]["quota"].update(amount=5_000_000)
    )

    def share(rs: list[RunResult]) -> float:
        return sum(total(r, "exhausted", "lite") for r in rs) / sum(
            total(r, "submonths", "lite") for r in rs
        )

    assert share(small_quota) > 0.2
    assert share(large_quota) < 0.5 * share(small_quota)
    for a, b in zip(small_quota, large_quota, strict=True):
        assert total(b, "exhausted", "lite") < total(a, "exhausted", "lite")
        assert total(b, "refused_quota", "lite") < total(a, "refused_quota", "lite")


# --------------------------------------------------------------------------- exhaustion rules


def test_throttle_refuses_less_and_throttles_more_than_cutoff():
    cutoff, throttle = compare(
        chat_on_lite_only(),
        lambda x: x["plans"][0].update(
            on_exhaustion={"rule": "throttle", "mode": "slow_lane", "min_gap_s": 60.0}
        ),
    )
    for a, b in zip(cutoff, throttle, strict=True):
        assert total(a, "throttled", "lite") == 0
        assert total(b, "throttled", "lite") > 100
        assert refused(b, "lite") < 0.8 * refused(a, "lite")
        assert total(b, "refused_quota", "lite") == 0
        assert total(b, "refused_throttle", "lite") > 0  # the gap binds inside sessions


def test_payg_bills_overage_and_refuses_nothing_for_quota():
    cutoff, payg = compare(
        chat_on_lite_only(),
        lambda x: x["plans"][0].update(on_exhaustion={"rule": "payg", "price_per_munit": 4.0}),
    )
    for a, b in zip(cutoff, payg, strict=True):
        assert total(a, "refused_quota", "lite") > 0
        assert total(a, "revenue_overage", "lite") == 0
        assert total(b, "refused_quota", "lite") == 0
        assert total(b, "revenue_overage", "lite") > 0
        assert total(b, "tokens_served", "lite") > total(a, "tokens_served", "lite")


def test_auto_topup_sells_packs_where_cutoff_refuses():
    cutoff, topup = compare(
        chat_on_lite_only(),
        lambda x: x["plans"][0].update(
            on_exhaustion={"rule": "topup", "pack_units": 100_000, "pack_price": 5.0}
        ),
    )
    for a, b in zip(cutoff, topup, strict=True):
        assert total(a, "revenue_topups") == 0
        assert total(b, "revenue_topups", "lite") > 0
        assert total(b, "revenue_topups", "lite") % 5.0 == 0  # whole packs
        assert total(b, "refused_quota", "lite") < 0.5 * total(a, "refused_quota", "lite")


# --------------------------------------------------------------------------- concurrency


def test_concurrency_limit_of_one_refuses_a_bursty_segment():
    d = small_dict(horizon_months=1)
    d["segments"][1].update(requests_per_session=10.0, think_time_s=2.0)  # coders: bursts
    unlimited, limited = compare(d, lambda x: x["plans"][1].update(concurrency_limit=1))
    for a, b in zip(unlimited, limited, strict=True):
        assert total(a, "refused_concurrency") == 0
        assert total(b, "refused_concurrency", "pro", "coder") > 0.05 * total(
            b, "requests", "pro", "coder"
        )
        # the limit belongs to 'pro': 'lite' subscribers are never refused for it
        assert total(b, "refused_concurrency", "lite") == 0
