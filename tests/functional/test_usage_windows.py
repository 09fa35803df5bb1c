"""Usage windows and peak weights in whole runs: neutrality, direction, the shipped scenario.

The kernel's window arithmetic is tested request by request in tests/unit/test_windows.py and
the conservation identities with windows in tests/property/test_conservation.py; here whole
scenarios run, as users run them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.experiments.runner import run_scenario
from sim.results.tables import RunResult
from sim.scenario.loading import load_scenario, validate_data

ROOT = Path(__file__).resolve().parents[2]
RULES_CASE = ROOT / "tests" / "regression" / "cases" / "rules.yaml"
NEVER_FULL = {"name": "5h", "hours": 5, "allowance": 1e12, "unit": "tokens", "on_limit": "wait"}
"""A window no request can fill: 10^12 quota units in 5 hours."""


def _tables(r: RunResult) -> dict[str, pd.DataFrame]:
    return {
        "monthly": r.monthly(),
        "months": r.months(),
        "hourly": r.hourly(),
        "kpis": r.kpis(),
        "latency": r.latency(),
        "ledger": r.ledger(),
    }


def test_a_window_that_never_fills_and_weights_of_one_change_no_number():
    """Windows cost nothing where they do not bind: every table of the golden 'rules' case,
    whose plans cover every exhaustion rule, is identical with a never-full window (whose
    users would wait) and a weight-1 peak rule on every plan."""
    data = yaml.safe_load(RULES_CASE.read_text())
    plain = validate_data(data)
    for p in data["plans"]:
        p["windows"] = [NEVER_FULL]
        p["peak_weights"] = [{"days": "all", "from_hour": 9, "to_hour": 18, "weight": 1.0}]
    windowed = validate_data(data)
    a, b = _tables(run_scenario(plain)), _tables(run_scenario(windowed))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


def _busy_afternoons(weight: float) -> dict[str, Any]:
    """Heavy coders on a plan with a rolling 1-hour window of 40 requests that they wait for,
    and ``weight`` on every afternoon from 13:00 to 17:00."""
    d = small_dict(horizon_months=1, days_per_month=7, seed=3)
    pro = d["plans"][1]
    pro["quota"] = {"unit": "tokens", "amount": 1e11}
    pro["windows"] = [{"name": "1h", "hours": 1, "allowance": 40, "on_limit": "wait"}]
    pro["peak_weights"] = [{"days": "all", "from_hour": 13, "to_hour": 17, "weight": weight}]
    coder = d["segments"][1]
    coder["sessions_per_day"] = 4.0
    coder["requests_per_session"] = 15.0
    coder["think_time_s"] = 30.0
    coder["hour_profile"] = [0.2] * 9 + [1.0] * 4 + [3.0] * 4 + [1.0] * 4 + [0.2] * 3
    coder["at_window_limit"] = {"wait_share": 1.0, "max_wait_hours": 6.0}
    return d


def _by_hour_of_day(r: RunResult, column: str) -> pd.Series:
    h = r.hourly()
    return h.groupby("hour_of_day")[column].sum()


def test_peak_weights_move_busy_hour_load_to_later_hours():
    """At 3x in the afternoon the coders' window fills three times as fast there: more of the
    busy hour's requests wait for it to roll, and their re-sends come after 17:00."""
    flat = run_scenario(validate_data(_busy_afternoons(1.0)))
    peak = run_scenario(validate_data(_busy_afternoons(3.0)))
    # about the same requests were made (common random numbers; renewals and churn differ a
    # little): they arrive later, not fewer
    made = peak.kpis().iloc[0]["requests"], flat.kpis().iloc[0]["requests"]
    assert made[0] == pytest.approx(made[1], rel=0.01)
    afternoon, evening = list(range(13, 17)), list(range(17, 22))
    # deferrals are counted at the hour the request was first sent: the weighted afternoon
    d_flat, d_peak = _by_hour_of_day(flat, "deferred"), _by_hour_of_day(peak, "deferred")
    assert d_peak[afternoon].sum() > 1.5 * d_flat[afternoon].sum()
    assert d_peak[afternoon].sum() > 0.7 * d_peak.sum()  # 4 hours of 24
    # the requests served arrive later: fewer in the afternoon, more in the evening
    a_flat, a_peak = _by_hour_of_day(flat, "arrivals"), _by_hour_of_day(peak, "arrivals")
    moved = a_flat[afternoon].sum() - a_peak[afternoon].sum()
    assert moved > 0.05 * a_flat[afternoon].sum()
    assert a_peak[evening].sum() > a_flat[evening].sum()
    m = peak.replications[0].acc.monthly
    assert m["peak_extra_units"].sum() > 0
    assert flat.replications[0].acc.monthly["peak_extra_units"].sum() == 0


def _churn_rate(m: pd.DataFrame) -> float:
    """Churned over renewal decisions, summed over the rows."""
    return float(m["churned"].sum() / m["renewals"].sum())


def test_a_user_who_gives_up_at_a_window_counts_for_churn_like_a_refusal():
    """Refusals at a window feed the churn model's refused share: with nobody waiting, more
    requests are given up and the coders' churn rises against the same scenario whose users
    all wait (some still give up: a roll after the day's end or after their longest wait)."""
    waits = _busy_afternoons(3.0)
    quits = _busy_afternoons(3.0)
    quits["segments"][1]["at_window_limit"]["wait_share"] = 0.0
    for d in (waits, quits):
        d["horizon_months"] = 3
        d["replications"] = 2
    r_wait = run_scenario(validate_data(waits))
    r_quit = run_scenario(validate_data(quits))
    mw, mq = r_wait.monthly(), r_quit.monthly()
    coder_w, coder_q = mw[mw["segment"] == "coder"], mq[mq["segment"] == "coder"]
    assert coder_q["refused_window"].sum() > 1.1 * coder_w["refused_window"].sum()
    assert coder_w["deferred"].sum() > 0
    assert coder_q["deferred"].sum() == 0
    assert _churn_rate(coder_q) > _churn_rate(coder_w)


@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cpw") / "run"
    code = main(
        [
            "run",
            str(ROOT / "scenarios" / "coding-plan-windows.yaml"),
            "--out",
            str(out),
            "-q",
            "--no-plots",
            "--replications",
            "1",
            "--set",
            "horizon_months=1",
        ]
    )
    assert code == 0
    return out


def test_the_shipped_scenario_compares_the_two_plans_on_the_same_demand(shipped_run: Path):
    s = load_scenario(ROOT / "scenarios" / "coding-plan-windows.yaml")
    windowed = {p.name for p in s.plans if p.windows}
    assert windowed == {"coding_lite"}
    w = pd.read_csv(shipped_run / "usage_windows.csv")
    assert set(w["plan"]) == windowed
    assert set(w["window"]) == {"5h", "week"}
    by_seg = w.groupby("segment")[["limit_hits", "lockouts", "lockout_hours"]].sum()
    # the agentic power users meet the windows; the one-session coders hardly do
    m = pd.read_csv(shipped_run / "monthly_by_plan_segment.csv")
    subs = m.groupby("segment")["subscribers_start"].sum()
    per_sub = by_seg["lockouts"] / subs[by_seg.index]
    assert per_sub["power_windows"] > 10 * max(per_sub["coder_windows"], 1e-3)
    # both plans earn and serve; the token plan bills overage, the window plan none
    by_plan = m.groupby("plan")[["revenue_fees", "revenue_overage", "tokens_served"]].sum()
    assert (by_plan["revenue_fees"] > 0).all()
    assert (by_plan["tokens_served"] > 0).all()
    assert by_plan.loc["dev_15m", "revenue_overage"] > 0
    assert by_plan.loc["coding_lite", "revenue_overage"] == 0
    # the paired segments get the same demand: requests per subscriber agree within 15%
    req = m.groupby("segment")["requests"].sum() / subs
    assert req["coder_windows"] == pytest.approx(req["coder_tokens"], rel=0.15)
    assert np.isfinite(w[["limit_hits", "lockouts", "lockout_hours"]].to_numpy()).all()
