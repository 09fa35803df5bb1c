"""The conservation checks on a scenario using the calibration features: Gamma think times,
activity spells, empirical token tables and a replayed trace, under two exhaustion rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.conservation import check_all
from support.scenarios import small_dict

from sim.experiments.runner import run_scenario
from sim.scenario.loading import validate_data

CODE = Path(__file__).resolve().parents[2] / "data" / "traces" / "azure2023_code_calib.csv.gz"


@pytest.mark.parametrize("rule", [{"rule": "cutoff"}, {"rule": "payg", "price_per_munit": 4.0}])
def test_invariants_hold_with_gamma_gaps_activity_empirical_tokens_and_replay(rule: dict) -> None:
    d = small_dict(seed=5, horizon_months=1)
    for p in d["plans"]:
        p["quota"]["amount"] = 300_000
        p["on_exhaustion"] = rule
    chat = d["segments"][0]
    chat.update(
        think_time_cv=3.0,
        activity_sigma=1.0,  # with sign-ups during the month: new subscribers join the process
        activity_timescale_s=3600.0,
        requests_per_session=8.0,
        think_time_s=5.0,
        input_tokens={
            "dist": "empirical",
            "quantiles": [10, 300, 800, 4000, 30000],
            "probs": [0, 0.25, 0.5, 0.95, 1],
            "max": 20000,
        },
    )
    d["segments"][1] = {
        "name": "replayed",
        "kind": "coder",
        "plans": ["pro"],
        "initial_subscribers": 40,
        "acquisition": {"model": "constant", "per_month": 5},
        "replay": {"file": str(CODE), "format": "azure"},
        "cache_hit_share": 0.5,
        "model_preference": {"big": 0.7, "small": 0.3},
        "value_per_mtok": 4.0,
        "churn_intercept": -2.9,
    }
    r = run_scenario(validate_data(d))
    check_all(r)
    m = r.replications[0].acc.monthly
    assert m["exhausted"].sum() > 0  # quotas bind: the rules are exercised
