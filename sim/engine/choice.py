"""Renewal, plan switching, acquisition and plan choice: plain functions of arrays.

Plan choice (new subscribers): a multinomial logit over the segment's eligible
plans, utility = value of the tokens the plan would serve minus what the
subscriber would pay, both for the subscriber's own expected monthly demand
(its intensity times engagement times the segment mean), in currency, scaled
by ``choice_temperature``.

Renewal (at each billing anniversary): churn with probability
``sigmoid(intercept + x . beta)`` where x holds ln(paid/value), exhaustion,
refused, throttled and SLO-miss shares, unused quota share and ln(1+tenure).
Survivors who kept exhausting their quota move one plan up the segment's
ladder (by fee), those who kept wasting it one plan down.

Acquisition: Bass diffusion (p + q N/M)(M - N) per month toward a market
size, or a constant rate; sign-ups arrive as a daily Poisson count.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.units import TOKENS_PER_MTOK
from sim.world.arrays import World
from sim.world.rules import (
    RULE_PAYG,
    RULE_THROTTLE_DOWNGRADE,
    RULE_THROTTLE_SLOW,
    RULE_TOPUP,
    payg_billable_units,
)

VALUE_FLOOR = 1e-9
"""Smallest value/payment used inside the logarithm (currency); avoids log(0)."""


def units_per_request(world: World) -> NDArray[np.float64]:
    """Expected quota units one request burns, by segment and plan: [S, P]."""
    seg, pl = world.seg, world.plan
    e_in, e_out = seg.mean_tokens()
    h = seg.cache_hit
    prob = np.diff(seg.model_cum, axis=2, prepend=0.0)  # [S, P, M]
    w_model = (prob * pl.model_weight[None, :, :]).sum(axis=2)  # [S, P]
    tok_units = (
        pl.w_miss[None, :] * ((1 - h) * e_in)[:, None]
        + pl.w_hit[None, :] * (h * e_in)[:, None]
        + pl.w_out[None, :] * e_out[:, None]
    )
    per_req = np.where(pl.quota_in_requests[None, :], 1.0, tok_units)
    return w_model * per_req


INITIAL = -1
"""The ``month`` of plan terms before any event: what the book at t=0 saw when it chose."""


def plan_terms(world: World, month: int) -> tuple[NDArray, NDArray, NDArray]:
    """Fee as advertised (promotion applied), quota and on-sale flags of every plan in a month.

    ``month`` = :data:`INITIAL` gives the terms before any event (the choice of the initial
    subscribers when the scenario has no book), with the plans on sale in month 0.
    """
    tl = world.timeline
    if month == INITIAL:
        return tl.base_fee, tl.base_quota, tl.on_sale[0]
    return tl.fee[month] * (1.0 - tl.promo_share[month]), tl.quota[month], tl.on_sale[month]


def plan_utility(
    world: World, seg: NDArray[np.int64], scale: NDArray[np.float64], month: int = INITIAL
) -> NDArray:
    """Utility (currency/month) of every plan for subscribers of ``seg`` with demand ``scale``.

    Plans are priced and sized as in ``month`` (:func:`plan_terms`). Returns [n, P]; plans the
    segment is not offered, or not on sale, get -inf.
    """
    w, sp, pl = world, world.seg, world.plan
    fee, quota, on_sale = plan_terms(world, month)
    e_in, e_out = sp.mean_tokens()
    reqs = sp.mean_requests_per_day()[seg] * w.days_per_month * scale  # requests/month
    upr = units_per_request(w)[seg]  # [n, P]
    demand = reqs[:, None] * upr
    tok_per_unit = (e_in + e_out)[seg][:, None] / np.maximum(upr, VALUE_FLOOR)
    value_per_unit = sp.value_per_mtok[seg][:, None] / TOKENS_PER_MTOK * tok_per_unit
    q = quota[None, :]
    within = np.minimum(demand, q)
    over = np.maximum(demand - q, 0.0)
    rule = pl.rule[None, :]
    served = within.copy()
    cost = np.broadcast_to(fee[None, :], demand.shape).copy()
    thr = (rule == RULE_THROTTLE_SLOW) | (rule == RULE_THROTTLE_DOWNGRADE)
    served += np.where(thr, w.churn.throttled_value_share * over, 0.0)
    payg = rule == RULE_PAYG
    blocks = payg_billable_units(over, pl.payg_block_units[None, :])
    served += np.where(payg, over, 0.0)
    cost += np.where(payg, blocks * pl.payg_price_per_unit[None, :], 0.0)
    topup = rule == RULE_TOPUP
    packs = np.minimum(
        np.ceil(over / np.maximum(pl.pack_units[None, :], VALUE_FLOOR)), pl.max_packs[None, :]
    )
    p_buy = np.where(pl.auto_buy, 1.0, pl.buy_prob)[None, :]
    extra = np.minimum(packs * pl.pack_units[None, :], over)
    served += np.where(topup, p_buy * extra, 0.0)
    cost += np.where(topup, p_buy * packs * pl.pack_price[None, :], 0.0)
    u = value_per_unit * served - cost
    return np.where(sp.eligible[seg] & on_sale[None, :], u, -np.inf)


def choose_plans(
    world: World,
    seg: NDArray[np.int64],
    scale: NDArray[np.float64],
    rng: np.random.Generator,
    month: int = INITIAL,
) -> NDArray[np.int64]:
    """Plan of each new subscriber by a logit over its eligible plans on sale in ``month``."""
    if len(seg) == 0:
        return np.zeros(0, dtype=np.int64)
    u = plan_utility(world, seg, scale, month) / world.churn.choice_temperature
    u -= u.max(axis=1, keepdims=True)
    p = np.exp(u)
    cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    r = rng.random(len(seg))[:, None]
    return np.minimum((r >= cum).sum(axis=1), cum.shape[1] - 1).astype(np.int64)


def switch_plans(
    world: World,
    seg: NDArray[np.int64],
    plan: NDArray[np.int64],
    up: NDArray[np.bool_],
    down: NDArray[np.bool_],
    rng: np.random.Generator,
    month: int = 0,
) -> NDArray[np.int64]:
    """New plan after renewal: one step along the segment's ladder, or unchanged.

    One step up if ``up`` (with the upgrade probability), one step down if
    ``down`` (with the downgrade probability); a step onto a plan not on sale in ``month`` is
    not taken.
    """
    c = world.churn
    new = plan.copy()
    r = rng.random(len(plan))
    for k, ladder in enumerate(world.seg.ladder):
        if len(ladder) < 2:
            continue
        pos_of = np.full(len(world.plan.names), -1)
        pos_of[ladder] = np.arange(len(ladder))
        lad = np.asarray(ladder)
        mine = seg == k
        pos = pos_of[plan]
        go_up = mine & up & (pos >= 0) & (pos < len(ladder) - 1) & (r < c.upgrade_probability)
        go_down = mine & ~go_up & down & (pos > 0) & (r < c.downgrade_probability)
        new[go_up] = lad[pos[go_up] + 1]
        new[go_down] = lad[pos[go_down] - 1]
    off = ~world.timeline.on_sale[month][new]
    new[off] = plan[off]
    return new


def convert_trials(
    world: World,
    seg: NDArray[np.int64],
    scale: NDArray[np.float64],
    month: int,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Plan each ending free trial converts to, or -1 (lapse).

    The same logit as a new subscriber's choice over the segment's paid plans on sale in
    ``month``, plus the outside option of not buying at utility 0.
    """
    u = plan_utility(world, seg, scale, month)
    u[:, world.timeline.trial_months > 0] = -np.inf
    u = np.concatenate([u, np.zeros((len(seg), 1))], axis=1) / world.churn.choice_temperature
    u -= u.max(axis=1, keepdims=True)
    p = np.exp(u)
    cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    pick = np.minimum((rng.random(len(seg))[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)
    return np.where(pick == cum.shape[1] - 1, -1, pick).astype(np.int64)


def price_index(world: World, month: int) -> NDArray[np.float64]:
    """Expected advertised fee of each segment's plan choice at its mean demand (currency/month).

    What the market compares with its reference price: the logit's choice probabilities at
    intensity and engagement 1 weighting the fees of the plans on sale. NaN where a segment
    has no plan on sale.
    """
    n_s = len(world.seg.names)
    fee = plan_terms(world, month)[0]
    u = plan_utility(world, np.arange(n_s), np.ones(n_s), month) / world.churn.choice_temperature
    top = u.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        p = np.exp(u - top)
        p /= p.sum(axis=1, keepdims=True)
    return np.where(np.isfinite(top[:, 0]), (np.nan_to_num(p) * fee[None, :]).sum(axis=1), np.nan)
