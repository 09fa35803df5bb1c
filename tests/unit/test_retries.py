"""Clients that retry (a segment's ``retry``): when each retry comes, and what it costs.

Through the admission kernel (tests/support/kernel_harness.py), with exact times:

* a request refused by a concurrency limit comes back after 0.5 s, then 1 s (doubling), and
  stops after its retries; one that finds room is served;
* an abandoned request's retry leaves from its user's time-out (arrival + patience), not from
  the moment its turn in the queue would have come (the eager deadline watch), on slot and on
  batched pools;
* a retry past the day's end is not made, and is counted;
* every attempt is a row of its own: abandoned attempts give their quota charge back, so the
  subscriber's usage is the charges of the served attempts alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.kernel_harness import BatchSpec, Harness, PlanSpec, RetrySpec

from sim.engine.outcomes import ABANDONED, REFUSED_CONCURRENCY, SERVED

DAY = 86_400.0
SDK = RetrySpec(max_retries=2, backoff_s=0.5, factor=2.0, backoff_max_s=8.0)
"""The default policy (OpenAI's and Anthropic's SDKs): 2 retries, 0.5 s then 1 s."""


def one_sub(**kw):
    return {"sub": [0] * len(kw["t"]), "sub_plan": [0], "quota": [1e9], **kw}


def test_a_concurrency_refusal_is_retried_with_doubling_back_off():
    # A holds the only in-flight place for 10 s; B at 0.1 s is refused at 0.1, 0.6 and 1.6 s
    h = Harness(slots=[4], plans=[PlanSpec(concurrency=1)], retry=SDK)
    out = h.run(**one_sub(t=[0.0, 0.1], output=[10.0, 1.0]))
    assert list(out["attempt"]) == [0, 0, 1, 2]
    assert list(out["origin"]) == [0, 1, 1, 1]
    np.testing.assert_allclose(out["t"], [0.0, 0.1, 0.6, 1.6])
    assert list(out["outcome"]) == [SERVED] + [REFUSED_CONCURRENCY] * 3


def test_a_retry_that_finds_room_is_served():
    # A ends at 1 s: B's second retry, at 1.6 s, gets in
    h = Harness(slots=[4], plans=[PlanSpec(concurrency=1)], retry=SDK)
    out = h.run(**one_sub(t=[0.0, 0.1], output=[1.0, 1.0]))
    assert list(out["outcome"]) == [SERVED, REFUSED_CONCURRENCY, REFUSED_CONCURRENCY, SERVED]
    assert out["start"][3] == pytest.approx(1.6)


def test_without_a_retry_policy_nothing_comes_back():
    h = Harness(slots=[4], plans=[PlanSpec(concurrency=1)])
    out = h.run(**one_sub(t=[0.0, 0.1], output=[10.0, 1.0]))
    assert len(out["outcome"]) == 2
    assert int(out["retry_rows"][1]) == 0


def test_an_abandoned_request_retries_from_its_time_out_on_a_slot_pool():
    """One slot busy for 100 s; B (patience 5 s) arrives at 1 s. Its user gives up at 6 s and
    retries at 6.5 s, gives up again at 11.5 s, retries at 12.5 s, gives up at 17.5 s. Were
    abandonment seen only when B's turn came (100 s), the first retry would come at 100.5 s."""
    h = Harness(slots=[1], retry=SDK)
    out = h.run(**one_sub(t=[0.0, 1.0], output=[100.0, 1.0], patience=[np.inf, 5.0]))
    np.testing.assert_allclose(out["t"], [0.0, 1.0, 6.5, 12.5])
    assert list(out["outcome"]) == [SERVED, ABANDONED, ABANDONED, ABANDONED]
    assert out["usage"][0] == pytest.approx(1.0)  # only A's charge: each abandoned gave it back


def test_an_abandoned_request_retries_from_its_time_out_on_a_batched_pool():
    """A batch of one request: A decodes 100 one-second steps; B waits and times out as above."""
    spec = BatchSpec(base_s=1.0, prefill_s=0.0, max_batch=1)
    h = Harness(slots=[1], batch=[spec], retry=SDK)
    out = h.run(**one_sub(t=[0.0, 1.0], output=[100.0, 1.0], patience=[np.inf, 5.0]))
    np.testing.assert_allclose(out["t"], [0.0, 1.0, 6.5, 12.5])
    assert list(out["outcome"]) == [SERVED, ABANDONED, ABANDONED, ABANDONED]


def test_a_retry_that_would_come_after_midnight_is_not_made():
    h = Harness(slots=[4], plans=[PlanSpec(concurrency=1)], retry=SDK)
    out = h.run(**one_sub(t=[DAY - 2.0, DAY - 0.8], output=[10.0, 1.0]))
    # B refused at DAY - 0.8; its retry at DAY - 0.3 refused; the next (DAY + 0.7) not made
    np.testing.assert_allclose(out["t"], [DAY - 2.0, DAY - 0.8, DAY - 0.3])
    assert int(out["retry_rows"][1]) == 1


def test_back_off_is_capped():
    # 5 retries of 1 s doubling, capped at 3 s: 1, 2, 3, 3, 3
    policy = RetrySpec(max_retries=5, backoff_s=1.0, factor=2.0, backoff_max_s=3.0)
    h = Harness(slots=[4], plans=[PlanSpec(concurrency=1)], retry=policy)
    out = h.run(**one_sub(t=[0.0, 0.0], output=[1000.0, 1.0]))
    np.testing.assert_allclose(np.diff(out["t"][1:]), [1.0, 2.0, 3.0, 3.0, 3.0])


def test_a_timed_out_request_frees_its_in_flight_place_for_its_retry():
    """B's subscriber may have one request in flight. B times out at 6 s while still queued
    behind A (another subscriber's); its retry at 6.5 s must find the place free and queue,
    not be refused as if B still held it."""
    h = Harness(slots=[1], plans=[PlanSpec(concurrency=1)], retry=SDK)
    out = h.run(
        t=[0.0, 1.0],
        sub=[1, 0],
        sub_plan=[0, 0],
        quota=[1e9, 1e9],
        output=[100.0, 1.0],
        patience=[np.inf, 5.0],
    )
    np.testing.assert_allclose(out["t"], [0.0, 1.0, 6.5, 12.5])
    assert list(out["outcome"]) == [SERVED, ABANDONED, ABANDONED, ABANDONED]
    assert out["inflight"][0] == 0
