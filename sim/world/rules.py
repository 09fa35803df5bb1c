"""Exhaustion rules as the engine sees them: one int8 code per plan, and their economics.

The schema's ``on_exhaustion`` union (``sim.scenario.schema.Exhaustion``) names a rule by its
``rule`` tag (and, for throttling, its ``mode``); :data:`RULE_CODES` maps each to exactly one
code here, and :func:`sim.world.build.build` is the only place that translates. Kernels and
numpy code compare ``plan.rule`` against these codes. Pay-as-you-go block rounding lives here
once (:func:`payg_billable_units`), so that billing and the plan-choice utility agree to the
unit. To add a rule, follow the checklist in ``docs/architecture.md``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

NO_LIMIT = np.iinfo(np.int64).max // 4
"""Concurrency limit of a plan without one (requests in flight)."""

RULE_CUTOFF = 0
"""``cutoff``: refuse every request until renewal (or a top-up)."""
RULE_THROTTLE_SLOW = 1
"""``throttle`` with ``mode: slow_lane``: serve at most one request per gap, at low priority."""
RULE_THROTTLE_DOWNGRADE = 2
"""``throttle`` with ``mode: downgrade``: serve on the plan's cheaper downgrade model."""
RULE_PAYG = 3
"""``payg``: keep serving and bill the overage at the close of the month, in whole blocks."""
RULE_TOPUP = 4
"""``topup``: sell packs of extra quota (automatically, or by choice with a probability)."""

RULE_CODES: dict[tuple[str, str | None], int] = {
    ("cutoff", None): RULE_CUTOFF,
    ("throttle", "slow_lane"): RULE_THROTTLE_SLOW,
    ("throttle", "downgrade"): RULE_THROTTLE_DOWNGRADE,
    ("payg", None): RULE_PAYG,
    ("topup", None): RULE_TOPUP,
}
"""(schema ``rule`` tag, throttle ``mode`` or None) -> engine code; one code per pair."""

PAYG_BLOCK_TOLERANCE = 1e-9
"""Share of a block below which an overage is not rounded up to a further block (blocks).
Usage is a sum of many float token counts; without it, an overage of exactly k blocks that
picked up 1e-12 of rounding error would bill k + 1 blocks."""


def rule_code(rule: str, mode: str | None = None) -> int:
    """The engine code of a schema rule tag (``mode`` only for ``throttle``); KeyError if none."""
    return RULE_CODES[(rule, mode if rule == "throttle" else None)]


def payg_billable_units(over_units: NDArray | float, block_units: NDArray | float) -> NDArray:
    """Over-quota units billed under pay-as-you-go: rounded up to whole blocks.

    The one definition of block rounding, used by billing (what is charged) and by plan choice
    (what a subscriber expects to pay). An overage within ``PAYG_BLOCK_TOLERANCE`` of a block
    boundary bills that boundary.
    """
    over = np.asarray(over_units, dtype=np.float64)
    block = np.asarray(block_units, dtype=np.float64)
    return np.ceil(over / block - PAYG_BLOCK_TOLERANCE) * block


# routers of batched pools (int8 codes, sim.engine.batching)
ROUTER_LEAST_LOADED = 0
"""Send a request to the active replica holding the fewest KV tokens (running and queued)."""

ROUTER_ROUND_ROBIN = 1
"""Send requests to the active replicas in turn."""

ROUTERS = {"least_loaded": ROUTER_LEAST_LOADED, "round_robin": ROUTER_ROUND_ROBIN}
"""Router name (scenario ``cluster.pools[].router``) -> code."""
