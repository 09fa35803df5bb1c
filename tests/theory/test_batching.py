"""Batched serving (sim.engine.batching) against a step-by-step reference and queueing theory.

Three kinds of check drive the compiled kernel through tests/support/kernel_harness.py:

* agreement with tests/support/batching_reference.py, a plain Python model that runs one
  step at a time: both implement the same deterministic rules, so on the same requests they
  should give the same times up to floating-point rounding (the kernel sums runs of steps in
  closed form, the reference one step at a time). TTFT and TPOT p50 and p95 and the
  throughput must agree within 1% relative, and each request's start, first and end times
  within 1 microsecond: both far above rounding (about 1e-11 s here); the per-request check
  also catches changes too small to move a percentile by 1% (one decode step more per
  request moves TPOT by about 0.5%, but every end time by a whole step, tens of ms);
* closed forms the rules reduce to: M/G/1 processor sharing when a step costs only a
  per-request term, M/G/1 (Pollaczek-Khinchine) when the batch holds one request; each
  estimate's standard error comes from batch means (20 batches, as in test_queueing.py),
  and the theory must fall within Z = 3.5 standard errors;
* arithmetic that needs no statistics: the KV budget caps the running requests, single
  requests on an idle replica take the step times the formula gives.

Every arrival precedes midnight: the harness simulates one day and drains it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from support import batching_reference as ref
from support.batch_means import Z, batch_mean, poisson_times
from support.batching_load import REALISTIC, latency_summary, serve, workload
from support.kernel_harness import BatchSpec, Harness

from sim.engine.outcomes import REFUSED_NO_CAPACITY, SERVED

DAY = 86_400.0
REL = 0.01
"""Relative tolerance between the kernel and the reference on each summary metric."""
PER_REQUEST_S = 1e-6
"""Tolerance on each request's start, first and end times (s): rounding is about 1e-11 s."""


# --------------------------------------------------------------------------- helpers


def day_of_arrivals(rng: np.random.Generator, lam: float, n: int) -> np.ndarray:
    """Poisson arrival times that all fall within the harness's one day."""
    t = poisson_times(rng, lam, n)
    assert t[-1] < DAY, "the harness simulates one day"
    return t


def run_kernel(
    t: np.ndarray,
    inp: np.ndarray,
    uncached: np.ndarray,
    output: np.ndarray,
    replicas: int = 1,
    router: str = "least_loaded",
    **coef,
) -> dict[str, np.ndarray]:
    """Serve the requests on one batched pool of ``replicas`` replicas through serve_day."""
    return serve(BatchSpec(router=router, **coef), replicas, t, inp, uncached, output)


def run_reference(
    t: np.ndarray,
    inp: np.ndarray,
    uncached: np.ndarray,
    output: np.ndarray,
    replicas: int = 1,
    router: str = "least_loaded",
    **coef,
) -> dict[str, np.ndarray]:
    return ref.simulate(t, inp, uncached, output, ref.Spec(**coef), replicas, router)


def summary(res: dict, t: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """TTFT and TPOT p50 / p95 (s) and throughput (completions per second of the run)."""
    return {
        **latency_summary(res, t, out),
        "throughput": len(t) / float(np.max(res["end"]) - t[0]),
    }


# --------------------------------------------------------------------------- (a) reference


N_REF = 4_000


@functools.cache
def saturated_throughput() -> float:
    """One replica's capacity (requests/s): the reference serving N_REF requests all at t = 0."""
    inp, unc, out = workload(np.random.default_rng(100), N_REF)
    res = run_reference(np.zeros(N_REF), inp, unc, out, **REALISTIC)
    return N_REF / float(np.max(res["end"]))


def assert_agree(t, inp, unc, out, replicas=1, router="least_loaded") -> None:
    """Kernel and reference on the same requests: each request's times within PER_REQUEST_S,
    every summary metric within REL."""
    k = run_kernel(t, inp, unc, out, replicas, router, **REALISTIC)
    r = run_reference(t, inp, unc, out, replicas, router, **REALISTIC)
    assert (k["outcome"] == SERVED).all()
    # request by request: the same times up to rounding (a step more or less moves >= 20 ms)
    for key in ("start", "first", "end"):
        np.testing.assert_allclose(k[key], r[key], rtol=0, atol=PER_REQUEST_S, err_msg=key)
    mk, mr = summary(k, t, out), summary(r, t, out)
    rel = {key: abs(mk[key] / mr[key] - 1) for key in mr}
    bad = {key: (mk[key], mr[key]) for key in mr if rel[key] > REL}
    assert not bad, f"kernel vs reference (kernel, reference): {bad}"


def test_saturated_burst_matches_reference():
    """All requests at t = 0: the queue keeps the batch full; the capacity the sweep uses."""
    inp, unc, out = workload(np.random.default_rng(100), N_REF)
    assert_agree(np.zeros(N_REF), inp, unc, out)
    cap = saturated_throughput()
    assert 1.0 < cap < 20.0, cap  # a few requests per second: the regime the sweep is about


@pytest.mark.parametrize("load", [0.3, 0.5, 0.7, 0.85, 0.95])
def test_one_replica_matches_reference_over_load(load: float):
    rng = np.random.default_rng(int(load * 100))
    inp, unc, out = workload(rng, N_REF)
    t = day_of_arrivals(rng, load * saturated_throughput(), N_REF)
    assert_agree(t, inp, unc, out)


@pytest.mark.parametrize("router", ["least_loaded", "round_robin"])
def test_four_replicas_match_reference(router: str):
    rng = np.random.default_rng(7)
    inp, unc, out = workload(rng, N_REF)
    t = day_of_arrivals(rng, 0.85 * 4 * saturated_throughput(), N_REF)
    assert_agree(t, inp, unc, out, replicas=4, router=router)


def test_least_loaded_router_sees_the_load_at_the_arrival_time():
    """Two replicas; request C arrives at t = 2 while A (100 KV tokens) runs its last step.

    Steps last 1 s + 0.5 s per decoding request. Replica 0 holds A (first token at 1, last at
    2.5); replica 1 holds B (53 KV tokens, last token at 4). At t = 2, A still holds its KV
    until 2.5, so replica 1 is the less loaded: C joins it at 2.5 and gets its token at 4
    (the step also decodes B). Sent to replica 0 instead, C would end at 3.5.
    """
    t = np.array([0.0, 0.0, 2.0])
    inp, out, unc = np.array([98.0, 50.0, 0.0]), np.array([2.0, 3.0, 1.0]), np.zeros(3)
    coef = {
        "base_s": 1.0,
        "prefill_s": 0.0,
        "request_s": 0.5,
        "context_s": 0.0,
        "chunk": 2048.0,
        "kv_tokens": 1e12,
        "max_batch": 64,
    }
    r = run_reference(t, inp, unc, out, 2, "least_loaded", **coef)
    assert list(r["replica"]) == [0, 1, 1]
    assert list(r["end"]) == [2.5, 4.0, 4.0]
    k = run_kernel(t, inp, unc, out, 2, "least_loaded", **coef)
    np.testing.assert_allclose(k["start"], r["start"])
    np.testing.assert_allclose(k["end"], r["end"])


# --------------------------------------------------------------------------- (b) M/G/1-PS


N_THEORY = 200_000
LAM = 3.0
"""Arrivals per second: N_THEORY arrivals span about 67,000 s, within one day."""


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_decode_only_steps_are_processor_sharing(rho: float):
    """A step of n decoding requests lasts b2 * n and gives each one token: M/G/1-PS.

    With no base, prefill or context cost and one (free) prefill token, a request needs
    (output - 1) * b2 seconds of work shared equally with the others, so its mean response
    time is E[W] / (1 - rho) whatever the distribution of W (here geometric output tokens).

    The steps add delay that PS does not have: the arrival waits for the step in progress
    to end (less than one step), its prefill step serves the others but not it (one step),
    and its last token comes at a step's end (less than one step). A step lasts b2 per
    decoding request; a Poisson arrival finds rho / (1 - rho) of them on average (PS, PASTA),
    so counting the request itself each of these delays averages at most
    b2 * (1 + rho / (1 - rho)) = b2 / (1 - rho): the allowance is three of them, about 1.5%
    of the response time at these loads, on the late side only (the steps only add delay).
    """
    rng = np.random.default_rng(int(rho * 10))
    p = 1 / 200  # geometric output: mean 200 tokens, E[output - 1] = 199
    e_work_tokens = 1 / p - 1
    b2 = rho / LAM / e_work_tokens
    t = day_of_arrivals(rng, LAM, N_THEORY)
    out = rng.geometric(p, N_THEORY).astype(float)
    res = run_kernel(
        t,
        np.zeros(N_THEORY),
        np.zeros(N_THEORY),
        out,
        base_s=0.0,
        prefill_s=0.0,
        request_s=b2,
        context_s=0.0,
        kv_tokens=1e15,
        max_batch=100_000,
    )
    theory = e_work_tokens * b2 / (1 - rho)
    allowance = 3 * b2 / (1 - rho)
    m, se = batch_mean(res["end"] - t)
    assert theory - Z * se < m < theory + Z * se + allowance, (m, se, theory, allowance)


# --------------------------------------------------------------------------- (c) M/G/1


def test_batch_of_one_is_mg1_pollaczek_khinchine():
    """max_batch = 1 and a constant step s0: a request's service is output * s0 exactly.

    Its prefill step gives the first token, each of its output - 1 decode steps one more,
    and the next queued request joins at the boundary where it ends: FIFO M/G/1, whose mean
    wait is lambda E[S^2] / (2 (1 - rho)) (Pollaczek-Khinchine).
    """
    rng = np.random.default_rng(21)
    rho, p = 0.7, 1 / 20  # geometric output: E[X] = 1/p, E[X^2] = (2 - p) / p^2
    s0 = rho / LAM * p
    t = day_of_arrivals(rng, LAM, N_THEORY)
    out = rng.geometric(p, N_THEORY).astype(float)
    zeros = np.zeros(N_THEORY)
    res = run_kernel(
        t, zeros, zeros, out, base_s=s0, prefill_s=0.0, request_s=0.0, context_s=0.0, max_batch=1
    )
    np.testing.assert_allclose(res["first"] - res["start"], s0, rtol=1e-6)
    np.testing.assert_allclose(res["end"] - res["start"], out * s0, rtol=1e-6)
    es2 = s0**2 * (2 - p) / p**2
    theory = LAM * es2 / (2 * (1 - rho))
    m, se = batch_mean(res["start"] - t)
    assert abs(m - theory) < Z * se, (m, se, theory)


# --------------------------------------------------------------------------- (d) KV budget


def max_running(start: np.ndarray, end: np.ndarray) -> int:
    """Most requests in a batch at once (one leaving at a boundary frees its place first)."""
    ev_t = np.concatenate([start, end])
    ev_d = np.concatenate([np.ones(len(start)), -np.ones(len(end))])
    o = np.lexsort((ev_d, ev_t))  # at equal times the departures (-1) first
    return int(np.cumsum(ev_d[o]).max())


KV_COEF = {**REALISTIC, "kv_tokens": 100_000.0, "max_batch": 1000}


@pytest.mark.parametrize(("inp_tok", "out_tok", "cap"), [(9_000, 1_000, 10), (900, 100, 100)])
def test_kv_budget_caps_the_batch(inp_tok: int, out_tok: int, cap: int):
    """200 requests at t = 0 of input + output KV tokens each: budget // (input + output) run."""
    n = 200
    t = np.zeros(n)
    inp, out = np.full(n, float(inp_tok)), np.full(n, float(out_tok))
    unc = inp.copy()
    res = run_kernel(t, inp, unc, out, **KV_COEF)
    assert (res["outcome"] == SERVED).all()
    assert max_running(res["start"], res["end"]) == cap
    # the first ``cap`` join at once; each later one joins the moment KV is freed
    assert (res["start"][:cap] == 0).all()
    assert (res["start"][cap:] > 0).all()
    assert np.isin(res["start"][cap:], res["end"]).all()
    r = run_reference(t, inp, unc, out, **KV_COEF)
    np.testing.assert_allclose(res["end"], r["end"], rtol=1e-9)


def test_head_of_queue_blocks_smaller_requests_behind_it():
    """FIFO admission: a request that would fit waits behind a head that does not."""
    t = np.array([0.0, 0.1, 0.2])
    inp = np.array([50_000.0, 60_000.0, 1_000.0])
    out = np.array([50.0, 10.0, 10.0])
    res = run_kernel(t, inp, inp.copy(), out, **KV_COEF)
    assert res["start"][1] == res["end"][0]  # the second waits for the first's KV
    assert res["start"][2] == res["start"][1]  # the third fits at once, but waits behind it
    r = run_reference(t, inp, inp.copy(), out, **KV_COEF)
    np.testing.assert_allclose(res["end"], r["end"], rtol=1e-9)


def test_request_larger_than_the_kv_budget_is_refused():
    t = np.array([0.0, 1.0, 2.0])
    inp = np.array([1_000.0, 99_999.0, 1_000.0])
    out = np.array([10.0, 2.0, 10.0])  # the second needs 100,001 KV tokens
    res = run_kernel(t, inp, inp.copy(), out, **KV_COEF)
    assert list(res["outcome"]) == [SERVED, REFUSED_NO_CAPACITY, SERVED]
    assert np.isnan(res["start"][1])
    assert np.isnan(res["end"][1])
    assert np.isfinite(res["end"][[0, 2]]).all()


# --------------------------------------------------------------------------- (e) routing


def test_per_replica_queues_wait_longer_than_the_pooled_slot_model():
    """Four single-request replicas (max_batch = 1, step s0) at rho = 0.8.

    Each replica is one server with service output * s0, but a request waits in the queue
    of the replica it was routed to even when another is idle. Round robin ignores the
    queues; least_loaded joins the queue with the fewest KV tokens (here output tokens,
    input = 0), which is close to the shortest queue but not the same as one shared queue.
    The slot model (``serving: slots``) pools the four servers behind one queue: M/G/4, no
    server idles while a request waits. So the slot model waits least, and it misses the
    waiting that per-replica queues cause: pooled < least_loaded < round_robin.
    """
    rng = np.random.default_rng(31)
    c, rho, p = 4, 0.8, 1 / 20
    s0 = rho * c / LAM * p
    t = day_of_arrivals(rng, LAM, N_THEORY)
    out = rng.geometric(p, N_THEORY).astype(float)
    zeros = np.zeros(N_THEORY)
    coef = {"base_s": s0, "prefill_s": 0.0, "request_s": 0.0, "context_s": 0.0, "max_batch": 1}
    wait = {}
    for router in ("least_loaded", "round_robin"):
        res = run_kernel(t, zeros, zeros, out, replicas=c, router=router, **coef)
        wait[router] = res["start"] - t
    n = N_THEORY
    pooled = Harness(slots=[c], occ_out=[s0]).run(
        t=t, sub=np.arange(n), sub_plan=np.zeros(n, np.int64), quota=np.full(n, 1e18), output=out
    )
    np.testing.assert_allclose(pooled["occ"], out * s0)  # the same servers, one shared queue
    wait["pooled"] = pooled["wait"]
    # the same arrivals and sizes in all three: compare per-request differences (paired)
    for a, b in (("pooled", "least_loaded"), ("least_loaded", "round_robin")):
        m, se = batch_mean(wait[b] - wait[a])
        assert m > Z * se, (a, b, m, se, {k: float(w.mean()) for k, w in wait.items()})


# --------------------------------------------------------------------------- (f) edge cases


EDGE = {**REALISTIC, "context_s": 1e-6}


def test_single_token_requests_on_an_idle_replica_take_one_step():
    """Requests far apart each find the replica idle: TTFT is one step and end == first.

    Output 1 ends at the first token; zero uncached input still prefills one token; the
    step holds only that request's prefill (no decoding request, no context).
    """
    t = np.array([0.0, 100.0, 200.0, 300.0])
    inp = np.array([0.0, 5_000.0, 5_000.0, 5_000.0])
    unc = np.array([0.0, 0.0, 1_500.0, 0.0])
    out = np.array([1.0, 1.0, 1.0, 3.0])
    res = run_kernel(t, inp, unc, out, **EDGE)
    step = EDGE["base_s"] + EDGE["prefill_s"] * np.maximum(unc, 1)
    np.testing.assert_allclose(res["start"], t)
    np.testing.assert_allclose(res["first"] - t, step, rtol=1e-12)
    assert (res["end"][:3] == res["first"][:3]).all()
    # output 3: two decode steps, holding input + 1 then input + 2 context tokens
    decode = [EDGE["base_s"] + EDGE["request_s"] + EDGE["context_s"] * (5_000 + k) for k in (1, 2)]
    assert res["end"][3] - res["first"][3] == pytest.approx(sum(decode), rel=1e-12)
    r = run_reference(t, inp, unc, out, **EDGE)
    np.testing.assert_allclose(res["end"], r["end"], rtol=1e-12)


@pytest.mark.parametrize(("arrival", "joins"), [(0.5, 1.0), (1.0, 1.0), (1.0 + 1e-9, 2.0)])
def test_arrival_joins_the_first_step_starting_at_or_after_it(arrival: float, joins: float):
    """Steps of 1 s from t = 0 (a request decoding 3 tokens): a later arrival joins the next one."""
    coef = {
        "base_s": 1.0,
        "prefill_s": 0.0,
        "request_s": 0.0,
        "context_s": 0.0,
        "chunk": 2048.0,
        "kv_tokens": 1e12,
        "max_batch": 64,
    }
    t = np.array([0.0, arrival])
    zeros, out = np.zeros(2), np.array([4.0, 1.0])
    res = run_kernel(t, zeros, zeros, out, **coef)
    assert res["start"][1] == joins
    assert res["end"][1] == joins + 1.0
    assert res["end"][0] == 4.0  # the newcomer's prefill does not delay the decoding request
    r = run_reference(t, zeros, zeros, out, **coef)
    np.testing.assert_array_equal(res["start"], r["start"])


def test_a_request_running_at_midnight_holds_its_kv_into_the_next_day():
    """Day 0's request A (11,000 KV tokens) runs past midnight; day 1's B (5,010) must wait.

    Steps last 1 s. A arrives at 86,000 s, prefills in one step and decodes 1,999 more: its
    last token comes at 88,000 s, which day 0's drain computes. The day's end carries A into
    day 1 with the steps it has left, so B, arriving at 86,401 s, finds 11,000 of the 12,000
    KV tokens held and joins only when A ends at 88,000 s (first token one step later). Were
    the carried request dropped, B would start at once.
    """
    h = Harness(
        slots=[64],
        batch=[BatchSpec(base_s=1.0, prefill_s=0.0, kv_tokens=12_000.0, max_batch=64)],
    )
    one = {"sub": [0], "sub_plan": np.zeros(1, np.int64), "quota": [1e18], "uncached": [0.0]}
    a = h.run(t=[86_000.0], input_tokens=[9_000.0], output=[2_000.0], **one)
    assert a["end"][0] == pytest.approx(88_000.0)
    ghosts = a["ghosts"]
    assert len(ghosts) == 1
    b = h.run(t=[DAY + 1.0], input_tokens=[5_000.0], output=[10.0], day=1, **one)
    assert b["start"][0] == pytest.approx(88_000.0)
    assert b["first"][0] == pytest.approx(88_001.0)
