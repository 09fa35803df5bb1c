"""The sizing search's probe logic (sim.capacity.cells.Cell): gallop from the guess, bisect.

Against every monotone truth (a threshold T: counts >= T meet, below fail) and every first
guess, the search ends on T with T - 1 known to fail, in O(log) probes, never probes a count
twice, and calls T unreachable exactly when it lies above the cap.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sim.capacity.cells import FAILS, MEETS, Cell
from sim.capacity.pools import PoolSpec

SPEC = PoolSpec(
    name="p",
    index=0,
    gpus_per_replica=8,
    slots_per_replica=704,
    unavailable_share=0.0,
    tpot_s=0.05,
)


def search(threshold: int, guess: int, cap: int) -> tuple[Cell, list[int]]:
    """Run the cell's probes against a threshold truth; return the cell and the probes."""
    cell = Cell(pool=SPEC, month=None, probe=guess)
    probes: list[int] = []
    while not cell.done:
        n = cell.probe
        assert 1 <= n <= cap, (n, cap)
        assert n not in probes, (n, probes)  # a count is never simulated twice
        probes.append(n)
        cell.record(n, MEETS if n >= threshold else FAILS, cap)
        assert len(probes) <= 4 * math.ceil(math.log2(cap + 1)) + 4, probes
    return cell, probes


@given(
    cap=st.integers(min_value=1, max_value=512),
    threshold=st.integers(min_value=1, max_value=600),
    guess=st.integers(min_value=1, max_value=512),
)
def test_the_search_finds_the_threshold_from_any_guess(cap: int, threshold: int, guess: int):
    guess = min(guess, cap)
    cell, _ = search(threshold, guess, cap)
    if threshold > cap:
        assert cell.unreachable
        assert cell.meets_at is None
    else:
        assert not cell.unreachable
        assert cell.meets_at == threshold
        assert cell.fails_at == threshold - 1


@given(threshold=st.integers(min_value=1, max_value=200))
def test_a_good_guess_costs_two_probes(threshold: int):
    """Guessing the answer right needs only the guess and the count below it."""
    _, probes = search(threshold, threshold, cap=256)
    assert probes == ([threshold] if threshold == 1 else [threshold, threshold - 1])
