"""Defaults of the sizing search, in a module light enough for the command line to import."""

from __future__ import annotations

DEFAULT_REPLICATIONS = 3
"""Replications per count vector before any is added (the least that gives an interval)."""
DEFAULT_MAX_REPLICATIONS = 8
"""Replications a count vector may grow to while a verdict is unsure."""
DEFAULT_MAX_REPLICAS = 256
"""Largest replica count per pool the search tries before calling the targets unreachable."""
