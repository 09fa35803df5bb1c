"""Physical units and conversions used across layers (not model assumptions: no source needed)."""

from __future__ import annotations

# --- time ---------------------------------------------------------------------------------
SECONDS_PER_HOUR = 3600.0
"""Seconds in an hour (s)."""

TOKENS_PER_MTOK = 1e6
"""Tokens in the '1M' of a price quoted per 1M tokens."""

HOURS_PER_DAY = 24
"""Hours in a day."""

SECONDS_PER_DAY = 86400.0
"""Seconds in a day (s)."""

BYTES_PER_GB = 1e9
"""Bytes in a gigabyte (decimal, as network bandwidths are quoted)."""
