"""Money: what a subscriber-month is billed, and the ledger that records it.

Fees are billed at the start of each billing month (sign-up or renewal);
top-up packs when bought; pay-as-you-go overage at the close of the billing
month (postpaid), in whole blocks. A month still open at the end of the
horizon has its accrued overage billed at the end, so that every currency
unit billed appears in exactly one ledger row (money conservation: the
ledger's sums equal the revenue in the monthly table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.engine.population import Population
from sim.world.arrays import World
from sim.world.rules import RULE_PAYG, payg_billable_units

LEDGER_STATUS = ("renewed", "switched", "churned", "open")
"""How a ledger row's billing month ended ("open": still running at the horizon)."""


def overage_due(world: World, plan: NDArray[np.int64], over_units: NDArray) -> NDArray:
    """Pay-as-you-go overage owed for a month: whole blocks of over-quota units times price."""
    pl = world.plan
    billable = payg_billable_units(over_units, pl.payg_block_units[plan])
    return np.where(pl.rule[plan] == RULE_PAYG, billable * pl.payg_price_per_unit[plan], 0.0)


class Ledger:
    """Rows of closed (and, at the end, open) subscriber-months, built column by column."""

    def __init__(self, world: World, enabled: bool):
        self.world = world
        self.enabled = enabled
        self._parts: list[dict[str, NDArray]] = []

    def record(
        self,
        pop: Population,
        ids: NDArray[np.int64],
        day: int,
        overage: NDArray[np.float64],
        status: NDArray[np.int64],
    ) -> None:
        """Append one row per subscriber in ``ids`` for the month closing on ``day``."""
        if not self.enabled or len(ids) == 0:
            return
        c = pop.cols
        part: dict[str, NDArray] = {
            "subscriber": ids.copy(),
            "segment": c["seg"][ids].copy(),
            "plan": c["plan"][ids].copy(),
            "month_start_day": c["month_start_day"][ids].copy(),
            "close_day": np.full(len(ids), day),
            "status": status.copy(),
            "fee": c["fee_billed"][ids].copy(),
            "charge": c["charge"][ids].copy(),
            "overage": overage.copy(),
            "topups": c["topup_spend"][ids].copy(),
            "packs": c["packs"][ids].copy(),
            "quota_units": c["quota_eff"][ids].copy(),
            "used_units": c["usage"][ids].copy(),
            "exhausted": c["exhausted"][ids].astype(bool),
        }
        for k in (
            "requests",
            "served",
            "throttled",
            "refused",
            "abandoned",
            "slo_miss",
            "tokens_requested",
            "tokens_served",
            "tokens_refused",
            "tokens_abandoned",
            "tokens_throttled",
        ):
            part[k] = c[k][ids].copy()
        tbm = pop.tokens_by_model[ids]
        for m, name in enumerate(self.world.model_names):
            for j, cls in enumerate(("input_miss", "input_hit", "output")):
                part[f"tokens|{name}|{cls}"] = tbm[:, m, j].copy()
        self._parts.append(part)

    def frame(self) -> pd.DataFrame:
        """The ledger as a DataFrame with names for segment, plan and status."""
        if not self._parts:
            return pd.DataFrame()
        cols = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
        df = pd.DataFrame(cols)
        w = self.world
        df["segment"] = pd.Categorical.from_codes(df["segment"], categories=w.seg.names)
        df["plan"] = pd.Categorical.from_codes(df["plan"], categories=w.plan.names)
        df["status"] = pd.Categorical.from_codes(df["status"], categories=list(LEDGER_STATUS))
        return df
