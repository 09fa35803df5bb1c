"""Renewal logit, plan choice, plan switching and overage billing as plain functions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.scenarios import small_dict, small_scenario

from sim.engine.acquisition import expected_signups_per_month
from sim.engine.billing import overage_due
from sim.engine.choice import choose_plans, plan_utility, switch_plans
from sim.engine.churn import churn_probability
from sim.scenario.loading import validate_data
from sim.scenario.schema import Churn
from sim.world.arrays import ChurnParams
from sim.world.build import build


@pytest.fixture(scope="module")
def world():
    return build(small_scenario())


def test_churn_params_carry_every_churn_field_of_the_scenario():
    assert [f.name for f in dataclasses.fields(ChurnParams)] == list(Churn.model_fields)
    s = small_scenario(churn={"tenure": -0.4, "upgrade_after_months": 4})
    c = build(s).churn
    assert dataclasses.asdict(c) == s.churn.model_dump()
    assert c.tenure == -0.4
    assert c.upgrade_after_months == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tenure = 0.0  # type: ignore[misc]


def _p(world, **kw):
    base = dict(
        seg=np.array([0]),
        paid=np.array([10.0]),
        value=np.array([10.0]),
        exhausted=np.array([False]),
        refused_share=np.array([0.0]),
        throttled_share=np.array([0.0]),
        slo_miss_share=np.array([0.0]),
        unused_share=np.array([0.0]),
        tenure_months=np.array([0]),
    )
    base.update({k: np.array([v]) for k, v in kw.items()})
    return float(churn_probability(world, **base)[0])


def test_churn_probability_is_the_intercept_for_a_satisfied_new_subscriber(world):
    b = world.seg.churn_intercept[0]
    assert _p(world) == pytest.approx(1 / (1 + np.exp(-b)))


@pytest.mark.parametrize(
    ("field", "worse"),
    [
        ("paid", 40.0),
        ("exhausted", True),
        ("refused_share", 0.5),
        ("throttled_share", 0.5),
        ("slo_miss_share", 0.5),
        ("unused_share", 0.9),
    ],
)
def test_each_frustration_raises_churn(world, field, worse):
    assert _p(world, **{field: worse}) > _p(world)


def test_tenure_lowers_churn_and_price_over_value_is_capped(world):
    assert _p(world, tenure_months=12) < _p(world)
    assert _p(world, value=1e-30) == pytest.approx(_p(world, value=10.0 / np.exp(3.0)))


def test_heavier_users_choose_larger_plans():
    d = small_dict()
    d["segments"][0]["value_per_mtok"] = 40.0  # tokens worth more than the pro plan's price
    world = build(validate_data(d))
    rng = np.random.default_rng(1)
    n = 20_000
    seg = np.zeros(n, dtype=np.int64)
    light = choose_plans(world, seg, np.full(n, 0.2), rng)
    heavy = choose_plans(world, seg, np.full(n, 8.0), rng)
    pro = world.plan.names.index("pro")
    assert (heavy == pro).mean() > (light == pro).mean() + 0.2


def test_choice_respects_eligibility(world):
    rng = np.random.default_rng(2)
    coder = world.seg.names.index("coder")
    got = choose_plans(world, np.full(1000, coder, dtype=np.int64), np.ones(1000), rng)
    assert set(got.tolist()) == {world.plan.names.index("pro")}


def test_plan_utility_prefers_payg_to_cutoff_for_demand_over_quota():
    d = small_dict()
    d["plans"].append(
        {
            **d["plans"][0],
            "name": "lite_payg",
            "on_exhaustion": {"rule": "payg", "price_per_munit": 1.0},
        }
    )
    d["segments"][0]["plans"].append("lite_payg")
    w = build(validate_data(d))
    u = plan_utility(w, np.array([0]), np.array([20.0]))[0]
    lite, payg = w.plan.names.index("lite"), w.plan.names.index("lite_payg")
    assert u[payg] > u[lite]  # same fee and quota; payg serves the excess below its value


def test_switching_moves_one_step_along_the_ladder(world):
    rng = np.random.default_rng(0)
    lite, pro = world.plan.names.index("lite"), world.plan.names.index("pro")
    n = 1000
    seg = np.zeros(n, dtype=np.int64)
    up = switch_plans(world, seg, np.full(n, lite), np.ones(n, bool), np.zeros(n, bool), rng)
    share_up = (up == pro).mean()
    assert share_up == pytest.approx(world.churn.upgrade_probability, abs=0.05)
    down = switch_plans(world, seg, np.full(n, pro), np.zeros(n, bool), np.ones(n, bool), rng)
    assert (down == lite).mean() == pytest.approx(world.churn.downgrade_probability, abs=0.05)
    # already at the top: nowhere to go
    top = switch_plans(world, seg, np.full(n, pro), np.ones(n, bool), np.zeros(n, bool), rng)
    assert (top == pro).all()


def test_overage_is_billed_in_whole_blocks_and_only_under_payg():
    d = small_dict()
    d["plans"][1]["on_exhaustion"] = {
        "rule": "payg",
        "price_per_munit": 4.0,
        "block_units": 1_000_000,
    }
    w = build(validate_data(d))
    lite, pro = 0, 1
    due = overage_due(w, np.array([pro, pro, pro, lite]), np.array([0.0, 1.0, 1e6 + 1, 5e6]))
    assert due.tolist() == pytest.approx([0.0, 4.0, 8.0, 0.0])


def test_bass_adoption_slows_as_the_market_saturates(world):
    k = world.seg.names.index("chat")
    m = world.seg.acq_market[k]
    counts = np.zeros(len(world.seg.names), dtype=np.int64)
    rates = []
    for n in (0.5 * m, 0.9 * m, m):
        counts[k] = int(n)
        rates.append(expected_signups_per_month(world, counts)[k])
    assert rates[0] > rates[1] > rates[2] == 0.0
