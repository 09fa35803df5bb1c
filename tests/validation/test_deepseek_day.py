"""Economics check: DeepSeek's published inference day, one node's share, scaled back up.

Published (deepseek-ai/open-infra-index, 202502OpenSourceWeek day 6, CC0; MODEL.md s.5): over
24 h of 2025-02-27/28, 608B input tokens (56.3% cache hits) and 168B output tokens on 226.75
8xH800 nodes on average; at USD 2 per GPU-hour that is USD 87,072 of GPU cost, and at R1 list
prices USD 562,027 of revenue. ``scenarios/deepseek-day.yaml`` simulates one node (8 GPUs) with
1/226.75 of the traffic for one day; its money and tokens times 226.75 must give those figures.

Tolerance: the day's revenue of one replication varies with a coefficient of variation of
0.24% (measured over 30 seeds: Poisson request counts, lognormal lengths, Gamma intensities of
100,000 users); the mean of the scenario's 3 replications has a CV of 0.14%, so 1% is 7 of its
standard deviations, far above the 0.01% between the published total and the one recomputed
from the rounded 56.3% share, and well below what a modelling error moves (pricing cache hits
as misses: +25%; losing one hour of the day's requests: -4%).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.experiments.runner import run_scenario
from sim.scenario.loading import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "deepseek-day.yaml"
NODES_AVG = 226.75  # average 8xH800 nodes in service over the day (published)
GPUS_PER_NODE = 8
COST_USD = 87_072.0  # published daily GPU cost at USD 2 per GPU-hour
REVENUE_USD = 562_027.0  # published theoretical daily revenue at R1 list prices
INPUT_TOKENS = 608e9
CACHE_HIT_SHARE = 0.563
OUTPUT_TOKENS = 168e9
REL_TOL = 0.01  # see the module docstring


@pytest.fixture(scope="module")
def run():
    s = load_scenario(SCENARIO)
    assert s.days_per_month == 1
    assert s.horizon_months == 1
    assert [p.gpus for p in s.cluster.pools] == [GPUS_PER_NODE]  # exactly one node
    return run_scenario(s)


def test_gpu_cost_of_the_day(run):
    cost = run.kpis()["gpu_cost"].to_numpy()
    assert cost * NODES_AVG == pytest.approx(np.full(len(cost), COST_USD), rel=1e-12)


def test_revenue_at_list_prices_billed_from_simulated_requests(run):
    k = run.kpis()
    assert (k["revenue_fees"] == 0).all()
    assert (k["revenue_topups"] == 0).all()
    # the pay-as-you-go bill (quota units x price, whole units per subscriber-month) agrees with
    # the tally's independent valuation of served tokens at list prices, up to the rounding
    users = run.scenario.segments[0].initial_subscribers
    gap = (k["revenue_overage"] - k["api_list_value"]).to_numpy()
    assert np.all((gap >= 0) & (gap <= users * 1e-6))
    assert k["revenue_total"].mean() * NODES_AVG == pytest.approx(REVENUE_USD, rel=REL_TOL)


def test_tokens_of_the_day_by_class(run):
    m = (
        run.monthly()
        .groupby("replication")[
            ["input_miss_tokens", "input_hit_tokens", "output_tokens", "requests", "served"]
        ]
        .sum()
    )
    assert (m["served"] == m["requests"]).all()  # nothing refused: every token is billed
    inp = (m["input_miss_tokens"] + m["input_hit_tokens"]).mean() * NODES_AVG
    assert inp == pytest.approx(INPUT_TOKENS, rel=REL_TOL)
    hit = (m["input_hit_tokens"] / (m["input_miss_tokens"] + m["input_hit_tokens"])).mean()
    assert hit == pytest.approx(CACHE_HIT_SHARE, abs=1e-4)
    assert m["output_tokens"].mean() * NODES_AVG == pytest.approx(OUTPUT_TOKENS, rel=REL_TOL)


def test_node_utilisation_matches_the_catalog_serving_model(run):
    """Busy share = (uncached input / prefill rate + output / decode rate) / node-seconds.

    The catalog's 4,026 uncached prefill and 1,850 decode tokens/s per GPU are DeepSeek's
    published per-node averages (32.2k uncached and 14.8k output tokens/s per node) with cache
    hits taking no prefill time. With them the day's 266B uncached input and 168B output tokens
    fill the 226.75 nodes exactly (100.0%): DeepSeek's own accounting, whose node count
    followed the load (peak 278 nodes). The simulated node is as busy, so a fixed fleet of the
    average size cannot hold the latency targets: the queue grows for want of the peak's nodes.
    """
    llm = run.scenario.catalog.models[0].serving[0]
    node_s = NODES_AVG * 86_400.0
    expected = (
        INPUT_TOKENS * (1 - CACHE_HIT_SHARE) / (llm.prefill_tokens_per_s_per_gpu * GPUS_PER_NODE)
        + OUTPUT_TOKENS / (llm.decode_tokens_per_s_per_gpu * GPUS_PER_NODE)
    ) / node_s
    k = run.kpis()
    assert expected == pytest.approx(1.0, abs=0.005)
    assert k["gpu_utilisation"].mean() == pytest.approx(expected, rel=REL_TOL)
    assert k["slo_attainment_served"].max() < 0.5
