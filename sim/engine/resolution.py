"""Engine resolution: the latency histograms' range and bin width, and the activity grid.

These set how finely the engine measures and modulates, not what it models: the histograms
bound quantile error, and the activity window is the grid on which the fitted process lives.
"""

from __future__ import annotations

# --- latency histograms -------------------------------------------------------------------
HIST_MIN_S = 2.0**-13
"""Lower edge of the latency histograms (s, ~0.12 ms); smaller values fall in bin 0."""

HIST_OCTAVES = 30
"""Octaves (doublings) the latency histograms span from HIST_MIN_S (up to 2^17 s ~ 36 h)."""

HIST_MANTISSA_BITS = 6
"""Bins per octave = 2^6 = 64, read straight from a float's exponent and top mantissa bits:
quantiles are exact to 1.1% of their value at a few integer operations per request."""

# --- activity spells ----------------------------------------------------------------------
ACTIVITY_WINDOW_S = 600.0
"""Length of the windows over which a subscriber's activity multiplier is constant (s):
ServeGen's 10-minute rate windows (data/traces/servegen_arrivals_*.csv.gz), on which the
activity process is fitted."""
