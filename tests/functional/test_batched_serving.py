"""Batched serving in whole runs: conservation, days that end with work in flight, direction.

The kernel is checked against a step-by-step reference and queueing theory in
tests/theory/test_batching.py; here the small scenario's pools run ``serving: batched`` inside
the engine (demand, plans, churn, accounting) for a month: every conservation law still
holds, requests that are running or queued at midnight finish with consistent times, more
load raises TPOT (which the slot model keeps constant), a context larger than the KV budget is
refused, and a batched pool without step-time coefficients is a scenario error naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.conservation import check_all
from support.scenarios import BATCHED_STEP, batched_dict, disaggregated_dict, small_dict

from sim.engine.replication import run_replication
from sim.experiments.runner import run_scenario
from sim.results.tables import RunResult
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data
from sim.world.build import build

SEED = 5


def batched(subscribers: float = 1.0, patience: bool = False) -> dict[str, Any]:
    """One month of the small scenario, both pools batched, demand times ``subscribers``."""
    return batched_dict(subscribers, patience, horizon_months=1)


@pytest.fixture(scope="module")
def busy() -> RunResult:
    """Demand x90 and impatient users: the big pool's peak hours near capacity, queues."""
    return run_scenario(validate_data(batched(90, patience=True)), SEED, replications=1)


def test_every_conservation_law_holds_with_batched_pools(busy: RunResult):
    check_all(busy)  # requests, tokens, money, subscribers, SLO and histogram counts
    m = busy.replications[0].acc.monthly
    assert float(m["abandoned"].sum()) > 0, "the scenario is meant to make users leave"
    assert float(m["served"].sum()) > 10_000


def test_requests_in_flight_at_midnight_finish_with_ordered_times():
    """Every served request (also those carried past midnight) has t <= start <= first <= end,
    with first - start at least one step, and the run carries work across day ends."""
    s = validate_data(batched(90))
    w = build(s)
    r = run_replication(w, seed=SEED, export_days=(0, w.horizon_days))
    x = r.requests_export
    assert x is not None
    served = x[x["ttft_s"].notna()]
    assert len(served) > 10_000
    wait, ttft, e2e = served["wait_s"], served["ttft_s"], served["e2e_s"]
    assert (wait >= 0).all()
    assert (ttft >= wait + BATCHED_STEP["base_s"] - 1e-9).all()
    assert (e2e >= ttft - 1e-9).all()
    assert np.isfinite(served["tpot_s"]).all()
    # some requests were still running when their day ended (the carry path ran)
    day_end = (served["day"] + 1) * 86_400.0
    finished_late = (served["timestamp_s"] + e2e) > day_end
    assert finished_late.sum() > 0


def test_more_load_raises_tpot_on_batched_pools_not_on_slot_pools():
    def tpot_p95(d: dict[str, Any]) -> float:
        r = run_scenario(validate_data(d), SEED, replications=1)
        lat = r.latency()
        row = lat[(lat["pool"] == "big") & (lat["sla_class"] == "all")]
        return float(row["tpot_p95_s"].iloc[0])

    light, heavy = tpot_p95(batched(5)), tpot_p95(batched(70))
    assert heavy > 1.5 * light, (light, heavy)
    slots = small_dict(horizon_months=1)
    slots_heavy = small_dict(horizon_months=1)
    for g in slots_heavy["segments"]:
        g["initial_subscribers"] *= 70
    # the slot model's TPOT is the pool's constant whatever the load
    assert tpot_p95(slots) == pytest.approx(tpot_p95(slots_heavy))


def test_a_context_larger_than_the_kv_budget_is_refused():
    d = batched(1)
    d["catalog"]["models"][0]["serving"][0]["step_time"]["kv_cache_tokens_per_replica"] = 3_000
    r = run_scenario(validate_data(d), SEED, replications=1)
    m = r.replications[0].acc.monthly
    assert float(m["refused_capacity"].sum()) > 100  # long inputs to ``big`` cannot fit
    check_all(r)


def test_a_batched_pool_needs_step_times():
    d = batched(1)
    del d["catalog"]["models"][1]["serving"][0]["step_time"]
    with pytest.raises(ScenarioError) as e:
        validate_data(d)
    assert "cluster.pools[1].serving" in str(e.value)
    assert "step_time" in str(e.value)


# --------------------------------------------------------------------------- disaggregated


def disaggregated(prefill: int, decode: int, subscribers: float = 90) -> dict[str, Any]:
    """One month, pool ``big`` on separate prefill and decode cards, impatient users."""
    return disaggregated_dict(prefill, decode, subscribers, patience=True, horizon_months=1)


@pytest.fixture(scope="module")
def split() -> RunResult:
    return run_scenario(validate_data(disaggregated(2, 2)), SEED, replications=1)


def test_every_conservation_law_holds_with_a_disaggregated_pool(split: RunResult):
    check_all(split)  # includes GPU cost = (prefill + decode cards) x hours x price
    m = split.replications[0].acc.monthly
    assert float(m["served"].sum()) > 10_000
    hourly = split.hourly()
    big = hourly[hourly["pool"] == "big"]
    assert (big["gpus"] == 4).all()  # 2 prefill + 2 decode cards
    # places: (prefill + decode replicas) x batch slots, and they were used
    assert big["busy_slot_s"].sum() > 0


def test_disaggregated_times_are_ordered_and_carried_over_midnight():
    w = build(validate_data(disaggregated(2, 2)))
    r = run_replication(w, seed=SEED, export_days=(0, w.horizon_days))
    x = r.requests_export
    assert x is not None
    served = x[(x["pool"] == "big") & x["ttft_s"].notna()]
    assert len(served) > 10_000
    assert (served["wait_s"] >= 0).all()
    assert (served["ttft_s"] >= served["wait_s"] + BATCHED_STEP["base_s"] - 1e-9).all()
    assert (served["e2e_s"] >= served["ttft_s"] - 1e-9).all()
    assert np.isfinite(served["tpot_s"]).all()
    day_end = (served["day"] + 1) * 86_400.0
    assert ((served["timestamp_s"] + served["e2e_s"]) > day_end).sum() > 0


def test_decode_cards_lower_tpot_and_leave_ttft_alone():
    """Same demand, 1 vs 3 decode cards: TPOT p95 falls, TTFT p95 hardly moves (the prefill
    side is the same; only churn feedback through subscribers differs)."""

    def p95(decode: int) -> tuple[float, float]:
        w = build(validate_data(disaggregated(2, decode)))
        x = run_replication(w, seed=SEED, export_days=(0, 7)).requests_export
        assert x is not None
        big = x[(x["pool"] == "big") & x["ttft_s"].notna()]
        return float(big["ttft_s"].quantile(0.95)), float(big["tpot_s"].quantile(0.95))

    ttft1, tpot1 = p95(1)
    ttft3, tpot3 = p95(3)
    assert tpot3 < 0.8 * tpot1, (tpot1, tpot3)
    assert ttft3 == pytest.approx(ttft1, rel=0.05)


def test_disaggregation_needs_batched_serving_and_whole_decode_replicas():
    d = disaggregated(2, 2)
    d["cluster"]["pools"][0]["serving"] = "slots"
    with pytest.raises(ScenarioError) as e:
        validate_data(d)
    assert "cluster.pools[0].disaggregated" in str(e.value)
    d = disaggregated(2, 2)
    d["catalog"]["models"][0]["serving"][0]["gpus_per_replica"] = 2
    d["cluster"]["pools"][0]["disaggregated"]["decode_gpus"] = 1
    with pytest.raises(ScenarioError) as e:
        validate_data(d)
    assert "cluster.pools[0].disaggregated.decode_gpus" in str(e.value)
