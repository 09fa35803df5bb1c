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
from support.scenarios import BATCHED_STEP, batched_dict, small_dict

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
