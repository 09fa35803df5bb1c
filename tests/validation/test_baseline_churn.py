"""Churn calibration: the baseline as shipped hits its monthly churn targets within 0.5 pp.

Targets (MODEL.md section 5, "Calibration targets (monthly)"): chat users are a B2C subscription
(~7%); households a family plan, stickier, in the prepaid band 3-6% (its middle, 4.5%); coders
buy developer plans as individuals, B2C (~7%); enterprise bots are B2B subscriptions (~5%).
The intercepts in scenarios/baseline*.yaml were fitted by ``tokensim fit-churn`` with the
scenario's seed and its 3 replications; this test re-runs exactly that (about 5 minutes of one
core) and checks the mean over the replications of each segment's monthly churn.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.experiments.churn_fit import segment_churn
from sim.experiments.runner import run_scenario
from sim.scenario.loading import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TARGETS = {"chat": 0.07, "household": 0.045, "coder": 0.07, "enterprise_bot": 0.05}
TOLERANCE = 0.005  # 0.5 percentage points


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_baseline_churn_hits_targets():
    s = load_scenario(SCENARIOS / "baseline.yaml")
    assert s.replications == 3
    churn = segment_churn(run_scenario(s))
    for seg, target in TARGETS.items():
        assert abs(churn[seg].mean - target) <= TOLERANCE, (seg, churn[seg], target)
