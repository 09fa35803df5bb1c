"""Scenario options: demand scale, horizon, single-value overrides, and the one-replica check."""

from __future__ import annotations

import math

import pytest
from support.scenarios import small_dict, small_scenario

import sim.experiments.sweep as sweep_module
from sim.scenario import adjust
from sim.scenario.adjust import (
    ACQUISITION_VOLUME,
    MAX_DEMAND_SCALE,
    adjust_scenario,
    horizon_bounds,
    parse_demand_scale,
    parse_set_values,
    parse_value,
    scale_demand,
    set_horizon,
)
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import union_tags, validate_data
from sim.scenario.schema import Acquisition, Bass, Constant, Scenario

SWEEP = {"parameters": {"plans.lite.price_per_month": [9.9, 19.9]}}


def _volumes(s: Scenario) -> dict[str, tuple[int, float]]:
    """Per segment: initial subscribers and the acquisition volume field's value."""
    out = {}
    for g in s.segments:
        a = g.acquisition
        out[g.name] = (g.initial_subscribers, getattr(a, ACQUISITION_VOLUME[a.model]))
    return out


# --------------------------------------------------------------------------- parsing


def test_parse_demand_scale_reads_all_and_named_segments():
    assert parse_demand_scale([]) == {}
    assert parse_demand_scale(["2"]) == {None: 2.0}
    assert parse_demand_scale(["chat=1.5", " 3 "]) == {"chat": 1.5, None: 3.0}
    assert parse_demand_scale([f"{MAX_DEMAND_SCALE:g}"]) == {None: MAX_DEMAND_SCALE}


@pytest.mark.parametrize(
    "option",
    ["0", "-1", "nan", "inf", "-inf", "abc", "", "chat=", "=2", "chat=0", "1e9", "chat=x"],
)
def test_parse_demand_scale_refuses_bad_text_naming_the_option(option: str):
    with pytest.raises(ScenarioError) as e:
        parse_demand_scale([option])
    assert [p for p, _ in e.value.problems] == ["--demand-scale"]
    assert f"'{option}'" in e.value.problems[0][1]


def test_parse_demand_scale_refuses_a_factor_given_twice():
    with pytest.raises(ScenarioError, match="twice"):
        parse_demand_scale(["2", "3"])
    with pytest.raises(ScenarioError, match="chat"):
        parse_demand_scale(["chat=2", "chat=3"])


def test_parse_set_values_reads_yaml_scalars():
    got = parse_set_values(["a.b=3", "c.d=1.5", "e=true", "f=payg", "g = 2"])
    assert got == {"a.b": 3, "c.d": 1.5, "e": True, "f": "payg", "g": 2}
    assert isinstance(got["a.b"], int)
    assert isinstance(got["e"], bool)


@pytest.mark.parametrize("option", ["a.b", "=1", "a.b=", "a.b=[1, 2]", "a.b={x: 1}", "a.b=~"])
def test_parse_set_values_refuses_malformed_options(option: str):
    with pytest.raises(ScenarioError) as e:
        parse_set_values([option])
    assert all(p.startswith("--set") for p, _ in e.value.problems)


def test_parse_set_values_refuses_a_path_given_twice():
    with pytest.raises(ScenarioError, match="twice"):
        parse_set_values(["a.b=1", "a.b=2"])


def test_sweep_parses_values_with_the_scenario_layers_parser():
    assert sweep_module.parse_value is parse_value
    assert sweep_module.parse_set("x.y=1,2.5,payg,true") == ("x.y", [1, 2.5, "payg", True])


# --------------------------------------------------------------------------- demand scale


def test_acquisition_volume_names_a_field_of_every_acquisition_model():
    assert set(ACQUISITION_VOLUME) == union_tags(Acquisition)
    for model in (Bass, Constant):
        tag = model.model_fields["model"].annotation.__args__[0]
        assert ACQUISITION_VOLUME[tag] in model.model_fields


def test_demand_scale_doubles_every_segment():
    base = small_scenario()
    s = scale_demand(base, {None: 2.0})
    assert _volumes(s) == {"chat": (600, 1200.0), "coder": (120, 20.0)}
    assert _volumes(base) == {"chat": (300, 600.0), "coder": (60, 10.0)}  # base untouched
    assert s.digest() != base.digest()
    assert (s.plans, s.cluster, s.catalog) == (base.plans, base.cluster, base.catalog)
    assert [g.sessions_per_day for g in s.segments] == [g.sessions_per_day for g in base.segments]


def test_demand_scale_of_a_named_segment_leaves_the_others_and_overrides_the_default():
    base = small_scenario()
    assert _volumes(scale_demand(base, {"chat": 2.0})) == {
        "chat": (600, 1200.0),
        "coder": (60, 10.0),
    }
    assert _volumes(scale_demand(base, {None: 3.0, "coder": 0.5})) == {
        "chat": (900, 1800.0),
        "coder": (30, 5.0),
    }


def test_demand_scale_rounds_subscribers_to_the_nearest_whole_one():
    s = scale_demand(small_scenario(), {"chat": 0.333})  # 300 x 0.333 = 99.9
    assert s.segments[0].initial_subscribers == 100
    assert math.isclose(s.segments[0].acquisition.market_size, 600 * 0.333)


def test_demand_scale_refuses_unknown_segments_listing_the_known_ones():
    with pytest.raises(ScenarioError) as e:
        scale_demand(small_scenario(), {"nosuch": 2.0})
    [(where, msg)] = e.value.problems
    assert where == "--demand-scale"
    assert "nosuch" in msg
    assert "chat, coder" in msg


def test_demand_scale_keeps_the_sweep_block():
    base = small_scenario(sweep=SWEEP)
    assert scale_demand(base, {None: 2.0}).sweep == base.sweep


# --------------------------------------------------------------------------- horizon, order


def test_horizon_is_set_within_the_schemas_bounds():
    low, high = horizon_bounds()
    assert (low, high) == (1, 120)
    assert set_horizon(small_scenario(), 1).horizon_months == 1
    assert set_horizon(small_scenario(), high).horizon_months == high
    for bad in (low - 1, high + 1, -3):
        with pytest.raises(ScenarioError) as e:
            set_horizon(small_scenario(), bad)
        assert [p for p, _ in e.value.problems] == ["--horizon-months"]


def test_adjust_applies_overrides_then_horizon_then_demand_scale():
    base = small_scenario(sweep=SWEEP)
    s = adjust_scenario(
        base,
        sets={"segments.chat.initial_subscribers": 100, "plans.lite.price_per_month": 12.5},
        demand_scale={None: 2.0},
        horizon_months=1,
    )
    assert s.segments[0].initial_subscribers == 200  # the set value, scaled
    assert s.plans[0].price_per_month == 12.5
    assert s.horizon_months == 1
    assert s.sweep == base.sweep
    assert s == validate_data(s.model_dump(mode="json"))


def test_adjust_without_options_is_the_scenario_itself():
    base = small_scenario()
    assert adjust_scenario(base, sets={}, demand_scale={}, horizon_months=None) is base


def test_adjust_names_the_option_of_a_bad_override():
    base = small_scenario()
    with pytest.raises(ScenarioError) as e:
        adjust_scenario(base, sets={"nosuch.path": 1}, demand_scale={}, horizon_months=None)
    assert e.value.problems[0][0] == "--set nosuch.path"
    with pytest.raises(ScenarioError) as e:
        adjust.override(base, {"plans.lite.price_per_month": -1})
    assert e.value.problems[0][0] == "--set"
    assert "plans[0].price_per_month" in e.value.problems[0][1]


# --------------------------------------------------------------------------- one replica


def _pool_scenario(gpus: int, schedule: list[dict] | None = None) -> dict:
    d = small_dict()
    d["catalog"]["models"][0]["serving"][0]["gpus_per_replica"] = 8
    d["cluster"]["pools"][0].update(gpus=gpus, schedule=schedule or [])
    return d


@pytest.mark.parametrize("gpus", [0, 8, 12])
def test_a_pool_of_zero_or_at_least_one_replica_is_accepted(gpus: int):
    s = validate_data(_pool_scenario(gpus, [{"month": 1, "gpus": 16}]))
    assert s.cluster.pools[0].gpus == gpus


@pytest.mark.parametrize(
    ("gpus", "schedule", "where"),
    [
        (4, [], "cluster.pools[0].gpus"),
        (1, [], "cluster.pools[0].gpus"),
        (
            8,
            [{"month": 1, "gpus": 16}, {"month": 2, "gpus": 7}],
            "cluster.pools[0].schedule[1].gpus",
        ),
    ],
)
def test_a_pool_under_one_replica_is_refused_naming_the_field(gpus, schedule, where):
    with pytest.raises(ScenarioError) as e:
        validate_data(_pool_scenario(gpus, schedule))
    [(path, msg)] = e.value.problems
    assert path == where
    assert "less than one replica of big on h800 (8 GPUs)" in msg
    assert "use 0 or at least 8" in msg
