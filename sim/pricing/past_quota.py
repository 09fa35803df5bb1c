"""What happens past the quota, in expectation over a month's demand: service and money.

For a demand distribution (:class:`sim.pricing.monthly_use.MonthlyUse`) and a plan's rule
(``sim.engine.admission``, docs/model.md "Admission and plans"):

* ``cutoff``: min(D, Q) is served, the rest refused;
* ``payg``: everything is served; the units past Q are billed in whole blocks
  (``sim.world.rules.payg_billable_units``): E[b ceil((D - Q)+ / b)] = b sum_n P(D > Q + n b);
* ``topup``: pack n + 1 is needed when D > Q + n x pack and bought with probability p^(n+1)
  (p = 1 for ``auto``; ``manual``: whoever declines once is cut off for the month), at most
  ``max_packs_per_month``; what the packs add is served;
* ``throttle``: past the quota a subscriber gets at most one admitted request per
  ``min_gap_s``. The requests it still gets served are estimated per intensity cell at the
  cell's mean demand: the time left after exhaustion, T (1 - Q/D), times the admitted rate of
  a non-paralysable dead-time counter, x / (1 + x gap), fed by "bursts" at rate x: sessions,
  each counted once plus once per later request whose think time exceeds the gap
  (``P(think > gap)`` from the Gamma think times). A rough estimate: requests within a session
  that pass because several short gaps add up to more than ``min_gap_s`` are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaincc

from sim.pricing.monthly_use import MonthlyUse
from sim.world.arrays import Plans
from sim.world.rules import (
    RULE_CUTOFF,
    RULE_PAYG,
    RULE_THROTTLE_DOWNGRADE,
    RULE_THROTTLE_SLOW,
    RULE_TOPUP,
)

MAX_EXACT_BLOCK_TERMS = 10_000
"""Pay-as-you-go blocks summed exactly (count); with more blocks in the demand's range the
rounding is taken as half a block per month over the quota (the fractional part of the overage
in blocks is then close to uniform). Numerical."""

BLOCK_RANGE_SDS = 12.0
"""How far above the largest cell mean, in that cell's standard deviations, the block sum runs
(sd); beyond it the probability is below 1e-30. Numerical."""


@dataclass(frozen=True)
class RuleTerms:
    """One plan's quota, fee and exhaustion rule as numbers (quota units and currency)."""

    fee: float
    quota: float
    rule: int
    payg_price_per_unit: float
    payg_block_units: float
    pack_units: float
    pack_price: float
    buy_probability: float
    """Chance a pack is bought at each exhaustion (1 for ``purchase: auto``)."""
    max_packs: int
    gap_s: float

    @classmethod
    def of(cls, plans: Plans, p: int) -> RuleTerms:
        """Plan ``p`` of the world's plans."""
        return cls(
            fee=float(plans.fee[p]),
            quota=float(plans.quota[p]),
            rule=int(plans.rule[p]),
            payg_price_per_unit=float(plans.payg_price_per_unit[p]),
            payg_block_units=float(plans.payg_block_units[p]),
            pack_units=float(plans.pack_units[p]),
            pack_price=float(plans.pack_price[p]),
            buy_probability=1.0 if plans.auto_buy[p] else float(plans.buy_prob[p]),
            max_packs=int(plans.max_packs[p]),
            gap_s=float(plans.gap_s[p]),
        )

    @property
    def throttles(self) -> bool:
        """True under either throttle mode."""
        return self.rule in (RULE_THROTTLE_SLOW, RULE_THROTTLE_DOWNGRADE)


@dataclass(frozen=True)
class Pacing:
    """How a segment's requests are spaced in time (for the throttle's estimate)."""

    month_s: float
    """Length of a billing month (s)."""
    requests_per_session: float
    think_time_s: float
    think_time_cv: float
    units_per_request: float
    """E[X]: mean quota units of one request (units)."""


@dataclass(frozen=True)
class MonthOutcome:
    """A subscriber-month's expected service and bill past the quota (means)."""

    served_units: float
    """Quota units served, within and past the quota (units)."""
    served_past_quota_units: float
    """Of which past the quota (units)."""
    overage: float
    """Pay-as-you-go bill (currency)."""
    packs: float
    """Top-up packs bought (packs)."""
    topup_spend: float
    """Top-up spend (currency)."""


def payg_billed_units(use: MonthlyUse, quota: float, block: float) -> float:
    """E[b ceil((D - quota)+ / b)]: the units a pay-as-you-go bill charges (units)."""
    p_over = use.sf(quota)
    if p_over <= 0:
        return 0.0
    top = float(np.max(use.mean + BLOCK_RANGE_SDS * np.sqrt(use.var)))
    n_terms = int(np.ceil(max(top - quota, 0.0) / block)) + 1
    if n_terms > MAX_EXACT_BLOCK_TERMS:
        return use.excess(quota) + block / 2.0 * p_over
    return block * sum(use.sf(quota + n * block) for n in range(n_terms))


def _topup(use: MonthlyUse, t: RuleTerms) -> tuple[float, float]:
    """Expected packs bought and units they let through."""
    packs = served = 0.0
    for n in range(t.max_packs):
        p_buy = t.buy_probability ** (n + 1)
        start = t.quota + n * t.pack_units
        packs += p_buy * use.sf(start)
        served += p_buy * (use.capped(start + t.pack_units) - use.capped(start))
    return packs, served


def throttled_units(use: MonthlyUse, t: RuleTerms, pace: Pacing) -> float:
    """Units served past the quota under a throttle (estimate, see the module docstring)."""
    x = pace.units_per_request
    if x <= 0:
        return 0.0
    if t.gap_s <= 0:
        return use.excess(t.quota)
    m = use.mean
    over = m > t.quota
    safe = np.where(over, m, 1.0)
    left_s = np.where(over, pace.month_s * (1.0 - t.quota / safe), 0.0)
    rate = m / x / pace.month_s  # requests/s
    r = pace.requests_per_session
    if pace.think_time_s > 0:
        k = 1.0 / pace.think_time_cv**2
        apart = float(gammaincc(k, t.gap_s * k / pace.think_time_s))
    else:
        apart = 0.0
    bursts = rate / r * (1.0 + (r - 1.0) * apart)
    admitted = bursts / (1.0 + bursts * t.gap_s)
    return float(np.dot(use.weight, left_s * np.minimum(rate, admitted) * x))


def month_outcome(use: MonthlyUse, t: RuleTerms, pace: Pacing) -> MonthOutcome:
    """Expected service and money of a month under the plan's rule."""
    within = use.capped(t.quota)
    past = 0.0
    overage = packs = spend = 0.0
    if t.rule == RULE_PAYG:
        past = use.excess(t.quota)
        overage = payg_billed_units(use, t.quota, t.payg_block_units) * t.payg_price_per_unit
    elif t.rule == RULE_TOPUP:
        packs, past = _topup(use, t)
        spend = packs * t.pack_price
    elif t.throttles:
        past = min(throttled_units(use, t, pace), use.excess(t.quota))
    else:
        assert t.rule == RULE_CUTOFF, f"unknown rule code {t.rule}"
    return MonthOutcome(within + past, past, overage, packs, spend)
