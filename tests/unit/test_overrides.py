"""Dotted-path overrides and sweep designs: the right field changes, bad paths are named."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support.scenarios import small_scenario

from sim.experiments.sweep import design, parse_set, points, sweep_spec
from sim.scenario.errors import ScenarioError
from sim.scenario.overrides import apply_overrides, set_path
from sim.scenario.schema import Range, Sweep


def test_paths_address_list_items_by_name_and_index():
    base = small_scenario()
    s = apply_overrides(
        base,
        {
            "plans.lite.price_per_month": 12.5,
            "cluster.pools.big.gpus": 3.0,  # a whole float for an integer field
            "segments.0.sessions_per_day": 0.5,
            "churn.exhausted": 1.25,
        },
    )
    assert s.plans[0].price_per_month == 12.5
    assert s.cluster.pools[0].gpus == 3
    assert isinstance(s.cluster.pools[0].gpus, int)
    assert s.segments[0].sessions_per_day == 0.5
    assert s.churn.exhausted == 1.25
    # everything else is untouched
    assert s.plans[1] == base.plans[1]
    assert s.catalog == base.catalog


def test_a_name_with_dots_is_written_as_it_is():
    data = small_scenario().model_dump(mode="json", exclude={"sweep"})
    data["catalog"]["models"][0]["name"] = "deepseek-v3.2"  # set_path does not validate
    set_path(data, "catalog.models.deepseek-v3.2.price_output_per_mtok", 9.5)
    assert data["catalog"]["models"][0]["price_output_per_mtok"] == 9.5
    set_path(data, "catalog.models.deepseek-v3.2.serving.0.decode_tokens_per_s_per_gpu", 1234.0)
    assert data["catalog"]["models"][0]["serving"][0]["decode_tokens_per_s_per_gpu"] == 1234.0
    with pytest.raises(ScenarioError, match="no item 'deepseek-v3'"):
        set_path(data, "catalog.models.deepseek-v3.price_output_per_mtok", 1.0)


@pytest.mark.parametrize(
    ("path", "where", "says"),
    [
        ("plans.nope.price_per_month", "plans", "no item 'nope'"),
        ("plans.lite.prize", "plans.lite", "no field 'prize'"),
        ("plans.lite", "plans.lite", "block"),
        ("plans..price", "plans..price", "dot-separated"),
    ],
)
def test_bad_paths_are_named(path: str, where: str, says: str):
    with pytest.raises(ScenarioError) as e:
        apply_overrides(small_scenario(), {path: 1})
    (loc, msg), *_ = e.value.problems
    assert loc == where
    assert says in msg


def test_a_bad_value_fails_validation_with_the_field_path():
    with pytest.raises(ScenarioError) as e:
        apply_overrides(small_scenario(), {"plans.lite.price_per_month": -1})
    loc, msg = e.value.problems[0]
    assert loc == "plans[0].price_per_month"
    assert "plans.lite.price_per_month=-1" in msg


def test_set_path_refuses_to_create_fields():
    data = small_scenario().model_dump(mode="json")
    with pytest.raises(ScenarioError):
        set_path(data, "horizon_monthz", 3)


def test_factorial_is_every_combination_in_order():
    spec = Sweep(parameters={"a.b": [1, 2, 3], "c": ["x", "y"]})
    got = design(spec)
    assert got == [{"a.b": a, "c": c} for a, c in itertools.product([1, 2, 3], ["x", "y"])]


def test_latin_hypercube_puts_one_sample_in_every_stratum():
    n = 16
    spec = Sweep(
        design="lhs",
        samples=n,
        seed=3,
        parameters={
            "p": Range(low=10, high=20),
            "g": Range(low=1, high=64, integer=True),
            "rule": ["cutoff", "payg"],
        },
    )
    rows = design(spec)
    assert len(rows) == n
    p = np.array([r["p"] for r in rows])
    assert ((p >= 10) & (p <= 20)).all()
    strata = np.floor((p - 10) / 10 * n).astype(int)
    assert sorted(strata) == list(range(n))  # exactly one point per stratum
    assert all(isinstance(r["g"], int) and 1 <= r["g"] <= 64 for r in rows)
    rules = [r["rule"] for r in rows]
    assert rules.count("cutoff") == rules.count("payg") == n // 2
    assert design(spec) == rows  # seeded: the same design every time


def test_a_factorial_sweep_block_cannot_hold_ranges():
    with pytest.raises(ValueError, match="factorial design needs a list"):
        Sweep(parameters={"p": Range(low=1, high=2)})
    with pytest.raises(ValueError, match="samples"):
        Sweep(design="lhs", parameters={"p": [1, 2]})


def test_set_options_parse_values_and_ranges():
    assert parse_set("plans.lite.price_per_month=9.9,19.9,29") == (
        "plans.lite.price_per_month",
        [9.9, 19.9, 29],
    )
    assert parse_set("plans.lite.on_exhaustion.rule=cutoff,payg")[1] == ["cutoff", "payg"]
    _path, r = parse_set("cluster.pools.big.gpus=1..8")
    assert isinstance(r, Range)
    assert (r.low, r.high) == (1, 8)
    for bad in ("plans.lite.price_per_month", "=1,2", "p=[1, 2]", "p=5..1"):
        with pytest.raises(ScenarioError):
            parse_set(bad)


def test_set_options_extend_the_sweep_block_and_every_point_validates():
    base = small_scenario(sweep={"parameters": {"plans.lite.price_per_month": [9.9, 19.9]}})
    spec = sweep_spec(base, ["cluster.pools.big.gpus=1,2,3"])
    pts = points(base, spec)
    assert len(pts) == 6
    assert [p.id for p in pts] == [f"p{i:03d}" for i in range(6)]
    assert {
        (p.scenario.plans[0].price_per_month, p.scenario.cluster.pools[0].gpus) for p in pts
    } == {(a, b) for a in (9.9, 19.9) for b in (1, 2, 3)}
    # a point's scenario has no sweep block, and its digest ignores the base's block
    assert all(p.scenario.sweep is None for p in pts)
    assert base.digest() == small_scenario().digest()
    with pytest.raises(ScenarioError) as e:
        sweep_spec(small_scenario())
    assert "nothing to sweep" in e.value.problems[0][1]
