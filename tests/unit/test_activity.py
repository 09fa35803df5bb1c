"""Activity spells of API customers: the modulated arrival kernel and its fit.

The kernel multiplies a subscriber's rate by exp(sigma Z - sigma^2/2) per 10-minute window, Z
a unit-variance AR(1) with coefficient phi = exp(-600 s / timescale). So the window counts
divided by their expectation have mean 1, variance (exp(sigma^2) - 1) plus the Poisson 1/lam,
and autocorrelation (exp(sigma^2 phi^L) - 1) / (exp(sigma^2) - 1) at lag L (Poisson noise
scaled in); the fit must recover known parameters from data made by the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.scenarios import small_dict

from sim.calibration.activity import _fit, _window_cv, arrival_cv_fit, client_windows
from sim.engine.demand import DemandGenerator, _modulated_sessions
from sim.engine.lifecycle import initial_population
from sim.engine.metrics import Accumulators
from sim.engine.population import Population
from sim.engine.resolution import ACTIVITY_WINDOW_S
from sim.engine.streams import Streams
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data
from sim.traces.stats import autocorrelation, client_window_iat_cv
from sim.units import SECONDS_PER_DAY
from sim.world.build import build

WINDOWS_PER_DAY = int(SECONDS_PER_DAY / ACTIVITY_WINDOW_S)


def _window_counts(sigma: float, tau: float, subs: int, days: int, per_day: float, seed: int = 3):
    """[subs, days x 144] session counts of the kernel with a flat hour profile."""
    rng, act = np.random.Generator(np.random.PCG64(seed)), np.random.Generator(np.random.PCG64(9))
    ids = np.arange(subs)
    z = act.standard_normal(subs)
    out = np.zeros((subs, days * WINDOWS_PER_DAY))
    for d in range(days):
        t, sub = _modulated_sessions(
            rng,
            act,
            ids,
            np.full(subs, per_day),
            np.zeros(subs, dtype=np.int64),
            d * SECONDS_PER_DAY,
            np.ones((1, 24)),
            np.array([sigma]),
            np.array([np.exp(-ACTIVITY_WINDOW_S / tau)]),
            z,
            np.ones(1),
            np.zeros(subs),
            np.ones(1),
            np.zeros(1),
            np.ones(1),
        )
        np.add.at(out, (sub, (t // ACTIVITY_WINDOW_S).astype(np.int64)), 1.0)
    return out


def test_modulated_counts_have_the_lognormal_mean_variance_and_autocorrelation():
    sigma, tau, per_day = 0.8, 3600.0, 144 * 400.0  # 400 sessions per window on average
    x = _window_counts(sigma, tau, subs=60, days=20, per_day=per_day) / 400.0
    assert x.mean() == pytest.approx(1.0, rel=0.03)  # exp(sigma Z - sigma^2/2) has mean 1
    var_a = np.expm1(sigma**2)
    assert x.var(axis=1).mean() == pytest.approx(var_a + 1 / 400, rel=0.08)
    phi = np.exp(-ACTIVITY_WINDOW_S / tau)
    for lag in (1, 6, 18):  # 10 min, 1 h, 3 h
        want = np.expm1(sigma**2 * phi**lag) / np.expm1(sigma**2) * var_a / (var_a + 1 / 400)
        got = autocorrelation(x, lag).mean()  # one value per subscriber
        assert got == pytest.approx(want, abs=0.04), lag


def test_the_activity_state_carries_over_midnight():
    # a slow process: the last window of a day and the first of the next are alike
    x = _window_counts(1.0, 6 * 3600.0, subs=200, days=2, per_day=144 * 400.0)
    last, first = x[:, WINDOWS_PER_DAY - 1], x[:, WINDOWS_PER_DAY]
    assert np.corrcoef(np.log(last), np.log(first))[0, 1] > 0.9


def test_the_hour_profile_still_shapes_a_modulated_day():
    rng, act = np.random.Generator(np.random.PCG64(1)), np.random.Generator(np.random.PCG64(2))
    subs = 3000
    hours = np.ones((1, 24))
    hours[0, 20] = 3.0
    hours /= hours.mean()
    t, _ = _modulated_sessions(
        rng,
        act,
        np.arange(subs),
        np.full(subs, 240.0),
        np.zeros(subs, dtype=np.int64),
        0.0,
        hours,
        np.array([1.0]),
        np.array([0.9]),
        act.standard_normal(subs),
        np.ones(1),
        np.zeros(subs),
        np.ones(1),
        np.zeros(1),
        np.ones(1),
    )
    per_hour = np.bincount((t // 3600).astype(int), minlength=24)
    assert per_hour[20] / np.delete(per_hour, 20).mean() == pytest.approx(3.0, rel=0.1)
    assert len(t) == pytest.approx(subs * 240, rel=0.05)


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_renewal_session_starts_have_the_requested_cv_and_rate_across_days(cv: float):
    rng, act = np.random.Generator(np.random.PCG64(6)), np.random.Generator(np.random.PCG64(7))
    subs, days, per_day = 20, 5, 2000.0
    resid = np.full(subs, -1.0)  # not started: equilibrium start
    hours = np.ones((1, 24))
    hours[0, :6] = 0.0  # a silent night: the operational clock stops, gaps do not
    hours /= hours.mean()
    ts, subs_out = [], []
    for d in range(days):
        t, sub = _modulated_sessions(
            rng,
            act,
            np.arange(subs),
            np.full(subs, per_day),
            np.zeros(subs, dtype=np.int64),
            d * SECONDS_PER_DAY,
            hours,
            np.zeros(1),
            np.zeros(1),
            np.zeros(subs),
            np.array([cv]),
            resid,
            np.ones(1),
            np.zeros(1),
            np.ones(1),
        )
        ts.append(t)
        subs_out.append(sub)
    t, sub = np.concatenate(ts), np.concatenate(subs_out)
    assert len(t) == pytest.approx(subs * days * per_day, rel=0.03)
    assert not ((t % SECONDS_PER_DAY) < 6 * 3600).any()
    gaps = []
    for i in range(subs):  # gaps in operational time: daytime gaps (the rate is flat there)
        x = np.sort(t[sub == i])
        g = np.diff(x)
        gaps.append(g[(x[1:] // SECONDS_PER_DAY) == (x[:-1] // SECONDS_PER_DAY)])
    g = np.concatenate(gaps)
    assert g.mean() == pytest.approx(18 * 3600 / per_day, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.06)


def _daily_requests(sigma: float, days: int = 4) -> tuple[int, float]:
    """Requests of the small scenario over ``days`` and the CV of its 10-minute counts."""
    d = small_dict()
    api = d["segments"][1]  # 60 API-like customers with ~125 requests per 10 min in all
    api.update(
        sessions_per_day=300.0,
        requests_per_session=1.0,
        activity_sigma=sigma,
        activity_timescale_s=7200.0,
    )
    w = build(validate_data(d))
    streams = Streams(11, 0)
    pop = Population(capacity=1000, n_models=len(w.model_names))
    initial_population(w, pop, Accumulators(w), streams)
    gen = DemandGenerator(w, streams)
    t = np.concatenate([gen.day(pop, day).t for day in range(days)])
    counts = np.bincount((t // ACTIVITY_WINDOW_S).astype(int))[: days * WINDOWS_PER_DAY]
    return len(t), float(counts.std() / counts.mean())


def test_activity_keeps_the_demand_and_makes_the_rate_burstier():
    # one modulated segment beside an unmodulated one (the mixed path)
    n0, cv0 = _daily_requests(0.0)
    n1, cv1 = _daily_requests(1.0)
    assert n1 == pytest.approx(n0, rel=0.1)  # same mean demand
    assert cv1 > 1.3 * cv0


def test_bad_activity_parameters_are_named():
    for field, bad in (("activity_sigma", -0.1), ("activity_timescale_s", 0)):
        d = small_dict()
        d["segments"][0][field] = bad
        with pytest.raises(ScenarioError) as e:
            validate_data(d)
        assert e.value.problems[0][0] == f"segments[0].{field}"


def _synthetic_arrivals(sigma: float, tau: float, customers: int, days: int) -> pd.DataFrame:
    """ServeGen-shaped arrivals made by the model itself (expected counts, no Poisson noise)."""
    rng = np.random.default_rng(4)
    n = days * WINDOWS_PER_DAY
    phi = np.exp(-ACTIVITY_WINDOW_S / tau)
    z = np.empty((customers, n))
    z[:, 0] = rng.standard_normal(customers)
    for k in range(1, n):
        z[:, k] = phi * z[:, k - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(customers)
    hours = 1 + 0.3 * np.sin(np.arange(24) / 24 * 2 * np.pi)
    start = np.arange(n) * int(ACTIVITY_WINDOW_S)
    rate = 5.0 * np.exp(sigma * z - sigma**2 / 2) * hours[(start // 3600) % 24]
    c, w = np.meshgrid(np.arange(customers), start, indexing="ij")
    return pd.DataFrame(
        {
            "client": c.ravel(),
            "window_start_s": w.ravel(),
            "rate_rps": rate.ravel(),
            "model": "synthetic",
        }
    )


def test_the_fit_recovers_the_parameters_of_data_made_by_the_model():
    arr = _synthetic_arrivals(0.9, 10_000.0, customers=40, days=14)
    x, grid = client_windows(arr)
    assert x.shape == (40, 14 * WINDOWS_PER_DAY)
    sigma, tau, hhi, _ = _fit(x, grid, seed=1)
    assert hhi == pytest.approx(1 / 40, rel=0.1)
    assert sigma == pytest.approx(0.9, rel=0.15)
    assert tau == pytest.approx(10_000.0, rel=0.35)


def test_client_window_iat_cv_sees_poisson_and_bursty_customers_and_skips_thin_windows():
    rng = np.random.default_rng(8)
    day = SECONDS_PER_DAY
    poisson = np.cumsum(rng.exponential(2.0, 40_000))  # ~300 requests per window
    bursty = np.cumsum(rng.gamma(0.25, 8.0, 40_000))  # CV 2, same mean gap
    poisson, bursty = poisson[poisson < day], bursty[bursty < day]
    thin = np.arange(0, day, 120.0)  # 5 requests per window: below ServeGen's cut of 10
    t = np.concatenate([poisson, thin])
    c = np.r_[np.zeros(len(poisson)), np.ones(len(thin))]
    assert client_window_iat_cv(t, c) == pytest.approx(1.0, abs=0.05)
    t2 = np.concatenate([bursty, thin])
    c2 = np.r_[np.zeros(len(bursty)), np.ones(len(thin))]
    assert client_window_iat_cv(t2, c2) == pytest.approx(2.0, rel=0.15)
    # request weights: a regular customer (CV 0, 20 per window) outweighs a Poisson one (~12)
    regular = np.arange(0, day, 30.0)
    sparse = np.sort(rng.uniform(0, day, 144 * 12))
    t3 = np.concatenate([regular, sparse])
    c3 = np.r_[np.zeros(len(regular)), np.ones(len(sparse))]
    assert client_window_iat_cv(t3, c3) == pytest.approx(0.0, abs=1e-9)


def test_the_arrival_cv_fit_inverts_windows_made_by_a_gamma_renewal():
    rng = np.random.default_rng(12)
    clients, windows, true_cv = 40, 30, 2.0
    n = rng.integers(10, 40, clients * windows)
    iat = [_window_cv(int(k), true_cv, rng) for k in n]
    arr = pd.DataFrame(
        {
            "client": np.repeat(np.arange(clients), windows),
            "window_start_s": np.tile(np.arange(windows) * 600, clients),
            "rate_rps": n / 600.0,
            "iat_cv": iat,
        }
    )
    fit = arrival_cv_fit(arr)
    # small windows bias a window's sample CV down: the fit must undo that, not copy the median
    assert fit.median_iat_cv < 0.9 * true_cv
    assert fit.cv == pytest.approx(true_cv, rel=0.06)
    assert 0 < fit.cv_se < 0.3
