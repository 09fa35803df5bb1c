"""Impatient users: requests that leave the queue when their first token would come too late.

A segment's ``patience`` (lognormal, median and spread) is the longest time to first token its
users wait. Checked here on whole runs: abandoned requests are counted apart, burn no quota and
no GPU time, appear in the ledger, and every conservation law still holds; less patience means
more abandoned requests and shorter waits for those who stay. (Erlang-A, the M/M/c+M limit, is
checked on the kernel in tests/theory/test_queueing.py.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.conservation import check_all
from support.scenarios import congested_dict

from sim.experiments.runner import run_scenario
from sim.results.tables import RunResult
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data

SEED = 3


def congested(patience: dict[str, float] | None) -> dict[str, Any]:
    """One month of the small scenario with the ``big`` pool short of slots (queues of seconds)."""
    d = congested_dict(3, horizon_months=1)
    for g in d["segments"]:
        if patience is not None:
            g["patience"] = dict(patience)
    return d


def run(patience: dict[str, float] | None) -> RunResult:
    return run_scenario(validate_data(congested(patience)), SEED, replications=1)


@pytest.fixture(scope="module")
def impatient() -> RunResult:
    return run({"median_s": 5.0, "sigma": 0.5})


def test_abandoned_requests_are_counted_apart_and_every_law_holds(impatient: RunResult):
    check_all(impatient)  # requests = served + refused + abandoned, tokens, money, subscribers
    m = impatient.replications[0].acc.monthly
    abandoned = float(m["abandoned"].sum())
    assert abandoned > 100, "the congested pool makes some users leave"
    k = impatient.kpis().iloc[0]
    assert k["abandoned_share"] == pytest.approx(abandoned / float(m["requests"].sum()))
    refused = sum(
        float(m[x].sum())
        for x in ("refused_quota", "refused_throttle", "refused_concurrency", "refused_capacity")
    )
    assert k["refused_share"] == pytest.approx(refused / float(m["requests"].sum()))
    # the ledger carries them per subscriber-month, apart from refusals
    led = impatient.ledger()
    assert led["abandoned"].sum() == pytest.approx(abandoned)
    assert led["tokens_abandoned"].sum() == pytest.approx(float(m["tokens_abandoned"].sum()))


def test_abandoned_requests_burn_no_quota(impatient: RunResult):
    """Quota used in each subscriber-month = the charges of its served requests only.

    On the ``lite`` plan (cut-off, every token weighing 1, no rollover) the charge of a request
    is its input + output tokens, so the ledger's used units equal its tokens served (abandoned
    and refused requests excluded). The payg plan's overage (whole blocks over the quota of the
    used units) is checked by check_all.
    """
    led = impatient.ledger()
    rows = led[led["plan"].astype(str) == "lite"]
    assert len(rows)
    assert (rows["abandoned"] > 0).any()
    np.testing.assert_allclose(rows["used_units"], rows["tokens_served"], rtol=1e-9, atol=1e-6)


def test_less_patience_more_abandoned_and_shorter_waits():
    patient = run({"median_s": 60.0, "sigma": 0.5})
    hasty = run({"median_s": 2.0, "sigma": 0.5})
    never = run(None)
    share = [r.kpis().iloc[0]["abandoned_share"] for r in (never, patient, hasty)]
    assert share[0] == 0.0
    assert share[0] < share[1] < share[2], share
    wait = [r.kpis().iloc[0]["wait_mean_s"] for r in (never, patient, hasty)]
    assert wait[0] > wait[1] > wait[2], wait


@pytest.mark.parametrize(
    ("patience", "field"),
    [
        ({"median_s": 0.0}, "median_s"),
        ({"median_s": -1.0}, "median_s"),
        ({"median_s": float("nan")}, "median_s"),
        ({"median_s": 5.0, "sigma": -0.1}, "sigma"),
        ({"median": 5.0}, "median"),
    ],
)
def test_a_bad_patience_is_refused_naming_the_field(patience: dict[str, float], field: str):
    with pytest.raises(ScenarioError) as e:
        validate_data(congested(patience))
    assert any("patience" in where and field in where for where, _ in e.value.problems), (
        e.value.problems
    )


# --------------------------------------------------------------------------- retries


def retrying(patience: float = 5.0, retry: dict[str, float] | None = None) -> dict[str, Any]:
    """The congested month with impatient users whose clients retry (the SDK defaults)."""
    d = congested({"median_s": patience, "sigma": 0.5})
    for g in d["segments"]:
        g["retry"] = dict(retry or {})
    return d


@pytest.fixture(scope="module")
def retried() -> RunResult:
    return run_scenario(validate_data(retrying()), SEED, replications=1)


def test_retries_are_requests_of_their_own_and_every_law_holds(
    retried: RunResult, impatient: RunResult
):
    check_all(retried)  # each attempt is offered, and served, refused or abandoned
    m, m0 = retried.replications[0].acc.monthly, impatient.replications[0].acc.monthly
    retries = float(m["retries"].sum())
    assert retries > 100
    assert float(m0["retries"].sum()) == 0.0
    # the same first attempts, up to the renewals the two runs decide differently, plus retries
    first = float(m["requests"].sum()) - retries
    assert first == pytest.approx(float(m0["requests"].sum()), rel=0.05)
    # retries win back requests (a larger share of first attempts ends up served: 88.2% against
    # 86.3% when measured), but their extra load makes the congested pool shed more attempts
    # (63,537 abandoned against 21,792): a retry storm
    served_share = float(m["served"].sum()) / first
    assert served_share > float(m0["served"].sum()) / float(m0["requests"].sum())
    assert float(m["abandoned"].sum()) > 2 * float(m0["abandoned"].sum())


def test_abandoned_retries_burn_no_quota_either(retried: RunResult):
    led = retried.ledger()
    rows = led[led["plan"].astype(str) == "lite"]
    assert (rows["abandoned"] > 0).any()
    np.testing.assert_allclose(rows["used_units"], rows["tokens_served"], rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"max_retries": 0}, "max_retries"),
        ({"max_retries": 11}, "max_retries"),
        ({"backoff_s": 0.0}, "backoff_s"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"backoff_max_s": float("inf")}, "backoff_max_s"),
    ],
)
def test_a_bad_retry_policy_is_refused_naming_the_field(retry: dict[str, float], field: str):
    with pytest.raises(ScenarioError) as e:
        validate_data(retrying(retry=retry))
    assert any("retry" in where and field in where for where, _ in e.value.problems), (
        e.value.problems
    )
