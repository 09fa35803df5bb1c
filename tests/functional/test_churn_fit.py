"""Churn calibration: the fit reaches its targets on the KPI the product reports, reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.experiments.churn_fit import (
    apply_intercepts,
    fit_churn,
    parse_targets,
    replication_segment_churn,
    segment_churn,
)
from sim.experiments.runner import run_scenario
from sim.scenario.loading import validate_data
from sim.scenario.schema import Scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TARGETS = {"chat": 0.07, "coder": 0.04}


def _fit_dict() -> dict:
    """The small scenario with enough subscribers for a monthly churn estimate to ~1 pp."""
    d = small_dict(horizon_months=3, replications=1)
    chat, coder = d["segments"]
    chat.update(initial_subscribers=1000, sessions_per_day=0.5)
    chat["acquisition"] = {"model": "constant", "per_month": 100}
    coder.update(initial_subscribers=400, sessions_per_day=0.3)
    return d


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return validate_data(_fit_dict())


@pytest.fixture(scope="module")
def fit(scenario: Scenario):
    return fit_churn(scenario, TARGETS, max_iterations=6)


def test_fit_converges_within_half_a_point(scenario: Scenario, fit):
    start = {g.name: g.churn_intercept for g in scenario.segments}
    first = fit.iterations[0].churn
    # the starting intercepts are far off (churn above 25%), so the test exercises the iteration
    assert all(first[k].mean > 0.25 for k in TARGETS)
    assert fit.converged
    assert len(fit.iterations) <= 6
    for k, t in TARGETS.items():
        assert abs(fit.best.churn[k].mean - t) <= 0.005
        assert fit.intercepts[k] < start[k]  # less churn needs a lower intercept
    # the input scenario is untouched; the returned one carries the fitted intercepts
    assert {g.name: g.churn_intercept for g in scenario.segments} == start
    assert {g.name: g.churn_intercept for g in fit.scenario.segments} == fit.intercepts


def test_fitted_scenario_reproduces_the_reported_churn(fit):
    """Re-running the fitted scenario with the fit's seed gives exactly the churn it reported."""
    again = segment_churn(run_scenario(fit.scenario, seed=fit.seed, replications=fit.replications))
    for k in TARGETS:
        assert again[k].mean == fit.best.churn[k].mean


def test_segment_churn_is_the_monthly_table_ratio(scenario: Scenario):
    """Churned / renewal decisions per month and segment (monthly_by_plan_segment), month mean."""
    res = run_scenario(scenario, replications=2)
    tab = res.monthly().groupby(["replication", "segment", "month"])[["churned", "renewals"]].sum()
    tab = tab[tab["renewals"] > 0]
    rate = (tab["churned"] / tab["renewals"]).groupby(level=["replication", "segment"]).mean()
    for r in res.replications:
        got = replication_segment_churn(r)
        for k in TARGETS:
            assert got[k] == pytest.approx(rate[(r.replication, k)], rel=1e-12)
    summ = segment_churn(res)
    for k in TARGETS:
        x = np.array(summ[k].by_replication)
        assert summ[k].mean == pytest.approx(x.mean())
        assert summ[k].ci95_low < summ[k].mean < summ[k].ci95_high


def test_apply_intercepts_edits_only_those_numbers():
    text = (SCENARIOS / "baseline.yaml").read_text()
    new = apply_intercepts(text, {"chat": -3.25, "enterprise_bot": -2.5})
    assert len(new.splitlines()) == len(text.splitlines())  # comments and layout kept
    a, b = yaml.safe_load(text), yaml.safe_load(new)
    for seg_a, seg_b in zip(a["segments"], b["segments"], strict=True):
        want = {"chat": -3.25, "enterprise_bot": -2.5}.get(seg_a["name"], seg_a["churn_intercept"])
        assert seg_b.pop("churn_intercept") == want
        seg_a.pop("churn_intercept")
    assert a == b
    with pytest.raises(ValueError, match="nobody"):
        apply_intercepts(text, {"nobody": -3.0})


def test_parse_targets():
    assert parse_targets(["chat=0.07", "coder=4.5%"]) == {"chat": 0.07, "coder": 0.045}
    for bad in (["chat"], ["chat=x"], ["=0.1"]):
        with pytest.raises(ValueError, match=r"^target "):
            parse_targets(bad)


def test_fit_rejects_unknown_segments_and_bad_targets(scenario: Scenario):
    with pytest.raises(ValueError, match="unknown segment"):
        fit_churn(scenario, {"nobody": 0.05})
    with pytest.raises(ValueError, match="share"):
        fit_churn(scenario, {"chat": 7.0})


def test_cli_fit_churn_reports_and_updates(tmp_path: Path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_fit_dict(), sort_keys=False))
    out = tmp_path / "fit.yaml"
    # one run only: not converged (exit 1), but the report and the update are still written
    rc = main(
        [
            "fit-churn",
            str(path),
            "--target",
            "chat=7%",
            "--max-iter",
            "1",
            "--out",
            str(out),
            "--update",
            str(path),
            "-q",
        ]
    )
    assert rc == 1
    rep = yaml.safe_load(out.read_text())
    assert rep["converged"] is False
    assert rep["segments"]["chat"]["target"] == 0.07
    assert len(rep["iterations"]) == 1
    chat = next(g for g in yaml.safe_load(path.read_text())["segments"] if g["name"] == "chat")
    assert chat["churn_intercept"] == rep["segments"]["chat"]["churn_intercept"]
    assert main(["fit-churn", str(path), "--target", "nobody=0.05", "-q"]) == 2
    assert main(["fit-churn", str(path), "-q"]) == 2
    capsys.readouterr()


def test_secant_iteration_on_a_known_response(monkeypatch, scenario: Scenario):
    """On a synthetic response logit(churn) = 0.5 b + c the secant reaches 0.1 pp in few runs;
    a noise-dominated (negative) secant keeps the last slope instead of taking a huge step."""
    from sim.experiments import churn_fit
    from sim.experiments.churn_fit import SegmentChurn, fit_churn, logit

    calls: list[dict[str, float]] = []
    noise = iter([0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])

    def fake_segment_churn(s: Scenario) -> dict[str, SegmentChurn]:
        b = {g.name: g.churn_intercept for g in s.segments}
        calls.append(b)
        eps = next(noise)
        out = {}
        for k, v in b.items():
            p = 1 / (1 + np.exp(-(0.5 * v - 1.0 + (eps if k == "coder" else 0.0))))
            out[k] = SegmentChurn(float(p), float(p), float(p), (float(p),))
        return out

    monkeypatch.setattr(churn_fit, "run_scenario", lambda s, seed, replications: s)
    monkeypatch.setattr(churn_fit, "segment_churn", fake_segment_churn)
    fit = fit_churn(scenario, TARGETS, tolerance=0.001, max_iterations=8, digits=6)
    assert fit.converged
    assert len(calls) <= 6
    # iteration 2's coder secant is negative (noise +0.5): iteration 3 must not step 1/0.3 = 3.3x
    # the logit gap, but reuse the slope 1 of iteration 1
    gap = logit(TARGETS["coder"]) - logit(fit.iterations[1].churn["coder"].mean)
    step = calls[2]["coder"] - calls[1]["coder"]
    assert step == pytest.approx(gap, abs=1e-5)
    for k, t in TARGETS.items():
        assert fit.best.churn[k].mean == pytest.approx(t, abs=0.001)
