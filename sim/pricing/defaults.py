"""Defaults of ``tokensim tune``, in a module light enough for the command line to import."""

from __future__ import annotations

DEFAULT_BUDGET = 24
"""Points the search evaluates besides the scenario as given (optuna trials)."""
DEFAULT_REPLICATIONS = 3
"""Replications per point during the search (the same seeds at every point)."""
DEFAULT_FINAL_REPLICATIONS = 8
"""Fresh replications (new seeds, the same at every point) for each re-evaluated point."""
DEFAULT_TOP = 3
"""Best points of the search re-evaluated, besides the scenario as given."""
DEFAULT_BATCH = 4
"""Points asked of the sampler at once and simulated in parallel (results do not depend on the
cluster's size, only on this)."""
