"""build(): capacity by month from the procurement schedule and the share of cards down."""

from __future__ import annotations

from support.scenarios import small_dict

from sim.scenario.loading import validate_data
from sim.world.build import build


def test_capacity_follows_the_schedule_and_floors_working_cards_to_whole_replicas() -> None:
    d = small_dict(horizon_months=3)
    big = d["cluster"]["pools"][0]
    big.update(gpus=5, unavailable_share=0.8, schedule=[{"month": 1, "gpus": 9}])
    # 5 x (1 - 0.8) is 0.9999999999999998 in floats: still one working card
    pool = build(validate_data(d)).pool
    slots_per_replica = d["catalog"]["models"][0]["serving"][0]["batch_slots_per_replica"]
    assert pool.gpus_by_month[:, 0].tolist() == [5, 9, 9]  # paid for, down or not
    assert pool.slots_by_month[:, 0].tolist() == [
        1 * slots_per_replica,
        1 * slots_per_replica,  # 9 x 0.2 = 1.8 working cards: one whole replica
        1 * slots_per_replica,
    ]
