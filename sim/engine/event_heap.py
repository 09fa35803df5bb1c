"""A binary min-heap of (time, row) events in one float array, for the compiled kernels.

Row 0 holds the heap's size (``h[0, 0]``); rows 1.. hold (time s, row index as a float),
the earliest at row 1. The caller sizes the array: one row per event it may hold, plus one.
Used for the KV transfers of disaggregated pools (sim.engine.batching) and for the
patience deadlines and retries of the admission kernel (sim.engine.admission).
"""

from __future__ import annotations

import numba as nb


@nb.njit(cache=True, inline="always")
def size(h):
    """Events in the heap."""
    return int(h[0, 0])


@nb.njit(cache=True, inline="always")
def top_time(h, empty):
    """The earliest event's time, or ``empty`` when there is none."""
    return h[1, 0] if h[0, 0] > 0 else empty


@nb.njit(cache=True, inline="always")
def push(h, t, j):
    """Add the event (time t, row j)."""
    i = int(h[0, 0]) + 1
    h[0, 0] = i
    while i > 1:
        parent = i >> 1
        if h[parent, 0] <= t:
            break
        h[i, 0] = h[parent, 0]
        h[i, 1] = h[parent, 1]
        i = parent
    h[i, 0] = t
    h[i, 1] = j


@nb.njit(cache=True, inline="always")
def pop(h):
    """Remove the earliest event (the caller reads row 1 first)."""
    n = int(h[0, 0])
    t = h[n, 0]
    j = h[n, 1]
    n -= 1
    h[0, 0] = n
    i = 1
    while True:
        c = 2 * i
        if c > n:
            break
        if c + 1 <= n and h[c + 1, 0] < h[c, 0]:
            c += 1
        if h[c, 0] >= t:
            break
        h[i, 0] = h[c, 0]
        h[i, 1] = h[c, 1]
        i = c
    if n > 0:
        h[i, 0] = t
        h[i, 1] = j
