"""The cluster against queueing theory: Erlang C, Pollaczek-Khinchine, Cobham, Little.

Kernel-level checks drive sim.engine.admission.serve_day with Poisson arrivals and known service
distributions; each estimate's standard error comes from batch means (20 batches; batch means
still understate the error a little when the queue is strongly autocorrelated), and the theory
must fall within 3.5 standard errors of the estimate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.batch_means import Z, batch_mean, poisson_times
from support.kernel_harness import Harness, PlanSpec
from support.scenarios import small_dict

from sim.engine.outcomes import ABANDONED
from sim.engine.replication import run_replication
from sim.scenario.loading import validate_data
from sim.world.build import build

N = 400_000


def erlang_c(c: int, a: float) -> float:
    """Probability an arrival waits in M/M/c with offered load a = lambda/mu."""
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def single_class(slots: int, t: np.ndarray, service: np.ndarray) -> dict:
    n = len(t)
    h = Harness(slots=[slots])
    return h.run(
        t=t,
        sub=np.arange(n),
        sub_plan=np.zeros(n, np.int64),
        quota=np.full(n, 1e18),
        output=service,
    )


@pytest.mark.parametrize(("c", "rho"), [(1, 0.7), (4, 0.8), (16, 0.9)])
def test_mmc_mean_wait_and_wait_probability_match_erlang_c(c: int, rho: float):
    rng = np.random.default_rng(11 + c)
    mu = 1.0
    lam = rho * c * mu
    out = single_class(c, poisson_times(rng, lam, N), rng.exponential(1 / mu, N))
    pw = erlang_c(c, lam / mu)
    wq = pw / (c * mu - lam)
    m, se = batch_mean(out["wait"])
    assert abs(m - wq) < Z * se, (m, se, wq)
    p, se_p = batch_mean((out["wait"] > 0).astype(float))
    assert abs(p - pw) < Z * se_p, (p, se_p, pw)


def test_mg1_mean_wait_matches_pollaczek_khinchine():
    rng = np.random.default_rng(5)
    mu_ln, sigma = -0.5, 0.8  # lognormal service: E[S] = exp(mu + s^2/2)
    es = math.exp(mu_ln + sigma**2 / 2)
    es2 = math.exp(2 * mu_ln + 2 * sigma**2)
    lam = 0.75 / es
    out = single_class(1, poisson_times(rng, lam, N), rng.lognormal(mu_ln, sigma, N))
    wq = lam * es2 / (2 * (1 - lam * es))
    m, se = batch_mean(out["wait"])
    assert abs(m - wq) < Z * se, (m, se, wq)


def test_two_class_priority_waits_match_cobham():
    """Non-preemptive priority M/M/1: W_k = W0 / ((1 - s_{k-1})(1 - s_k))."""
    rng = np.random.default_rng(9)
    lam1, lam2, mu = 0.3, 0.5, 1.0
    t = poisson_times(rng, lam1 + lam2, N)
    cls = (rng.random(N) < lam2 / (lam1 + lam2)).astype(np.int64)  # 0 high, 1 low
    h = Harness(slots=[1], plans=[PlanSpec(priority=0), PlanSpec(priority=1)])
    out = h.run(
        t=t,
        sub=np.arange(N),
        sub_plan=cls,
        quota=np.full(N, 1e18),
        output=rng.exponential(1 / mu, N),
    )
    w0 = (lam1 + lam2) * 2 / mu**2 / 2
    s1, s = lam1 / mu, (lam1 + lam2) / mu
    w_high, w_low = w0 / (1 - s1), w0 / ((1 - s1) * (1 - s))
    for k, theory in ((0, w_high), (1, w_low)):
        m, se = batch_mean(out["wait"][cls == k])
        assert abs(m - theory) < Z * se, (k, m, se, theory)


def test_littles_law_queue_length_equals_arrival_rate_times_wait():
    """Time-average queue length, measured from the queue's own trajectory, equals lambda*Wq."""
    rng = np.random.default_rng(3)
    c, lam = 3, 2.4
    t = poisson_times(rng, lam, N)
    out = single_class(c, t, rng.exponential(1.0, N))
    # queue length path: +1 at arrival, -1 at service start; integrate over [t0, t_end]
    ev_t = np.concatenate([t, out["start"]])
    ev_d = np.concatenate([np.ones(N), -np.ones(N)])
    o = np.argsort(ev_t, kind="stable")
    ev_t, q = ev_t[o], np.cumsum(ev_d[o])
    area = float(np.sum(q[:-1] * np.diff(ev_t)))
    lq = area / (ev_t[-1] - ev_t[0])
    lam_hat = N / (t[-1] - t[0])
    assert lq == pytest.approx(lam_hat * out["wait"].mean(), rel=0.01)


def _flat_scenario(gpus: int, sessions: float) -> dict:
    d = small_dict(horizon_months=1, days_per_month=10)
    d["catalog"]["models"][0]["serving"][0]["batch_slots_per_replica"] = 1
    for s in d["segments"]:
        s["hour_profile"] = [1.0] * 24
        s["requests_per_session"] = 1.0
        s["sessions_per_day"] = sessions
        s["acquisition"] = {"model": "constant", "per_month": 0}
        s["churn_intercept"] = -30.0
        s["model_preference"] = {"big": 1.0, "small": 0.0}
        s["input_tokens"].pop("max", None)
        s["output_tokens"].pop("max", None)
    for p in d["plans"]:
        p["quota"]["amount"] = 1e15
    d["cluster"]["pools"][0]["gpus"] = gpus
    return d


def test_utilisation_equals_offered_load_over_capacity():
    """Whole engine: busy slot-seconds / capacity = lambda E[S] / c, E[S] from the catalog."""
    d = _flat_scenario(gpus=2, sessions=300.0)
    world = build(validate_data(d))
    seg, pool = world.seg, world.pool
    n_subs = seg.initial.astype(float)
    e_in, e_out = seg.mean_tokens()
    es = (e_in * (1 - seg.cache_hit)) * pool.occ_in[0] + e_out * pool.occ_out[0]
    lam = float((n_subs * seg.sessions_per_day).sum()) / 86400.0  # requests/s
    offered = float((n_subs * seg.sessions_per_day * es).sum()) / 86400.0
    slots = int(pool.slots_by_month[0, 0])
    utils = []
    for seed in range(4):
        r = run_replication(world, seed)
        busy = r.acc.hourly["busy_slot_s"][: 10 * 24, 0].sum()
        utils.append(busy / (slots * 10 * 86400.0))
    expected = offered / slots
    assert 0.3 < expected < 0.9, "the test scenario should load the pool"
    m = float(np.mean(utils))
    se = float(np.std(utils, ddof=1) / 2)
    # token rounding and lognormal sampling noise: 3 standard errors plus 1% of the mean
    assert abs(m - expected) < 3 * se + 0.01 * expected, (m, se, expected, lam)
    print(f"utilisation {m:.4f} +- {se:.4f}, offered load / capacity {expected:.4f}")


def erlang_a_abandonment(c: int, lam: float, mu: float, theta: float, n_max: int = 2000) -> float:
    """P(abandon) in M/M/c+M (Erlang-A): the birth-death chain with death rate
    min(n, c) mu + max(n - c, 0) theta; abandonments per unit time theta E[(N - c)+] over lambda.
    """
    log_p = np.zeros(n_max + 1)
    for n in range(1, n_max + 1):
        death = min(n, c) * mu + max(n - c, 0) * theta
        log_p[n] = log_p[n - 1] + math.log(lam / death)
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    queue = np.maximum(np.arange(n_max + 1) - c, 0)
    return float(theta * (p * queue).sum() / lam)


@pytest.mark.parametrize(("c", "rho", "theta"), [(1, 0.9, 0.5), (4, 1.1, 1.0), (8, 0.95, 0.2)])
def test_abandonment_matches_erlang_a(c: int, rho: float, theta: float):
    """Exponential patience on the queue wait: the kernel is M/M/c+M, even above rho = 1.

    A queued request whose wait would exceed its patience leaves when its turn comes rather
    than at the moment its patience runs out; since it never holds a slot, nobody's wait
    changes, so the abandoned share is Erlang-A's.
    """
    rng = np.random.default_rng(17 + c)
    mu = 1.0
    lam = rho * c * mu
    n = N
    t = poisson_times(rng, lam, n)
    h = Harness(slots=[c])
    out = h.run(
        t=t,
        sub=np.arange(n),
        sub_plan=np.zeros(n, np.int64),
        quota=np.full(n, 1e18),
        output=rng.exponential(1 / mu, n),
        patience=rng.exponential(1 / theta, n),
    )
    abandoned = (out["outcome"] == ABANDONED).astype(float)
    p, se = batch_mean(abandoned)
    theory = erlang_a_abandonment(c, lam, mu, theta)
    assert 0.01 < theory < 0.5, theory  # the regime the test is about
    assert abs(p - theory) < Z * se, (p, se, theory)
    # abandoned requests burn no quota and never start
    assert np.isnan(out["start"][abandoned > 0]).all()
    assert out["usage"].sum() == pytest.approx(float(n - abandoned.sum()))
