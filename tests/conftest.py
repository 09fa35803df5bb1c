"""Shared fixtures (the helpers themselves live in ``tests/support``)."""

from __future__ import annotations

import pytest
from support.scenarios import small_scenario

from sim.scenario.schema import Scenario


@pytest.fixture
def small() -> Scenario:
    """The small scenario."""
    return small_scenario()
