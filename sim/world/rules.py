"""Exhaustion-rule codes as the compiled kernels see them, and the no-limit sentinel."""

from __future__ import annotations

import numpy as np

NO_LIMIT = np.iinfo(np.int64).max // 4
"""Concurrency limit of a plan without one (requests in flight)."""

# exhaustion rules (int8 codes per plan)
RULE_CUTOFF = 0

RULE_THROTTLE_SLOW = 1

RULE_THROTTLE_DOWNGRADE = 2

RULE_PAYG = 3

RULE_TOPUP = 4
