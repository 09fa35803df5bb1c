"""Run labels: runs named by the scenario fields that differ from the first run's."""

from __future__ import annotations

import copy
from typing import Any

from support.scenarios import small_dict

from sim.results.run_labels import SHOWN_CHANGES, run_labels, scenario_changes, value_text


def _resolved(**changes: Any) -> dict[str, Any]:
    """The small scenario as scenario.yaml holds it (every default filled in)."""
    from sim.scenario.loading import validate_data

    return validate_data(small_dict(**changes)).model_dump(mode="json")


def test_a_price_change_labels_the_run_by_plan_name_and_field():
    base = _resolved()
    dear = copy.deepcopy(base)
    dear["plans"][0]["price_per_month"] = 207.9
    labels = run_labels(["p000", "p001"], [base, dear], [7, 7])
    assert labels[1].label == "lite.price_per_month=207.9"
    assert labels[1].changes_text() == "plans.lite.price_per_month=207.9"
    # the first run shows its own value of what the others change, not its folder name
    assert labels[0].label == "lite.price_per_month=9.9"


def test_a_name_used_twice_keeps_the_full_path():
    base = _resolved()
    more = copy.deepcopy(base)
    more["cluster"]["pools"][0]["gpus"] = 3  # pool "big" shares its name with model "big"
    more["catalog"]["models"][1]["serving"][0]["decode_tokens_per_s_per_gpu"] = 900.0
    serving, pools = scenario_changes(base, more)  # in the order of the scenario
    assert pools.text() == "cluster.pools.big.gpus=3"
    assert serving.text() == "catalog.models.small.serving.0.decode_tokens_per_s_per_gpu=900"


def test_fields_that_leave_the_market_alone_do_not_label_a_run():
    base = _resolved()
    other = copy.deepcopy(base)
    other.update(name="small.p003", description="x", replications=9, seed=99)
    other["outputs"]["plots"] = not other["outputs"]["plots"]
    labels = run_labels(["base", "again"], [base, other], [7, 7])
    assert [lab.label for lab in labels] == ["base", "again"]
    assert labels[1].changes == ()


def test_identical_runs_fall_back_to_numbered_folder_names():
    base = _resolved()
    labels = run_labels(["run", "run"], [base, copy.deepcopy(base)], [7, 7])
    assert [lab.label for lab in labels] == ["run #1", "run #2"]


def test_the_manifest_seed_labels_a_run_with_another_seed():
    base = _resolved()
    labels = run_labels(["a", "b"], [base, copy.deepcopy(base)], [7, 8])
    assert labels[1].label == "seed=8"
    assert labels[0].label == "seed=7"


def test_many_changes_are_cut_with_a_count():
    base = _resolved()
    many = copy.deepcopy(base)
    for seg in many["segments"]:
        seg["initial_subscribers"] *= 2
        seg["sessions_per_day"] += 1
    many["plans"][1]["price_per_month"] = 49.9
    changes = scenario_changes(base, many)
    assert len(changes) == 5
    label = run_labels(["a", "b"], [base, many], [7, 7])[1]
    assert label.label.endswith(f" +{5 - SHOWN_CHANGES} more")
    assert label.label.startswith("pro.price_per_month=49.9, chat.initial_subscribers=600")
    assert len(label.changes) == 5  # every change kept in full


def test_added_removed_and_rule_changes():
    base = _resolved()
    other = copy.deepcopy(base)
    extra = copy.deepcopy(other["plans"][1])
    extra["name"] = "max"
    other["plans"].append(extra)
    other["segments"][0]["plans"] = ["lite", "pro", "max"]
    other["plans"][0]["on_exhaustion"] = {"rule": "payg", "price_per_munit": 4.0}
    texts = [c.text() for c in scenario_changes(base, other)]
    assert "lite.on_exhaustion.rule=payg" in texts
    assert "lite.on_exhaustion.price_per_munit=4" in texts
    assert "plans.max=added" in texts
    assert 'chat.plans=["lite","pro","max"]' in texts
    assert "plans.max=removed" in [c.text() for c in scenario_changes(other, base)]


def test_value_text_is_short_and_plain():
    assert value_text(207.9) == "207.9"
    assert value_text(96.0) == "96"
    assert value_text(True) == "true"
    assert value_text("payg") == "payg"
    long = value_text([0.5] * 24)
    assert len(long) == 24
    assert long.endswith("…")
