"""Shared fixtures (the helpers themselves live in ``tests/support``)."""

from __future__ import annotations

import os

import pytest
from support.scenarios import small_scenario

from sim.scenario.schema import Scenario

# `tokensim run` runs replications on a local dask cluster of one worker per core by default;
# tests that call it dozens of times stay in-process unless they ask (the numbers are the same,
# tests/functional/test_sweep.py checks it, and checks the default path itself).
os.environ.setdefault("TOKENSIM_WORKERS", "1")


@pytest.fixture
def small() -> Scenario:
    """The small scenario."""
    return small_scenario()
