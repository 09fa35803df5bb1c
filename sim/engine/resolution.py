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

HIST_MANTISSA_BITS = 5
"""Bins per octave = 2^5 = 32, read straight from a float's exponent and top mantissa bits.

The bins split each octave into 32 of equal width, so a bin spans a factor of at most
1 + 2^-5 (at the bottom of an octave) and is reported at its geometric centre: a quantile read
from the histograms is within HIST_RELATIVE_ERROR (1.6%) of the exact order statistic, the
resolution the busy-hour and latency tables state. 32 rather than 64 bins per octave because
the histograms are kept per month x hour of day (24x more of them), at a few integer
operations per request."""

HIST_RELATIVE_ERROR = (1.0 + 2.0**-HIST_MANTISSA_BITS) ** 0.5 - 1.0
"""Largest relative error of a latency read from a bin's centre: sqrt(1 + 2^-5) - 1 = 1.55%."""

# --- activity spells ----------------------------------------------------------------------
ACTIVITY_WINDOW_S = 600.0
"""Length of the windows over which a subscriber's activity multiplier is constant (s):
ServeGen's 10-minute rate windows (data/traces/servegen_arrivals_*.csv.gz), on which the
activity process is fitted."""
