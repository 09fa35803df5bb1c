"""Usage windows and peak weights in the admission kernel, on hand-built request sequences.

Each test drives ``serve_day`` through the kernel harness with one subscriber (or a few) on a
plan whose monthly quota never binds, so every refusal or deferral is a window's doing.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.kernel_harness import Harness, PlanSpec
from support.scenarios import small_dict

from sim.engine.outcomes import (
    DOWNGRADED,
    REFUSED_THROTTLE,
    REFUSED_WINDOW,
    SERVED,
    THROTTLED,
)
from sim.engine.windows import W_HITS, W_LOCK_S, W_LOCKOUTS, WindowState
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data
from sim.scenario.windows import PeakWeight, UsageWindow, WindowBehaviour
from sim.units import SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.world.build import make_windows
from sim.world.rules import RULE_PAYG, RULE_THROTTLE_DOWNGRADE

H = SECONDS_PER_HOUR
BIG = [1e12]


def window(**kw) -> UsageWindow:
    base = {"name": "w", "hours": 5, "allowance": 3, "on_limit": "cutoff"}
    return UsageWindow(**(base | kw))


def run(windows, t, charge=None, window_charge=None, at_limit=None, peaks=None, day=0):
    h = Harness(
        slots=[100],
        windows=[windows],
        peaks=[peaks or []],
        at_limit=at_limit or WindowBehaviour(wait_share=1.0),
    )
    t = np.asarray(t, float) + day * SECONDS_PER_DAY
    return h, h.run(
        t=t,
        sub=np.zeros(len(t), int),
        sub_plan=[0],
        quota=BIG,
        charge=charge,
        window_charge=window_charge,
        day=day,
    )


def test_a_rolling_window_admits_refuses_and_admits_again_when_it_rolls():
    # 3 requests per 5 hours: the 4th is refused; at 5 h after the first, one place frees
    t = [0, 100, 200, 300, 5 * H - 1, 5 * H, 5 * H + 50, 5 * H + 100]
    _, out = run([window()], t)
    assert out["outcome"].tolist() == [
        SERVED, SERVED, SERVED, REFUSED_WINDOW, REFUSED_WINDOW, SERVED, REFUSED_WINDOW, SERVED,
    ]  # fmt: skip
    # the window holds the three admitted within the last 5 hours: 100, 5 H, 5 H + 100
    assert out["window_used"][0, 0] == 3.0


def test_the_weekly_cap_binds_while_the_rolling_window_has_room():
    w5 = window(name="5h", allowance=100)
    week = window(name="week", kind="calendar", hours=168, allowance=5)
    h = Harness(slots=[100], windows=[[w5, week]])
    hourly = np.arange(8) * H  # one request an hour: the 5-hour window never fills
    out = h.run(t=hourly, sub=np.zeros(8, int), sub_plan=[0], quota=BIG)
    assert out["outcome"].tolist() == [SERVED] * 5 + [REFUSED_WINDOW] * 3
    assert (out["window_acc"][0, W_HITS, 0, 0] == [0, 3, 0]).all()  # the week is what binds
    # still capped on Sunday, open again on Monday 00:00 (the calendar week, start Monday)
    sunday = h.run(t=[6 * SECONDS_PER_DAY + 5], sub=[0], sub_plan=[0], quota=BIG, day=6)
    monday = h.run(t=[7 * SECONDS_PER_DAY], sub=[0], sub_plan=[0], quota=BIG, day=7)
    assert sunday["outcome"].tolist() == [REFUSED_WINDOW]
    assert monday["outcome"].tolist() == [SERVED]


def test_a_session_window_opens_at_the_first_request_after_it_closed():
    s = window(kind="session", hours=1, allowance=2)
    t = [1000, 2000, 3000, 1000 + H - 1, 1000 + H, 1000 + H + 10, 1000 + H + 20]
    _, out = run([s], t)
    assert out["outcome"].tolist() == [
        SERVED, SERVED, REFUSED_WINDOW, REFUSED_WINDOW, SERVED, SERVED, REFUSED_WINDOW,
    ]  # fmt: skip


def test_a_token_window_counts_quota_units_and_the_crossing_request_passes():
    tok = window(unit="tokens", allowance=1000)
    _, out = run([tok], [0, 1, 2, 3], charge=[600, 600, 50, 10])
    # 600 < 1000: the second (crossing) request passes; then 1,200 >= 1,000: full
    assert out["outcome"].tolist() == [SERVED, SERVED, REFUSED_WINDOW, REFUSED_WINDOW]
    assert out["window_used"][0, 0] == 1200.0


def test_premium_requests_count_their_weight_in_a_request_window():
    _, out = run([window(allowance=4)], [0, 1, 2, 3], window_charge=[2, 2, 1, 1])
    assert out["outcome"].tolist() == [SERVED, SERVED, REFUSED_WINDOW, REFUSED_WINDOW]


def test_a_waiting_user_sends_the_request_again_when_the_window_rolls():
    t = [0, 100, 200, 300, 400]
    _, out = run([window(on_limit="wait")], t)
    # 300 and 400 wait for the first place to free (5 h after the request at 0); both come
    # back then, the first takes the place, the second waits again for the next (5 h + 100)
    assert out["outcome"].tolist() == [SERVED] * 5
    assert out["t"].tolist() == [0, 100, 200, 5 * H, 5 * H + 100]
    assert out["defers"].tolist() == [0, 0, 0, 1, 2]
    assert out["t0"].tolist() == t  # when each was first sent
    acc = out["window_acc"][0, :, 0, 0, 0]
    assert acc[W_HITS] == 3
    assert acc[W_LOCKOUTS] == 2
    assert acc[W_LOCK_S] == pytest.approx(5 * H - 300 + 100)


def test_a_user_who_does_not_wait_or_would_wait_too_long_gives_the_request_up():
    t = [0, 100, 200, 300]
    _, none = run([window(on_limit="wait")], t, at_limit=WindowBehaviour(wait_share=0.0))
    assert none["outcome"].tolist()[3] == REFUSED_WINDOW
    short = WindowBehaviour(wait_share=1.0, max_wait_hours=4.0)  # the roll is 5 h away
    _, impatient = run([window(on_limit="wait")], t, at_limit=short)
    assert impatient["outcome"].tolist() == [SERVED] * 3 + [REFUSED_WINDOW]
    # nor past the day's end: the window of a request at 22:00 rolls at 03:00
    late = 22 * H + np.array([0, 1, 2, 3])
    _, night = run([window(on_limit="wait")], late)
    assert night["outcome"].tolist() == [SERVED] * 3 + [REFUSED_WINDOW]


def test_a_throttle_window_serves_on_the_slow_lane_one_request_per_gap():
    thr = window(allowance=1, on_limit="throttle", min_gap_s=600)
    _, out = run([thr], [0, 10, 20, 700, 710])
    assert out["outcome"].tolist() == [
        SERVED, THROTTLED, REFUSED_THROTTLE, THROTTLED, REFUSED_THROTTLE,
    ]  # fmt: skip
    # the slow lane is beyond the window: only the first request counts in it
    assert out["window_used"][0, 0] == 1.0


def test_at_a_full_window_the_plans_monthly_rule_applies():
    """``monthly_rule``: pay-as-you-go serves and bills the whole request without drawing on
    the month's quota; a downgrade throttle serves on the cheaper model's pool; cut-off
    refuses at the window."""
    w = window(allowance=2, on_limit="monthly_rule")
    t = [0, 1, 2, 3]
    payg = Harness(slots=[10], windows=[[w]], plans=[PlanSpec(rule=RULE_PAYG)])
    out = payg.run(t=t, sub=[0] * 4, sub_plan=[0], quota=[1000.0], charge=[10.0] * 4)
    assert out["outcome"].tolist() == [SERVED] * 4
    assert out["over"].tolist() == [0.0, 0.0, 10.0, 10.0]  # the last two billed whole
    assert out["usage"][0] == 20.0  # and not drawn from the month's 1,000
    down = Harness(
        slots=[10, 10],
        windows=[[w]],
        plans=[PlanSpec(rule=RULE_THROTTLE_DOWNGRADE, down_pool=1, gap_s=0.0)],
    )
    out = down.run(t=t, sub=[0] * 4, sub_plan=[0], quota=[1000.0])
    assert out["outcome"].tolist() == [SERVED, SERVED, DOWNGRADED, DOWNGRADED]
    assert out["pool_used"].tolist() == [0, 0, 1, 1]
    _, cut = run([w], t)  # (the harness plan's rule is cut-off)
    assert cut["outcome"].tolist() == [SERVED, SERVED, REFUSED_WINDOW, REFUSED_WINDOW]


def test_peak_weights_charge_weight_times_units_in_their_hours_and_once_outside():
    peak = PeakWeight(days="weekdays", from_hour=14, to_hour=18, weight=3.0)
    # Monday 13:59, 14:00, 17:59, 18:00; then Saturday 15:00 (day 5: the weekend)
    t = [14 * H - 1, 14 * H, 18 * H - 1, 18 * H]
    _, out = run([], t, charge=[100, 100, 100, 100], peaks=[peak])
    assert out["usage"][0] == 100 + 300 + 300 + 100
    _, sat = run([], [15 * H], charge=[100], peaks=[peak], day=5)
    assert sat["usage"][0] == 100


def test_a_deferred_request_is_charged_at_the_weight_of_the_hour_it_is_sent_again():
    peak = PeakWeight(days="all", from_hour=12, to_hour=13, weight=2.0)
    w = window(unit="tokens", allowance=150, hours=1, on_limit="wait")
    t = 12 * H + np.array([0.0, 10.0])  # both at the 2x hour: 200 >= 150 after the first
    _, out = run([w], t, charge=[100, 100], peaks=[peak])
    assert out["outcome"].tolist() == [SERVED, SERVED]
    assert out["t"][1] == 13 * H  # sent again at 13:00, an hour at weight 1
    assert out["usage"][0] == 200 + 100


def test_a_new_plan_starts_with_empty_windows():
    win = make_windows([[window()], [window()]], [[], []], [WindowBehaviour()])
    ws = WindowState(win, 4, np.zeros((1, 3, 2, 1, 3)), 0)
    ws.prepare(np.array([0, 0]), 2, 10, 0.0)
    ws.used[:2, 0] = 3.0
    ws.prepare(np.array([0, 1]), 2, 10, 0.0)  # subscriber 1 moved to plan 1
    assert ws.used[:2, 0].tolist() == [3.0, 0.0]
    assert ws.epoch[:2].tolist() == [1, 2]


def test_a_subscriber_costs_104_bytes_of_window_state_and_nothing_without_windows():
    win = make_windows([[window()]], [[]], [WindowBehaviour()])
    ws = WindowState(win, 1000, np.zeros((1, 3, 1, 1, 3)), 0)
    assert (ws.sf.nbytes + ws.si.nbytes + ws.plan.nbytes) / 1000 == 104
    none = WindowState(make_windows([[]], [[]], [WindowBehaviour()]), 1000, np.zeros(1), 0)
    assert none.sf.nbytes + none.si.nbytes + none.plan.nbytes <= 104  # one placeholder row


def _reference(t, charge, allowance, length):
    """Brute force: admit while the charges admitted in (now - length, now] are < allowance."""
    admitted: list[tuple[float, float]] = []
    out = []
    for ti, c in zip(t, charge, strict=True):
        used = sum(ci for tj, ci in admitted if tj > ti - length)
        if used < allowance:
            admitted.append((ti, c))
            out.append(SERVED)
        else:
            out.append(REFUSED_WINDOW)
    return out


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(
        st.sampled_from([0.0, 1.0, 60.0, 600.0, 1800.0, 3600.0]), min_size=1, max_size=80
    ),
    charge=st.lists(st.sampled_from([1.0, 2.0, 5.0, 40.0]), min_size=80, max_size=80),
    allowance=st.sampled_from([1.0, 3.0, 10.0, 60.0]),
    hours=st.sampled_from([0.5, 1.0, 5.0]),
)
def test_the_rolling_window_is_exact_against_a_brute_force_count(gaps, charge, allowance, hours):
    t = np.cumsum(gaps)
    c = np.array(charge[: len(t)])
    tok = window(unit="tokens", allowance=allowance, hours=hours)
    _, out = run([tok], t, charge=c)
    assert out["outcome"].tolist() == _reference(t, c, allowance, hours * H)


BAD_WINDOWS = {
    "duplicate names": (
        [{"name": "a", "hours": 5, "allowance": 3}, {"name": "a", "hours": 168, "allowance": 9}],
        "plans[0]: window names must be unique: a",
    ),
    "no allowance": ([{"name": "a", "hours": 5, "allowance": 0}], "plans[0].windows[0]"),
    "infinite length": (
        [{"name": "a", "hours": float("inf"), "allowance": 3}],
        "plans[0].windows[0].hours",
    ),
    "longer than a month": (
        [{"name": "a", "hours": 800, "allowance": 3}],
        "plans[0].windows[0].hours",
    ),
    "four windows": (
        [{"name": str(k), "hours": 5, "allowance": 3} for k in range(4)],
        "plans[0].windows",
    ),
    "unknown kind": (
        [{"name": "a", "kind": "monthly", "hours": 5, "allowance": 3}],
        "plans[0].windows[0].kind",
    ),
}


@pytest.mark.parametrize("case", list(BAD_WINDOWS))
def test_a_bad_window_is_refused_naming_it(case):
    windows, where = BAD_WINDOWS[case]
    d = small_dict()
    d["plans"][0]["windows"] = windows
    with pytest.raises(ScenarioError, match=re.escape(where)):
        validate_data(d)


BAD_PEAKS = {
    "overlapping": (
        [
            {"from_hour": 9, "to_hour": 12, "weight": 2},
            {"days": "all", "from_hour": 11, "to_hour": 13, "weight": 3},
        ],
        "peak_weights 0 and 1 both cover weekday 0 hour 11",
    ),
    "empty hours": ([{"from_hour": 12, "to_hour": 12, "weight": 2}], "to_hour (12)"),
    "negative weight": ([{"from_hour": 1, "to_hour": 2, "weight": -1}], "weight"),
}


@pytest.mark.parametrize("case", list(BAD_PEAKS))
def test_bad_peak_weights_are_refused_naming_them(case):
    peaks, where = BAD_PEAKS[case]
    d = small_dict()
    d["plans"][0]["peak_weights"] = peaks
    with pytest.raises(ScenarioError, match=re.escape(where)):
        validate_data(d)
