"""Exhaustion rules: the schema's rules map one-to-one onto engine codes, error paths leave out
union tags for every member, and pay-as-you-go block rounding has one definition."""

from __future__ import annotations

import copy
from typing import Any, Literal, get_args, get_origin

import numpy as np
import pytest
from pydantic import BaseModel
from support.scenarios import small_dict

from sim.engine.billing import overage_due
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import _union_members, validate_data
from sim.scenario.schema import Acquisition, Exhaustion, TokenLength
from sim.world import rules
from sim.world.build import build
from sim.world.rules import RULE_CODES, payg_billable_units, rule_code

EXHAUSTION_MEMBERS = list(_union_members(Exhaustion))


def _literals(model: type[BaseModel], field: str) -> tuple[Any, ...]:
    f = model.model_fields.get(field)
    if f is None or get_origin(f.annotation) is not Literal:
        return ()
    return get_args(f.annotation)


def _minimal(model: type[BaseModel], **extra: Any) -> dict[str, Any]:
    """A valid instance's data: every required field set to 1 (or its single Literal value)."""
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        values = _literals(model, name)
        if len(values) == 1:
            out[name] = values[0]
        elif f.is_required():
            out[name] = 1
    return {**out, **extra}


def _variants() -> list[tuple[str, str | None, dict[str, Any]]]:
    """(rule tag, throttle mode, on_exhaustion data) for every rule and mode in the schema."""
    out = []
    for member in EXHAUSTION_MEMBERS:
        (tag,) = _literals(member, "rule")
        for mode in _literals(member, "mode") or (None,):
            data = _minimal(member)
            if mode is not None:
                data["mode"] = mode
            if mode == "downgrade":
                data["downgrade_model"] = "small"
            out.append((tag, mode, data))
    return out


def test_every_schema_rule_maps_to_exactly_one_engine_code_and_every_code_is_used() -> None:
    variants = _variants()
    codes = [rule_code(tag, mode) for tag, mode, _ in variants]
    assert len(set(codes)) == len(codes)  # one code per (rule, mode)
    declared = {v for k, v in vars(rules).items() if k.startswith("RULE_") and isinstance(v, int)}
    assert set(codes) == declared == set(RULE_CODES.values())
    assert {(t, m) for t, m, _ in variants} == set(RULE_CODES)


@pytest.mark.parametrize(("tag", "mode", "data"), _variants())
def test_build_gives_each_plan_its_rules_code(tag: str, mode: str | None, data: dict) -> None:
    d = small_dict()
    d["plans"][0]["on_exhaustion"] = data
    plan = build(validate_data(d)).plan
    assert plan.rule[0] == rule_code(tag, mode)
    # each rule's own parameters reach the engine, and no other rule's do
    assert (plan.gap_s[0] > 0) == (tag == "throttle")
    assert (plan.down_pool[0] >= 0) == (mode == "downgrade")
    assert (plan.payg_price_per_unit[0] > 0) == (tag == "payg")
    assert (plan.pack_units[0] > 0) == (tag == "topup")


UNION_SITES: list[tuple[Any, Any]] = [
    (Exhaustion, lambda d, v: d["plans"][0].__setitem__("on_exhaustion", v)),
    (Acquisition, lambda d, v: d["segments"][0].__setitem__("acquisition", v)),
    (TokenLength, lambda d, v: d["segments"][0].__setitem__("input_tokens", v)),
]


@pytest.mark.parametrize(
    ("member", "place"),
    [(m, place) for union, place in UNION_SITES for m in _union_members(union)],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_error_paths_inside_a_union_member_name_the_field_not_the_tag(member, place) -> None:
    d = copy.deepcopy(small_dict())
    data = _minimal(member, bogus=1)
    if member.__name__ == "Empirical":
        data["quantiles"] = [1, 10]
    place(d, data)
    with pytest.raises(ScenarioError) as e:
        validate_data(d)
    paths = [p for p, _ in e.value.problems]
    assert any(
        p.endswith((".on_exhaustion.bogus", ".acquisition.bogus", ".input_tokens.bogus"))
        for p in paths
    ), paths


def test_payg_rounds_up_to_whole_blocks_but_not_float_noise_at_a_boundary() -> None:
    block = 100_000.0
    over = np.array([0.0, 1.0, block, 2 * block, 2 * block + 1.0, 2 * block * (1 + 1e-13)])
    billed = payg_billable_units(over, block)
    assert billed.tolist() == [0.0, block, block, 2 * block, 3 * block, 2 * block]


def test_billing_charges_whole_blocks_and_an_exact_boundary_once() -> None:
    """overage_due (billing) goes through payg_billable_units, as plan choice's utility does."""
    d = small_dict()
    d["plans"][1]["on_exhaustion"] = {"rule": "payg", "price_per_munit": 4.0, "block_units": 1e5}
    world = build(validate_data(d))
    plan = np.array([1, 1, 1])
    due = overage_due(world, plan, np.array([2e5, 2e5 + 1e-7, 2e5 + 1.0]))
    per_unit = 4.0 / 1e6
    np.testing.assert_allclose(due, [2e5 * per_unit, 2e5 * per_unit, 3e5 * per_unit])
