"""The analytic first guess for capacity: Erlang B and C, the wait and TTFT quantiles, sizing.

Erlang values are checked against textbook numbers and the factorial formulas written out here;
the M/M/c wait quantile against its closed form; the sizing answer by checking directly that n
replicas meet the targets and n - 1 do not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from sim.capacity.queueing import (
    AnalyticSize,
    PoolLoad,
    SloTarget,
    erlang_b,
    erlang_c,
    metric_quantile,
    parse_slo,
    smallest_replicas,
    ttft_quantile,
    wait_quantile,
    wait_tail,
)

NO_PREFILL = (np.array([0.0]), np.array([1.0]))


def erlang_b_direct(c: int, a: float) -> float:
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    return terms[-1] / sum(terms)


def erlang_c_direct(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc_wait_quantile(q: float, c: int, a: float, mean_s: float) -> float:
    waiting = erlang_c(c, a)
    return mean_s / (c - a) * math.log(waiting / (1 - q)) if waiting > 1 - q else 0.0


def a_load(rate: float = 40.0, **changes: object) -> PoolLoad:
    fields: dict[str, object] = {
        "arrival_rate_per_s": rate,
        "mean_service_s": 8.0,
        "scv_service": 1.5,
        "prefill_values_s": np.array([0.05, 0.2, 0.6, 1.5]),
        "prefill_weights": np.array([0.4, 0.3, 0.2, 0.1]),
        "slots_per_replica": 16,
        "gpus_per_replica": 2,
        "tpot_s": 0.03,
    }
    fields.update(changes)
    return PoolLoad(**fields)  # type: ignore[arg-type]


# --- Erlang B and C ---------------------------------------------------------------------------


def test_erlang_textbook_values():
    assert erlang_b(10, 5.0) == pytest.approx(0.018385, abs=1e-6)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    for rho in (0.0, 0.1, 0.5, 0.9, 0.999):
        assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("c", [1, 2, 3, 5, 10, 20, 30])
@pytest.mark.parametrize("load", [0.05, 0.5, 0.9, 0.99])
def test_erlang_matches_the_factorial_formulas(c, load):
    a = load * c
    assert erlang_b(c, a) == pytest.approx(erlang_b_direct(c, a), rel=1e-10)
    assert erlang_c(c, a) == pytest.approx(erlang_c_direct(c, a), rel=1e-10)


def test_erlang_b_matches_the_recursion_beyond_the_window():
    c, a = 5000, 4000.0  # the window covers a small part of the 5001 terms here
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    assert erlang_b(c, a) == pytest.approx(b, rel=1e-10)
    c, a = 3000, 6000.0  # overloaded: the largest term is at k = c
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    assert erlang_b(c, a) == pytest.approx(b, rel=1e-10)


def test_erlang_edge_cases():
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(4, 0.0) == 0.0
    assert erlang_c(4, 0.0) == 0.0
    assert erlang_c(4, 4.0) == 1.0
    assert erlang_c(4, 9.0) == 1.0
    for c, a in ((-1, 1.0), (2, -1.0), (2, math.nan), (2, math.inf), (2.5, 1.0)):
        with pytest.raises(ValueError, match="must be"):
            erlang_c(c, a)  # type: ignore[arg-type]


def test_erlang_is_stable_for_large_pools():
    c = 200_000
    light = erlang_c(c, 0.9 * c)  # about exp(-1070): underflows to 0, must not be nan
    assert math.isfinite(light)
    assert 0.0 <= light < 1.0
    assert 0.0 <= erlang_b(c, 0.9 * c) < 1.0
    # Halfin-Whitt: a = c - beta sqrt(c) gives C -> 1 / (1 + beta Phi(beta) / phi(beta))
    beta = 1.0
    heavy = erlang_c(c, c - beta * math.sqrt(c))
    assert 0.0 < heavy < 1.0
    assert heavy == pytest.approx(1 / (1 + beta * norm.cdf(beta) / norm.pdf(beta)), abs=0.005)
    assert 0.0 < erlang_c(1_000_000, 999_000.0) < 1.0


@settings(max_examples=200, deadline=None)
@given(
    c=st.integers(min_value=1, max_value=3000),
    a1=st.floats(min_value=0.0, max_value=4000.0),
    a2=st.floats(min_value=0.0, max_value=4000.0),
    extra=st.integers(min_value=1, max_value=500),
)
def test_erlang_c_is_a_probability_increasing_in_load_decreasing_in_servers(c, a1, a2, extra):
    low, high = sorted((a1, a2))
    for a in (low, high):
        assert 0.0 <= erlang_c(c, a) <= 1.0
    assert erlang_c(c, low) <= erlang_c(c, high) * (1 + 1e-9) + 1e-300
    assert erlang_c(c + extra, high) <= erlang_c(c, high) * (1 + 1e-9) + 1e-300


# --- wait and TTFT ----------------------------------------------------------------------------


def test_wait_tail_starts_at_erlang_c_and_decays_at_the_mmc_rate():
    c, a, mean_s = 12, 9.0, 4.0
    assert wait_tail(0.0, c, a, mean_s) == pytest.approx(erlang_c(c, a), rel=1e-12)
    t = np.array([-1.0, 0.0, 1.0, 5.0])
    expected = erlang_c(c, a) * np.exp(-(c - a) * np.maximum(t, 0) / mean_s)
    expected[0] = 1.0
    np.testing.assert_allclose(wait_tail(t, c, a, mean_s, 1.0), expected, rtol=1e-12)
    # scv scales the decay rate by 2 / (1 + scv), not the probability of waiting
    assert wait_tail(0.0, c, a, mean_s, 3.0) == pytest.approx(erlang_c(c, a), rel=1e-12)
    assert wait_tail(2.0, c, a, mean_s, 3.0) == pytest.approx(
        erlang_c(c, a) * math.exp(-(c - a) / mean_s * 0.5 * 2.0), rel=1e-12
    )
    assert wait_tail(100.0, 3, 3.0, mean_s) == 1.0


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (4, 3.5), (20, 12.0), (64, 62.0), (200, 150.0)])
def test_ttft_quantile_without_prefill_is_the_mmc_closed_form(q, c, a):
    mean_s = 2.5
    expected = mmc_wait_quantile(q, c, a, mean_s)
    assert ttft_quantile(q, c, a, mean_s, 1.0, *NO_PREFILL) == pytest.approx(expected, abs=1e-8)
    assert wait_quantile(q, c, a, mean_s) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_ttft_quantile_with_prefill():
    values, weights = np.array([0.1, 0.5, 2.0]), np.array([0.6, 0.3, 0.1])
    # light load: no waiting to speak of, the quantile is that of P (the atom at 2.0 for p95)
    assert ttft_quantile(0.95, 50, 1.0, 1.0, 1.0, values, weights) == pytest.approx(2.0)
    assert ttft_quantile(0.5, 50, 1.0, 1.0, 1.0, values, weights) == pytest.approx(0.1)
    # the answer solves P(W + P > x) = 1 - q
    c, a, mean_s, scv, q = 10, 9.0, 1.0, 2.0, 0.95
    x = ttft_quantile(q, c, a, mean_s, scv, values, weights)
    theta = (c - a) / mean_s * 2 / (1 + scv)
    tail = sum(
        w * (1.0 if p > x else erlang_c(c, a) * math.exp(-theta * (x - p)))
        for p, w in zip(values, weights, strict=True)
    )
    assert tail == pytest.approx(1 - q, abs=1e-9)
    assert x > wait_quantile(q, c, a, mean_s, scv)
    assert ttft_quantile(q, c, float(c), mean_s, scv, values, weights) == math.inf
    assert ttft_quantile(q, c, 11.0, mean_s, scv, values, weights) == math.inf


def test_ttft_quantile_decreases_with_servers():
    values, weights = np.array([0.05, 0.3, 1.0]), np.array([0.5, 0.4, 0.1])
    a = 100.0
    quantiles = [ttft_quantile(0.99, c, a, 3.0, 1.7, values, weights) for c in range(101, 160, 2)]
    assert np.all(np.diff(quantiles) <= 1e-12)
    assert quantiles[0] > 10 * quantiles[-1]
    assert quantiles[-1] == pytest.approx(1.0)  # only the prefill atom at 1.0 is left


@pytest.mark.parametrize(
    ("values", "weights"),
    [([], []), ([0.1, 0.2], [1.0]), ([-0.1], [1.0]), ([0.1], [0.5]), ([0.1, 0.2], [1.5, -0.5])],
)
def test_ttft_quantile_rejects_bad_prefill(values, weights):
    with pytest.raises(ValueError, match="prefill"):
        ttft_quantile(0.9, 4, 2.0, 1.0, 1.0, values, weights)


# --- SLO targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ttft_p95<=1.0", SloTarget("ttft", 0.95, 1.0)),
        ("tpot_p99 <= 0.08", SloTarget("tpot", 0.99, 0.08)),
        ("wait_p50<=0.5", SloTarget("wait", 0.5, 0.5)),
        ("e2e_p95<=30", SloTarget("e2e", 0.95, 30.0)),
        ("  ttft_p99.9 < 2e-1 ", SloTarget("ttft", 0.999, 0.2)),
    ],
)
def test_parse_slo_accepts(text, expected):
    target = parse_slo(text)
    assert target.metric == expected.metric
    assert target.quantile == pytest.approx(expected.quantile, rel=1e-12)
    assert target.bound_s == expected.bound_s
    assert parse_slo(target.label) == target


@pytest.mark.parametrize(
    "text",
    [
        "ttft_p95>=1",
        "ttft95<=1",
        "foo_p95<=1",
        "ttft_p95<=-1",
        "ttft_p95<=nan",
        "ttft_p95<=inf",
        "ttft_p0<=1",
        "ttft_p100<=1",
        "ttft_p95<=0",
        "ttft_p95<=1s",
        "",
    ],
)
def test_parse_slo_rejects(text):
    with pytest.raises(ValueError, match="bad SLO target") as error:
        parse_slo(text)
    assert repr(text) in str(error.value)
    assert "expected '<metric>_p<percentile> <= <seconds>'" in str(error.value)


# --- sizing -------------------------------------------------------------------------------------


def meets(load: PoolLoad, target: SloTarget, replicas: int) -> bool:
    c, a = replicas * load.slots_per_replica, load.offered_load
    values, weights = load.prefill_values_s, load.prefill_weights
    s, scv = load.mean_service_s, load.scv_service
    if target.metric == "ttft":
        return ttft_quantile(target.quantile, c, a, s, scv, values, weights) <= target.bound_s
    assert target.metric == "wait"
    return ttft_quantile(target.quantile, c, a, s, scv, *NO_PREFILL) <= target.bound_s


@pytest.mark.parametrize("rate", [0.5, 3.0, 40.0, 400.0, 5000.0])
@pytest.mark.parametrize(
    "slos", [["ttft_p95<=1.6"], ["wait_p50<=0.05", "ttft_p99<=2.0"], ["wait_p99.9<=0.01"]]
)
def test_smallest_replicas_meets_and_one_less_does_not(rate, slos):
    load = a_load(rate)
    targets = [parse_slo(s) for s in slos]
    size = smallest_replicas(load, targets)
    assert isinstance(size, AnalyticSize)
    n = size.replicas
    assert n is not None
    assert all(meets(load, t, n) for t in targets)
    assert n == 1 or not all(meets(load, t, n - 1) for t in targets)
    assert size.gpus == 2 * n
    assert size.offered_load_erlangs == pytest.approx(rate * 8.0)
    assert size.utilisation_at_answer == pytest.approx(rate * 8.0 / (16 * n))
    assert size.utilisation_at_answer < 1.0
    assert size.ignored_targets == ()
    assert size.unmet_targets == ()


def test_smallest_replicas_without_queue_targets_is_the_smallest_stable_pool():
    load = a_load(40.0)  # a = 320 Erlangs, 16 slots per replica: 20 replicas is unstable
    size = smallest_replicas(load, [parse_slo("tpot_p99<=0.05"), parse_slo("e2e_p95<=30")])
    assert size.replicas == 21
    assert size.ignored_targets == ("e2e_p95<=30",)
    assert smallest_replicas(a_load(0.0), []).replicas == 1


def test_smallest_replicas_reports_what_it_cannot_meet():
    load = a_load(40.0)
    slow = smallest_replicas(load, [parse_slo("tpot_p99<=0.02"), parse_slo("ttft_p95<=1.6")])
    assert slow.replicas is None
    assert slow.gpus is None
    assert slow.utilisation_at_answer is None
    assert slow.unmet_targets == ("tpot_p99<=0.02",)
    # the prefill alone takes 1.5 s 10% of the time: no pool meets a 1 s p95
    tight = smallest_replicas(load, [parse_slo("ttft_p95<=1")], max_replicas=500)
    assert tight.replicas is None
    assert tight.unmet_targets == ("ttft_p95<=1",)
    small = smallest_replicas(load, [parse_slo("ttft_p95<=1.6")], max_replicas=20)
    assert small.replicas is None
    assert small.unmet_targets == ("ttft_p95<=1.6",)
    enough = smallest_replicas(load, [parse_slo("ttft_p95<=1.6")])
    assert enough.replicas is not None
    capped = smallest_replicas(load, [parse_slo("ttft_p95<=1.6")], max_replicas=enough.replicas)
    assert capped.replicas == enough.replicas


def test_pool_load_validates_and_freezes_its_arrays():
    load = a_load()
    assert load.offered_load == pytest.approx(320.0)
    with pytest.raises(ValueError, match="read-only"):
        load.prefill_weights[0] = 0.5
    with pytest.raises(ValueError, match="prefill weights must sum to 1"):
        a_load(prefill_weights=np.array([0.5, 0.3, 0.2, 0.1]))
    with pytest.raises(ValueError, match="mean_service_s"):
        a_load(mean_service_s=0.0)
    with pytest.raises(ValueError, match="slots_per_replica"):
        a_load(slots_per_replica=0)


# --- busy hours of different days: a mixture of M/G/c queues -------------------------------


@pytest.mark.parametrize("metric", ["wait", "ttft"])
def test_a_mixture_of_equal_days_is_the_single_load(metric: str):
    target = SloTarget(metric, 0.95, 1.0)
    single = a_load()
    days = a_load(load_factors=np.ones(7), load_weights=np.full(7, 1 / 7))
    for n in (21, 22, 24, 30):
        assert metric_quantile(days, target, n) == pytest.approx(
            metric_quantile(single, target, n), rel=1e-6, abs=1e-8
        )


@pytest.mark.parametrize("metric", ["wait", "ttft"])
def test_busier_and_quieter_days_cost_more_than_their_mean(metric: str):
    """Weekdays above the busy-hour mean dominate the tail: the mixture's quantile is higher.

    Five weekdays at 1.12 and two weekend days at 0.7 (weights by their traffic),
    near saturation (320 Erlangs on 22 replicas of 16 slots): the queue tail is convex in the
    load, so the mixture needs at least as many replicas as the mean load, here more.
    """
    target = SloTarget(metric, 0.95, 0.5 if metric == "wait" else 2.0)
    factors = np.array([1.12] * 5 + [0.7] * 2)
    factors = factors / factors.mean()  # the busy-hour load is the mean over the days
    weights = factors / factors.sum()  # each day's share of the requests
    mean_load = a_load()
    spread = a_load(load_factors=factors, load_weights=weights)
    n = 21
    assert metric_quantile(spread, target, n) > metric_quantile(mean_load, target, n)
    assert (
        smallest_replicas(spread, [target]).replicas
        > smallest_replicas(mean_load, [target]).replicas
    )


def test_days_above_capacity_make_the_quantile_infinite_only_past_their_share():
    """A day whose busy hour exceeds the pool's slots has a tail of 1 (its queue grows)."""
    target = SloTarget("wait", 0.95, 1.0)
    n = 25  # 400 slots; the mean load is 320 Erlangs
    rare = a_load(load_factors=np.array([0.99, 1.3]), load_weights=np.array([0.97, 0.03]))
    common = a_load(load_factors=np.array([0.95, 1.3]), load_weights=np.array([0.9, 0.1]))
    assert math.isfinite(metric_quantile(rare, target, n))
    assert metric_quantile(common, target, n) == math.inf
