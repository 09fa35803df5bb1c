"""Subscriber lifecycle steps run once a day: renewals (churn, switching, billing) and sign-ups.

These are the bodies of the engine's SimPy processes; they act on whole
cohorts at once (every subscriber whose billing anniversary is today).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.acquisition import expected_signups_per_month
from sim.engine.billing import LEDGER_STATUS, Ledger, overage_due
from sim.engine.choice import choose_plans, switch_plans
from sim.engine.churn import churn_probability
from sim.engine.metrics import Accumulators
from sim.engine.population import Population
from sim.engine.streams import Streams
from sim.units import TOKENS_PER_MTOK
from sim.world.arrays import World

STATUS = {name: i for i, name in enumerate(LEDGER_STATUS)}


def _safe_share(num: NDArray, den: NDArray) -> NDArray[np.float64]:
    """Num / den, 0 where den is 0."""
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def initial_population(world: World, pop: Population, acc: Accumulators, streams: Streams) -> None:
    """Create the t=0 subscribers: staggered billing anniversaries, no fee billed in-window.

    Each initial subscriber's current billing month started ``phase`` days
    before t=0 (phase uniform on 0..days_per_month-1; phase 0 = at t=0) and
    was paid before the run (its fee is outside the horizon, as in the TPD
    benchmark); its first renewal falls on day days_per_month - phase. They
    are established users: their engagement starts at the segment's target.
    """
    rng = streams["initial"]
    seg = np.repeat(np.arange(len(world.seg.names)), world.seg.initial)
    phase = -rng.integers(0, world.days_per_month, len(seg))
    ids = _add(world, pop, seg, phase, world.seg.eng_target[seg], streams, rng)
    acc.add_ps("submonths", 0, pop.plan[ids], seg)


def _add(
    world: World,
    pop: Population,
    seg: NDArray[np.int64],
    join_day: NDArray[np.int64],
    engagement: NDArray[np.float64],
    streams: Streams,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    shape = world.seg.intensity_shape[seg]
    intensity = rng.gamma(shape, 1.0 / shape)
    plan = choose_plans(world, seg, intensity * engagement, streams["choice"])
    ids = pop.add(seg, plan, intensity, engagement, join_day, world.plan.quota[plan])
    return ids


def sign_up(world: World, pop: Population, acc: Accumulators, streams: Streams, day: int) -> None:
    """Today's new subscribers: Poisson counts per segment, plan by logit; fee billed now."""
    active = pop.view("active")
    by_seg = np.bincount(pop.view("seg")[active], minlength=len(world.seg.names))
    lam = expected_signups_per_month(world, by_seg) / world.days_per_month
    k = streams["acquisition"].poisson(lam)
    if k.sum() == 0:
        return
    seg = np.repeat(np.arange(len(k)), k)
    ids = _add(
        world,
        pop,
        seg,
        np.full(len(seg), day),
        world.seg.eng_start[seg],
        streams,
        streams["acquisition"],
    )
    plan = pop.plan[ids]
    fee = world.plan.fee[plan]
    pop.fee_billed[ids] = fee
    m = world.month_of(day)
    acc.add_ps("new", m, plan, seg)
    acc.add_ps("submonths", m, plan, seg)
    acc.add_ps("revenue_fees", m, plan, seg, fee)


def renew(
    world: World,
    pop: Population,
    acc: Accumulators,
    ledger: Ledger,
    streams: Streams,
    day: int,
) -> None:
    """Close the billing months that end today: bill overage, decide churn, switch, renew."""
    due = pop.view("active") & (pop.view("month_start_day") + world.days_per_month == day)
    ids = np.flatnonzero(due)
    if len(ids) == 0:
        return
    m = world.month_of(day)
    dpm = world.days_per_month
    c = pop.cols
    seg, plan = c["seg"][ids], c["plan"][ids]
    pl = world.plan
    overage = overage_due(world, plan, c["over_units"][ids])
    acc.add_ps("revenue_overage", m, plan, seg, overage)
    acc.add_ps("renewals", m, plan, seg)
    acc.add_ps("exhausted", m, plan, seg, c["exhausted"][ids].astype(float))

    # features of the month, scaled to a full month where the run saw only part of it
    observed = np.clip(day - np.maximum(c["month_start_day"][ids], 0), 1, dpm) / dpm
    tvs = world.churn.throttled_value_share
    useful = c["tokens_served"][ids] - (1 - tvs) * c["tokens_throttled"][ids]
    value = world.seg.value_per_mtok[seg] / TOKENS_PER_MTOK * useful / observed
    paid = pl.fee[plan] + overage + c["topup_spend"][ids]
    use_share = _safe_share(c["usage"][ids] / observed, c["quota_eff"][ids])
    exhausted = c["exhausted"][ids] > 0
    p = churn_probability(
        world,
        seg,
        paid,
        value,
        exhausted,
        _safe_share(c["refused"][ids] + c["abandoned"][ids], c["requests"][ids]),
        _safe_share(c["throttled"][ids], c["requests"][ids]),
        _safe_share(c["slo_miss"][ids], c["slo_counted"][ids]),
        np.clip(1.0 - use_share, 0.0, 1.0),
        c["tenure_months"][ids],
    )
    rng = streams["churn"]
    leave = rng.random(len(ids)) < p

    # survivors: streaks, plan switch
    c["exhaust_streak"][ids] = np.where(exhausted, c["exhaust_streak"][ids] + 1, 0)
    waste = use_share < world.churn.downgrade_use_below
    c["waste_streak"][ids] = np.where(waste, c["waste_streak"][ids] + 1, 0)
    up = c["exhaust_streak"][ids] >= world.churn.upgrade_after_months
    down = c["waste_streak"][ids] >= world.churn.downgrade_after_months
    new_plan = switch_plans(world, seg, plan, up & ~leave, down & ~leave, rng)
    switched = (new_plan != plan) & ~leave
    status = np.where(
        leave, STATUS["churned"], np.where(switched, STATUS["switched"], STATUS["renewed"])
    )
    ledger.record(pop, ids, day, overage, status)

    acc.add_ps("churned", m, plan[leave], seg[leave])
    acc.add_ps("switched_out", m, plan[switched], seg[switched])
    acc.add_ps("switched_in", m, new_plan[switched], seg[switched])
    c["active"][ids[leave]] = False

    stay = ids[~leave]
    if len(stay) == 0:
        return
    old, newp, sseg = plan[~leave], new_plan[~leave], seg[~leave]
    c["exhaust_streak"][stay[switched[~leave]]] = 0
    c["waste_streak"][stay[switched[~leave]]] = 0
    c["plan"][stay] = newp
    c["tenure_months"][stay] += 1
    # engagement converges toward its target, with an optional lognormal shock
    sp = world.seg
    e = c["engagement"][stay]
    tgt = sp.eng_target[sseg]
    e = tgt - (tgt - e) * np.exp(-1.0 / sp.eng_tau_months[sseg])
    vol = sp.eng_volatility[sseg]
    if np.any(vol > 0):
        z = streams["engagement"].standard_normal(len(stay))
        e = e * np.exp(vol * z - vol**2 / 2)
    c["engagement"][stay] = e
    unused = np.maximum(c["quota_eff"][stay] - c["usage"][stay], 0.0)
    # a switch forfeits the unused quota: the new plan may count other units, on other terms
    carry = np.where(
        old == newp, np.minimum(unused * pl.rollover_share[old], pl.rollover_cap[old]), 0.0
    )
    pop.reset_month(stay, pl.quota[newp] + carry, day)
    fee = pl.fee[newp]
    c["fee_billed"][stay] = fee
    acc.add_ps("submonths", m, newp, sseg)
    acc.add_ps("revenue_fees", m, newp, sseg, fee)


def close_open_months(world: World, pop: Population, acc: Accumulators, ledger: Ledger) -> None:
    """At the horizon: bill accrued overage of the months still open and record them."""
    ids = np.flatnonzero(pop.view("active"))
    day = world.horizon_days
    m = world.horizon_months - 1
    plan, seg = pop.plan[ids], pop.seg[ids]
    overage = overage_due(world, plan, pop.over_units[ids])
    acc.add_ps("revenue_overage", m, plan, seg, overage)
    acc.add_ps("exhausted", m, plan, seg, pop.exhausted[ids].astype(float))
    ledger.record(pop, ids, day, overage, np.full(len(ids), STATUS["open"]))


def snapshot_active(world: World, pop: Population) -> NDArray[np.float64]:
    """Active subscribers by plan x segment."""
    a = pop.view("active")
    n_s = len(world.seg.names)
    key = pop.view("plan")[a] * n_s + pop.view("seg")[a]
    return np.bincount(key, minlength=len(world.plan.names) * n_s).reshape(-1, n_s).astype(float)
