"""Named random streams: the randomness belongs to the run, never to a global.

Each replication ``r`` of a scenario with seed ``s`` gets one independent
``numpy.random.Generator`` per named stream, derived as
``SeedSequence(s, spawn_key=(r, stream_id))``. Two scenarios that share a seed
therefore draw the same numbers for the same purpose (common random numbers):
changing a price does not reshuffle arrival times or token lengths.
"""

from __future__ import annotations

import numpy as np

STREAMS: tuple[str, ...] = (
    "initial",  # initial population: segment phase, intensity
    "acquisition",  # daily sign-up counts
    "choice",  # plan choice of new subscribers
    "arrivals",  # sessions, requests, times
    "tokens",  # token lengths
    "models",  # model choice per request
    "buy",  # manual top-up decisions
    "churn",  # renewal decisions and plan switches
    "engagement",  # engagement shocks
    "replay",  # subscriber of each replayed trace request
    "activity",  # activity process of modulated segments
    "patience",  # patience of each request for its first token
    "window",  # whether a user waits for a full usage window (append here, never reorder)
)


class Streams:
    """One generator per named stream for one replication."""

    def __init__(self, seed: int, replication: int):
        self.seed = seed
        self.replication = replication
        self._gens = {
            name: np.random.Generator(
                np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replication, i)))
            )
            for i, name in enumerate(STREAMS)
        }

    def __getitem__(self, name: str) -> np.random.Generator:
        return self._gens[name]
