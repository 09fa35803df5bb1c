"""Demand kernels: Gamma think times, empirical token tables, and unchanged legacy draws."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from support.scenarios import small_dict, small_scenario

from sim.engine.demand import DemandGenerator, _inverse_cdf, _sessions, _tokens_and_models
from sim.engine.lifecycle import initial_population
from sim.engine.metrics import Accumulators
from sim.engine.population import Population
from sim.engine.streams import Streams
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data
from sim.world.build import build


def test_existing_scenarios_draw_exactly_what_they_drew_before_gamma_and_empirical():
    # digest of 3 days of the small scenario's demand (times, subscribers, tokens) recorded with
    # the code before think_time_cv, empirical tables and replay existed: the exponential and
    # lognormal paths must consume the same draws (demand only: churn and plans may change)
    w = build(small_scenario())
    streams = Streams(3, 0)
    pop = Population(capacity=1000, n_models=len(w.model_names))
    initial_population(w, pop, Accumulators(w), streams)
    gen = DemandGenerator(w, streams)
    h = hashlib.sha256()
    n = 0
    for day in range(3):
        r = gen.day(pop, day)
        n += len(r)
        h.update(np.stack([r.t, r.sub.astype(float), r.input, r.cached, r.output]).tobytes())
    assert n == 7136
    assert h.hexdigest()[:16] == "8e10a425300b303e"


def _gaps(cv: float) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(5))
    hour_cum = np.cumsum(np.ones((1, 24)), axis=1) / 24
    t, _ = _sessions(
        rng,
        np.array([0]),
        np.array([3.0]),
        np.array([0]),
        0.0,
        hour_cum,
        np.array([20_000.0]),
        np.array([2.0]),
        np.array([cv]),
    )
    # sessions are laid out one after the other: drop the few gaps between two sessions
    g = np.diff(t)
    return g[(g > 0) & (g < 1000)]


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_think_times_have_the_requested_mean_and_cv(cv):
    g = _gaps(cv)
    assert len(g) > 10_000
    assert g.mean() == pytest.approx(2.0, rel=0.05 * max(cv, 1))
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.08)


def test_inverse_cdf_interpolates_the_table():
    # row 1 of a two-row table (one row per segment); row 0 must not be read
    p = np.array([[0.0, 1.0, 1.0, 1.0], [0.0, 0.5, 0.9, 1.0]])
    q = np.array([[7.0, 7.0, 7.0, 7.0], [10.0, 100.0, 1000.0, 2000.0]])
    assert _inverse_cdf(0.0, p, q, 1, 4) == 10.0
    assert _inverse_cdf(0.25, p, q, 1, 4) == pytest.approx(55.0)
    assert _inverse_cdf(0.5, p, q, 1, 4) == pytest.approx(100.0)
    assert _inverse_cdf(0.95, p, q, 1, 4) == pytest.approx(1500.0)


def test_empirical_sampler_reproduces_the_table_quantiles():
    probs = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
    quant = [5.0, 40.0, 800.0, 5000.0, 20000.0, 60000.0]
    d = small_dict()
    for g in d["segments"]:
        g["input_tokens"] = {"dist": "empirical", "quantiles": quant, "probs": probs}
        g["output_tokens"] = {"dist": "empirical", "quantiles": [1, 100, 300]}  # equally spaced
    w = build(validate_data(d))
    sp = w.seg
    n = 200_000
    sub = np.zeros(n, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(1))
    inp, _, out, _ = _tokens_and_models(
        rng,
        np.random.Generator(np.random.PCG64(2)),
        sub,
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        sp.in_mu,
        sp.in_sigma,
        sp.in_max,
        sp.out_mu,
        sp.out_sigma,
        sp.out_max,
        sp.in_kind,
        sp.out_kind,
        sp.in_table_p,
        sp.in_table_q,
        sp.in_table_n,
        sp.out_table_p,
        sp.out_table_q,
        sp.out_table_n,
        np.zeros(0),
        np.zeros(0),
        sp.cache_hit,
        sp.model_cum,
    )
    for pr, qv in zip(probs[1:-1], quant[1:-1], strict=True):
        assert np.quantile(inp, pr) == pytest.approx(qv, rel=0.03)
    assert np.median(out) == pytest.approx(100, rel=0.03)
    assert inp.mean() == pytest.approx(sp.in_mean[0], rel=0.02)  # the table's mean
    assert inp.min() >= 5
    assert inp.max() <= 60000


def _problems(**seg) -> list[tuple[str, str]]:
    d = small_dict()
    d["segments"][0].update(seg)
    with pytest.raises(ScenarioError) as e:
        validate_data(d)
    return e.value.problems


def test_bad_empirical_tables_and_cv_are_named():
    probs = _problems(input_tokens={"dist": "empirical", "quantiles": [3, 2, 5]})
    assert probs == [("segments[0].input_tokens", "quantiles must be non-decreasing")]
    probs = _problems(input_tokens={"dist": "empirical", "quantiles": [1, 2], "probs": [0.1, 1]})
    assert probs == [("segments[0].input_tokens", "probs must start at 0 and end at 1")]
    probs = _problems(output_tokens={"dist": "gamma", "median": 3})
    assert probs[0][0] == "segments[0].output_tokens"
    probs = _problems(think_time_cv=0)
    assert probs[0][0] == "segments[0].think_time_cv"


def test_demand_fields_are_required_without_replay():
    d = small_dict()
    del d["segments"][0]["sessions_per_day"]
    with pytest.raises(ScenarioError) as e:
        validate_data(d)
    assert e.value.problems == [("segments[0]", "sessions_per_day: required unless replay is set")]


def test_lognormal_fast_path_draws_exactly_what_the_general_kernel_draws():
    """The lognormal-only kernel is a speed path: same draws, same order, same outputs."""
    import numpy as np

    from sim.engine.demand import _tokens_and_models, _tokens_lognormal
    from sim.world.build import build

    w = build(small_scenario())
    sp = w.seg
    n_sub = 500
    rng = np.random.default_rng(3)
    sub = np.sort(rng.integers(0, n_sub, 20_000))
    sub_seg = rng.integers(0, len(sp.in_mu), n_sub)
    sub_plan = rng.integers(0, sp.model_cum.shape[1], n_sub)

    def fast():
        return _tokens_lognormal(
            np.random.default_rng(1),
            np.random.default_rng(2),
            sub,
            sub_seg,
            sub_plan,
            sp.in_mu,
            sp.in_sigma,
            sp.in_max,
            sp.out_mu,
            sp.out_sigma,
            sp.out_max,
            sp.cache_hit,
            sp.model_cum,
        )

    def general():
        return _tokens_and_models(
            np.random.default_rng(1),
            np.random.default_rng(2),
            sub,
            sub_seg,
            sub_plan,
            sp.in_mu,
            sp.in_sigma,
            sp.in_max,
            sp.out_mu,
            sp.out_sigma,
            sp.out_max,
            sp.in_kind,
            sp.out_kind,
            sp.in_table_p,
            sp.in_table_q,
            sp.in_table_n,
            sp.out_table_p,
            sp.out_table_q,
            sp.out_table_n,
            np.zeros(0),
            np.zeros(0),
            sp.cache_hit,
            sp.model_cum,
        )

    for a, b in zip(fast(), general(), strict=True):
        np.testing.assert_array_equal(a, b)
