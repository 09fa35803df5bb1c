"""Per-request arrays reused from day to day hold exactly what fresh arrays would."""

from __future__ import annotations

import numpy as np

from sim.engine.day_buffers import DayBuffers


def test_a_reused_buffer_holds_the_days_rows_then_zeros_whatever_the_last_day_left():
    b = DayBuffers()
    first = b.with_room("t", np.arange(5.0), 3)
    first[:] = 99.0  # the kernel writes the room (and more) during a day
    second = b.with_room("t", np.array([1.0, 2.0]), 4)
    assert second.tolist() == [1.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert np.shares_memory(first, second)  # the pages are kept, not allocated anew


def test_without_room_the_days_array_is_used_as_it_is():
    x = np.arange(4)
    assert DayBuffers().with_room("sub", x, 0) is x


def test_fills_and_counts_are_complete_after_a_dirty_day_and_grow_when_needed():
    b = DayBuffers()
    b.filled("start", 3, np.float64, np.nan)[:] = 1.0
    assert np.isnan(b.filled("start", 3, np.float64, np.nan)).all()
    b.counting("origin", 4)[:] = -7
    assert b.counting("origin", 6).tolist() == [0, 1, 2, 3, 4, 5]
    assert b.filled("bought", 10, np.int64, 0).dtype == np.int64
    assert len(b.filled("bought", 1000, np.int64, 0)) == 1000
