"""Churn at renewal: the logit of leaving a plan.

It rises with price over realised value, price over the market's reference price, cut-offs,
throttling, slow service and unused quota, and falls with tenure
(docs/model.md, "Renewal and churn").
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.choice import VALUE_FLOOR
from sim.world.arrays import World

PRICE_VALUE_LOG_CAP = 3.0
"""|ln(paid/value)| is capped here (a subscriber who used nothing does not churn with
certainty from this term alone; e^3 = 20x). Assumption."""


def churn_probability(
    world: World,
    seg: NDArray[np.int64],
    paid: NDArray[np.float64],
    value: NDArray[np.float64],
    exhausted: NDArray[np.bool_],
    refused_share: NDArray[np.float64],
    throttled_share: NDArray[np.float64],
    slo_miss_share: NDArray[np.float64],
    unused_share: NDArray[np.float64],
    tenure_months: NDArray[np.int64],
    reference: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Monthly churn probability at renewal (logit; see the module docstring).

    ``reference`` is the market's reference price each subscriber's segment faces this month
    (currency/month; NaN or None: no comparison): paying above it raises churn.
    """
    c = world.churn
    ratio = np.log(np.maximum(paid, VALUE_FLOOR) / np.maximum(value, VALUE_FLOOR))
    x = (
        world.seg.churn_intercept[seg]
        + c.price_value * np.clip(ratio, -PRICE_VALUE_LOG_CAP, PRICE_VALUE_LOG_CAP)
        + c.exhausted * exhausted
        + c.refused * refused_share
        + c.throttled * throttled_share
        + c.slo_miss * slo_miss_share
        + c.unused * unused_share
        + c.tenure * np.log1p(tenure_months)
    )
    if reference is not None:
        known = np.isfinite(reference)
        rel = np.log(np.maximum(paid, VALUE_FLOOR) / np.where(known, reference, 1.0))
        x = x + np.where(
            known, c.reference_price * np.clip(rel, -PRICE_VALUE_LOG_CAP, PRICE_VALUE_LOG_CAP), 0.0
        )
    return 1.0 / (1.0 + np.exp(-x))
