"""The shipped scenarios: all valid, and the rule variants differ from the baseline only there."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.scenario.loading import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
RULES = ("cutoff", "throttle", "payg", "topup")


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenario_is_valid(path: Path):
    s = load_scenario(path)
    assert s.name == path.stem


def _strip(d: dict) -> dict:
    d = {k: v for k, v in d.items() if not k.startswith("x-")}
    d.pop("name")
    d.pop("description")
    for p in d["plans"]:
        p.pop("on_exhaustion")
    return d


@pytest.mark.parametrize("rule", RULES)
def test_rule_variant_differs_from_baseline_only_in_exhaustion(rule: str):
    base = yaml.safe_load((SCENARIOS / "baseline.yaml").read_text())
    var = yaml.safe_load((SCENARIOS / f"baseline-{rule}.yaml").read_text())
    assert {p["on_exhaustion"]["rule"] for p in var["plans"]} == {rule}
    assert var["seed"] == base["seed"]
    assert _strip(var) == _strip(base), "regenerate the variant from baseline.yaml"
