"""Plans at the request level: quota crossing, exhaustion rules, concurrency, priorities."""

from __future__ import annotations

import numpy as np
from support.kernel_harness import Harness, PlanSpec

from sim.engine.outcomes import (
    DOWNGRADED,
    REFUSED_CONCURRENCY,
    REFUSED_NO_CAPACITY,
    REFUSED_QUOTA,
    REFUSED_THROTTLE,
    SERVED,
    THROTTLED,
)
from sim.world.rules import RULE_PAYG, RULE_THROTTLE_DOWNGRADE, RULE_THROTTLE_SLOW, RULE_TOPUP

ONE = np.zeros(1, dtype=np.int64)


def test_cutoff_lets_the_crossing_request_pass_then_refuses():
    h = Harness(slots=[10])
    out = h.run(t=[0, 1, 2, 3], sub=[0] * 4, sub_plan=ONE, quota=[1000], charge=[400] * 4)
    assert out["outcome"].tolist() == [SERVED, SERVED, SERVED, REFUSED_QUOTA]
    assert out["crossed"].tolist() == [0, 0, 1, 0]
    assert out["usage"][0] == 1200  # the crossing request is charged in full
    assert out["exhausted"][0] == 1


def test_throttle_slow_lane_enforces_the_gap_and_deprioritises():
    plan = PlanSpec(rule=RULE_THROTTLE_SLOW, gap_s=10.0, priority=0)
    h = Harness(slots=[1], plans=[plan], n_prio=3)
    # sub 0 exhausts at t=0; t=5 within the gap (refused); t=10.5 is throttled
    out = h.run(
        t=[0, 5, 10.5],
        sub=[0, 0, 0],
        sub_plan=ONE,
        quota=[1],
        charge=[1, 1, 1],
        output=[0.1, 0.1, 0.1],
    )
    assert out["outcome"].tolist() == [SERVED, REFUSED_THROTTLE, THROTTLED]


def test_slow_lane_queues_behind_every_class():
    thr = PlanSpec(rule=RULE_THROTTLE_SLOW, gap_s=0.0, priority=1)
    std = PlanSpec(priority=1)
    h = Harness(slots=[1], plans=[thr, std], n_prio=3)
    # t=0 std occupies the slot for 10 s; t=1 throttled (sub 0 exhausted); t=2 std request
    out = h.run(
        t=[0, 1, 2],
        sub=[1, 0, 2],
        sub_plan=np.array([0, 1, 1]),
        quota=[0, 1e9, 1e9],
        output=[10, 5, 5],
    )
    assert out["outcome"].tolist() == [SERVED, THROTTLED, SERVED]
    # the later standard request overtakes the throttled one
    assert out["start"].tolist() == [0, 15, 10]


def test_priority_is_non_preemptive_and_fifo_within_class():
    low, high = PlanSpec(priority=1), PlanSpec(priority=0)
    h = Harness(slots=[1], plans=[low, high])
    out = h.run(
        t=[0, 1, 2, 3],
        sub=[0, 1, 2, 3],
        sub_plan=np.array([0, 0, 1, 1]),
        quota=[1e9] * 4,
        output=[10, 1, 1, 1],
    )
    # request 0 keeps its slot (no preemption); high-priority 2 and 3 go first, FIFO
    assert out["start"].tolist() == [0, 12, 10, 11]


def test_payg_counts_only_units_over_the_quota():
    h = Harness(slots=[5], plans=[PlanSpec(rule=RULE_PAYG)])
    out = h.run(t=[0, 1, 2], sub=[0] * 3, sub_plan=ONE, quota=[500], charge=[300, 300, 300])
    assert out["outcome"].tolist() == [SERVED] * 3
    assert out["over"].tolist() == [0, 100, 300]


def test_auto_topup_buys_packs_until_covered_and_stops_at_the_cap():
    plan = PlanSpec(rule=RULE_TOPUP, pack_units=250, auto_buy=True, max_packs=2)
    h = Harness(slots=[5], plans=[plan])
    out = h.run(t=[0, 1, 2, 3], sub=[0] * 4, sub_plan=ONE, quota=[100], charge=[300] * 4)
    # r0 crosses 100; r1 finds usage 300 >= 100: buys 1 pack (350 > 300); r2 at 600 >= 350 buys
    # 1 more (600 >= 600: still short, cap reached) -> refused; r3 refused
    assert out["bought"].tolist() == [0, 1, 1, 0]
    assert out["outcome"].tolist() == [SERVED, SERVED, REFUSED_QUOTA, REFUSED_QUOTA]
    assert out["packs"][0] == 2


def test_manual_topup_declined_once_means_cut_off_for_the_month():
    plan = PlanSpec(rule=RULE_TOPUP, pack_units=1000, auto_buy=False, buy_prob=0.5, max_packs=5)
    h = Harness(slots=[5], plans=[plan])
    out = h.run(
        t=[0, 1, 2], sub=[0] * 3, sub_plan=ONE, quota=[10], charge=[20] * 3, u_buy=[0.0, 0.9, 0.1]
    )
    # r1: u=0.9 >= 0.5 -> declines; r2 would accept (u=0.1) but the decision stands
    assert out["outcome"].tolist() == [SERVED, REFUSED_QUOTA, REFUSED_QUOTA]
    assert out["declined"][0] == 1
    assert out["packs"][0] == 0


def test_concurrency_limit_counts_requests_in_flight():
    h = Harness(slots=[5], plans=[PlanSpec(concurrency=1)])
    out = h.run(t=[0, 1, 10.5], sub=[0] * 3, sub_plan=ONE, quota=[1e9], output=[10, 1, 1])
    assert out["outcome"].tolist() == [SERVED, REFUSED_CONCURRENCY, SERVED]
    assert out["inflight"][0] == 1  # the last one is still running at the end of the batch


def test_downgrade_serves_over_quota_requests_on_the_cheaper_pool():
    plan = PlanSpec(rule=RULE_THROTTLE_DOWNGRADE, down_pool=1, deprioritise=False)
    h = Harness(slots=[1, 1], plans=[plan])
    out = h.run(t=[0, 1], sub=[0, 0], sub_plan=ONE, quota=[1], charge=[1, 1])
    assert out["outcome"].tolist() == [SERVED, DOWNGRADED]
    assert out["pool_used"].tolist() == [0, 1]


def test_a_pool_without_slots_refuses_and_charges_nothing():
    h = Harness(slots=[0])
    out = h.run(t=[0], sub=[0], sub_plan=ONE, quota=[100], charge=[5])
    assert out["outcome"].tolist() == [REFUSED_NO_CAPACITY]
    assert out["usage"][0] == 0


def test_queue_drains_after_the_last_arrival_and_occupancy_uses_both_token_classes():
    h = Harness(slots=[1], occ_in=[0.5], occ_out=[2.0])
    out = h.run(
        t=[0, 0.1],
        sub=[0, 1],
        sub_plan=np.array([0, 0]),
        quota=[1e9, 1e9],
        uncached=[4, 2],
        output=[1, 3],
    )
    assert out["occ"].tolist() == [4.0, 7.0]
    assert out["start"].tolist() == [0.0, 4.0]
