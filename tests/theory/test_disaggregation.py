"""Disaggregated prefill and decode (sim.engine.batching) against a reference and arithmetic.

A disaggregated pool prefills on its prefill replicas, moves each request's KV cache to a
decode replica (``latency + input tokens x seconds per token``) and decodes there. Checks:

* agreement, request by request, with ``simulate_disaggregated`` in
  tests/support/batching_reference.py, an event-by-event Python model of the same rules
  (start, first token, decode start and end within 1 microsecond; TTFT and TPOT p50/p95
  within 1%), over loads, both routers and a transfer time;
* the arithmetic of one request on idle replicas: first token after one prefill step, decode
  start one transfer later, then one step per output token;
* separation: the prefill side never sees the decode side, so the decode replica count
  leaves every request's start and first-token time unchanged to the bit, while it moves
  TPOT; more prefill replicas shorten TTFT;
* a transfer under way at midnight reaches the decode side the next day and holds its KV
  there, so the next day's request waits behind it.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import batching_reference as ref
from support.batch_means import poisson_times
from support.batching_load import REALISTIC, latency_summary, serve, workload
from support.kernel_harness import BatchSpec, Harness

from sim.engine.outcomes import SERVED

DAY = 86_400.0
REL = 0.01
"""Relative tolerance between the kernel and the reference on each summary metric."""
PER_REQUEST_S = 1e-6
"""Tolerance on each request's times (s): rounding is about 1e-11 s."""
N_REQ = 3_000
"""Requests per agreement check (the reference runs one Python step at a time)."""

COEF = REALISTIC
"""Step times of a mid-sized model's replica (s, tokens), both sides."""

TRANSFER_S_PER_TOKEN = 70_272 / 87e9
"""KV transfer time per token (s): DeepSeek's MLA bytes per token over the default 87 GB/s."""
TRANSFER_LATENCY_S = 0.005
"""A fixed handoff time (s), non-zero so that it is exercised."""


def run_kernel(t, inp, unc, out, prefill: int, decode: int, router="least_loaded", **kw):
    """Serve the requests on one disaggregated pool through serve_day (one day, drained)."""
    coef = {**COEF, **kw.pop("coef", {})}
    spec = BatchSpec(
        router=router,
        decode_replicas=decode,
        transfer_s_per_token=kw.pop("per_token", TRANSFER_S_PER_TOKEN),
        transfer_latency_s=kw.pop("latency", TRANSFER_LATENCY_S),
        **coef,
    )
    return serve(spec, prefill, t, inp, unc, out)


def run_reference(t, inp, unc, out, prefill: int, decode: int, router="least_loaded", coef=None):
    return ref.simulate_disaggregated(
        t, inp, unc, out, ref.Spec(**{**COEF, **(coef or {})}), prefill, decode,
        TRANSFER_S_PER_TOKEN, TRANSFER_LATENCY_S, router,
    )  # fmt: skip


def saturated_rate(prefill: int, decode: int, coef: dict | None = None) -> float:
    """Requests/s the pool serves when all arrive at once (the reference, 1,500 requests)."""
    inp, unc, out = workload(np.random.default_rng(100), 1_500)
    res = run_reference(np.zeros(1_500), inp, unc, out, prefill, decode, coef=coef)
    return 1_500 / float(np.max(res["end"]))


TIGHT_DECODE = {"kv_tokens": 60_000.0, "max_batch": 16}
"""A small KV budget and batch, so that requests queue on the decode side too."""

QUEUED_S = 0.1
"""A wait that shows a queue formed (s): several steps."""


@pytest.mark.parametrize(
    ("prefill", "decode", "load", "router", "coef"),
    [
        (1, 1, 0.5, "least_loaded", {}),
        (1, 2, 0.85, "least_loaded", {}),
        (2, 3, 0.9, "least_loaded", {}),
        (2, 3, 0.9, "round_robin", {}),
        (2, 2, 0.9, "least_loaded", TIGHT_DECODE),
    ],
)
def test_kernel_matches_the_reference(prefill, decode, load, router, coef):
    rng = np.random.default_rng(int(load * 100) + prefill + decode)
    inp, unc, out = workload(rng, N_REQ)
    t = poisson_times(rng, load * saturated_rate(prefill, decode, coef), N_REQ)
    assert t[-1] < DAY
    k = run_kernel(t, inp, unc, out, prefill, decode, router, coef=coef)
    r = run_reference(t, inp, unc, out, prefill, decode, router, coef=coef)
    np.testing.assert_array_equal(k["outcome"], r["outcome"])  # too long for 60,000: refused
    assert (k["outcome"] == SERVED).mean() > 0.99
    for key in ("start", "first", "end", "decode_start"):
        np.testing.assert_allclose(k[key], r[key], rtol=0, atol=PER_REQUEST_S, err_msg=key)
    mk, mr = latency_summary(k, t, out), latency_summary(r, t, out)
    bad = {key: (mk[key], mr[key]) for key in mr if abs(mk[key] / mr[key] - 1) > REL}
    assert not bad, f"kernel vs reference (kernel, reference): {bad}"
    # the load was real: requests queued for prefill, and for decode where its room is tight
    pre = np.maximum(unc, 1)
    alone = COEF["base_s"] * np.ceil(pre / COEF["chunk"]) + COEF["prefill_s"] * pre
    assert np.nanmax(k["first"] - t - alone) > QUEUED_S
    xfer = TRANSFER_LATENCY_S + inp * TRANSFER_S_PER_TOKEN
    decode_wait = np.nanmax(k["decode_start"] - k["first"] - xfer)
    assert (decode_wait > QUEUED_S) == bool(coef), decode_wait


def test_one_request_takes_a_prefill_step_a_transfer_and_its_decode_steps():
    inp, unc, out = 3_000.0, 2_000.0, 4.0
    k = run_kernel(np.array([10.0]), np.array([inp]), np.array([unc]), np.array([out]), 1, 1)
    b0, b1, b2, b3 = COEF["base_s"], COEF["prefill_s"], COEF["request_s"], COEF["context_s"]
    first = 10.0 + b0 + b1 * min(unc, COEF["chunk"])  # 2,048 tokens a step: one step short
    first += b0 + b1 * (unc - COEF["chunk"]) if unc > COEF["chunk"] else 0.0
    assert k["first"][0] == pytest.approx(first, rel=1e-12)
    arrive = first + TRANSFER_LATENCY_S + inp * TRANSFER_S_PER_TOKEN
    assert k["decode_start"][0] == pytest.approx(arrive, rel=1e-12)
    steps = [b0 + b2 + b3 * (inp + j) for j in (1, 2, 3)]  # context input + 1, + 2, + 3
    assert k["end"][0] == pytest.approx(arrive + sum(steps), rel=1e-12)


def test_decode_replicas_move_tpot_and_leave_the_prefill_side_untouched():
    rng = np.random.default_rng(3)
    inp, unc, out = workload(rng, N_REQ)
    t = poisson_times(rng, 0.8 * saturated_rate(2, 2), N_REQ)
    few = run_kernel(t, inp, unc, out, 2, 1)
    many = run_kernel(t, inp, unc, out, 2, 4)
    np.testing.assert_array_equal(few["start"], many["start"])
    np.testing.assert_array_equal(few["first"], many["first"])
    tpot_few = latency_summary(few, t, out)["tpot_p95"]
    tpot_many = latency_summary(many, t, out)["tpot_p95"]
    assert tpot_many < 0.8 * tpot_few, (tpot_few, tpot_many)
    more_prefill = run_kernel(t, inp, unc, out, 4, 4)
    ttft_more = latency_summary(more_prefill, t, out)["ttft_p95"]
    assert ttft_more < latency_summary(many, t, out)["ttft_p95"]


def test_a_transfer_under_way_at_midnight_holds_the_decode_replica_the_next_day():
    """A's prefill ends just before midnight and its KV lands 0.1 s after it; B, the next
    day, finds A's 11,000 of the decode replica's 12,000 KV tokens held and decodes only
    when A's 2,000 one-second steps end."""
    spec = {"base_s": 1.0, "prefill_s": 0.0, "kv_tokens": 12_000.0, "max_batch": 64}
    h = Harness(
        slots=[64],
        batch=[BatchSpec(**spec, decode_replicas=1, transfer_latency_s=0.1)],
    )
    one = {"sub": [0], "sub_plan": np.zeros(1, np.int64), "quota": [1e18], "uncached": [0.0]}
    a = h.run(t=[DAY - 1.05], input_tokens=[9_000.0], output=[2_001.0], **one)
    assert a["first"][0] == pytest.approx(DAY - 0.05)
    assert a["decode_start"][0] == pytest.approx(DAY + 0.05)
    assert a["end"][0] == pytest.approx(DAY + 2_000.05)
    assert len(a["ghosts"]) == 1  # in transfer at midnight
    b = h.run(t=[DAY + 10.0], input_tokens=[5_000.0], output=[10.0], day=1, **one)
    assert b["first"][0] == pytest.approx(DAY + 11.0)  # its prefill side is free
    assert b["decode_start"][0] == pytest.approx(DAY + 2_000.05)
