"""Subscriber lifecycle steps run once a day: renewals (churn, switching, billing) and sign-ups.

These are the bodies of the engine's SimPy processes; they act on whole
cohorts at once (every subscriber whose billing anniversary is today).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sim.engine.acquisition import expected_signups_per_month
from sim.engine.billing import LEDGER_STATUS, Ledger, overage_due
from sim.engine.choice import INITIAL, VALUE_FLOOR, choose_plans, convert_trials, switch_plans
from sim.engine.churn import churn_probability
from sim.engine.metrics import Accumulators
from sim.engine.population import Population
from sim.engine.streams import Streams
from sim.units import TOKENS_PER_MTOK
from sim.world.arrays import World
from sim.world.timeline import Book

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
    They hold the plan terms before any event (a price change reaches them at
    renewal). Without a book they chose by the logit at those terms; with one
    they hold the book's plans and tenures (sim.world.timeline.Book).
    """
    rng = streams["initial"]
    book = world.book
    if book is None:
        seg = np.repeat(np.arange(len(world.seg.names)), world.seg.initial)
    else:
        seg = book.seg
    phase = -rng.integers(0, world.days_per_month, len(seg))
    if book is None:
        ids = _add(world, pop, seg, phase, world.seg.eng_target[seg], streams, rng, INITIAL)
    else:
        ids = _add_book(world, pop, book, phase, streams, rng)
    acc.add_ps("submonths", 0, pop.plan[ids], seg)


def _add_book(
    world: World,
    pop: Population,
    book: Book,
    phase: NDArray[np.int64],
    streams: Streams,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """The book's subscribers with their plans and tenures (intensity from billing if given)."""
    sp, tl = world.seg, world.timeline
    seg = book.seg
    shape = sp.intensity_shape[seg]
    intensity = rng.gamma(shape, 1.0 / shape)
    e_in, e_out = sp.mean_tokens()
    per_month = sp.mean_requests_per_day() * world.days_per_month * (e_in + e_out)
    known = np.isfinite(book.monthly_tokens)
    intensity[known] = book.monthly_tokens[known] / np.maximum(
        per_month[seg[known]] * sp.eng_target[seg[known]], VALUE_FLOOR
    )
    engagement = sp.eng_target[seg]
    plan = book.plan.copy()
    again = plan < 0
    if again.any():
        plan[again] = choose_plans(
            world, seg[again], intensity[again] * engagement[again], streams["choice"], INITIAL
        )
    tenure = book.tenure_months.copy()
    draw = tenure < 0
    tenure[draw] = rng.geometric(1.0 / (1.0 + book.tenure_mean[draw])) - 1
    ids = pop.add(seg, plan, intensity, engagement, phase, tl.base_quota[plan])
    c = pop.cols
    c["tenure_months"][ids] = tenure
    c["plan_months"][ids] = tenure
    c["price"][ids] = tl.base_fee[plan]
    c["charge"][ids] = tl.base_fee[plan]
    return ids


def _add(
    world: World,
    pop: Population,
    seg: NDArray[np.int64],
    join_day: NDArray[np.int64],
    engagement: NDArray[np.float64],
    streams: Streams,
    rng: np.random.Generator,
    month: int,
) -> NDArray[np.int64]:
    """New subscribers choosing by the logit at ``month``'s terms (INITIAL: before events).

    Sets each one's fee, price epoch and promotion; returns their ids. The fee charged is
    in ``charge`` (billing it is the caller's business).
    """
    shape = world.seg.intensity_shape[seg]
    intensity = rng.gamma(shape, 1.0 / shape)
    plan = choose_plans(world, seg, intensity * engagement, streams["choice"], month)
    tl = world.timeline
    quota = tl.base_quota[plan] if month == INITIAL else tl.quota[month][plan]
    ids = pop.add(seg, plan, intensity, engagement, join_day, quota)
    c = pop.cols
    if month == INITIAL:
        c["price"][ids] = tl.base_fee[plan]
        c["charge"][ids] = tl.base_fee[plan]
        return ids
    c["price"][ids] = tl.fee[month][plan]
    c["price_epoch"][ids] = tl.epoch_at[month][plan]
    c["promo_left"][ids] = tl.promo_months[month][plan]
    c["promo_share"][ids] = tl.promo_share[month][plan]
    c["charge"][ids] = _charge(c, ids)
    return ids


def _charge(c: dict[str, NDArray], ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """The fee a subscriber pays this billing month: its price less any running promotion."""
    discount = np.where(c["promo_left"][ids] > 0, c["promo_share"][ids], 0.0)
    return c["price"][ids] * (1.0 - discount)


def sign_up(world: World, pop: Population, acc: Accumulators, streams: Streams, day: int) -> None:
    """Today's new subscribers: Poisson counts per segment, plan by logit; fee billed now."""
    active = pop.view("active")
    by_seg = np.bincount(pop.view("seg")[active], minlength=len(world.seg.names))
    m = world.month_of(day)
    lam = expected_signups_per_month(world, by_seg, m) / world.days_per_month
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
        m,
    )
    plan = pop.plan[ids]
    fee = pop.charge[ids]
    pop.fee_billed[ids] = fee
    acc.add_ps("new", m, plan, seg)
    acc.add_ps("submonths", m, plan, seg)
    acc.add_ps("revenue_fees", m, plan, seg, fee)
    if world.timeline.active:
        acc.add_ps("discounts", m, plan, seg, pop.price[ids] - fee)


def renew(
    world: World,
    pop: Population,
    acc: Accumulators,
    ledger: Ledger,
    streams: Streams,
    day: int,
) -> None:
    """Close the billing months that end today: bill overage, decide churn, switch, renew.

    With events (sim.world.timeline): an ending free trial converts to a paid plan by the
    logit or lapses instead of the churn decision; a retired plan's renewing subscribers move
    to its target; ladder moves onto plans off sale are not taken.
    """
    due = pop.view("active") & (pop.view("month_start_day") + world.days_per_month == day)
    ids = np.flatnonzero(due)
    if len(ids) == 0:
        return
    m = world.month_of(day)
    dpm = world.days_per_month
    c = pop.cols
    tl = world.timeline
    seg, plan = c["seg"][ids], c["plan"][ids]
    overage = overage_due(world, plan, c["over_units"][ids])
    acc.add_ps("revenue_overage", m, plan, seg, overage)
    acc.add_ps("renewals", m, plan, seg)
    acc.add_ps("exhausted", m, plan, seg, c["exhausted"][ids].astype(float))

    # features of the month, scaled to a full month where the run saw only part of it
    observed = np.clip(day - np.maximum(c["month_start_day"][ids], 0), 1, dpm) / dpm
    tvs = world.churn.throttled_value_share
    useful = c["tokens_served"][ids] - (1 - tvs) * c["tokens_throttled"][ids]
    value = world.seg.value_per_mtok[seg] / TOKENS_PER_MTOK * useful / observed
    paid = c["charge"][ids] + overage + c["topup_spend"][ids]
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
        tl.reference[m][seg] if tl.active else None,
    )
    rng = streams["churn"]
    leave = rng.random(len(ids)) < p

    # survivors: streaks, plan switch
    c["exhaust_streak"][ids] = np.where(exhausted, c["exhaust_streak"][ids] + 1, 0)
    waste = use_share < world.churn.downgrade_use_below
    c["waste_streak"][ids] = np.where(waste, c["waste_streak"][ids] + 1, 0)
    up = c["exhaust_streak"][ids] >= world.churn.upgrade_after_months
    down = c["waste_streak"][ids] >= world.churn.downgrade_after_months
    new_plan = switch_plans(world, seg, plan, up & ~leave, down & ~leave, rng, m)
    if tl.active:
        leave, new_plan = _timeline_moves(world, pop, acc, ids, m, leave, new_plan, rng)
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
    _engagement(world, pop, streams, stay, sseg)
    unused = np.maximum(c["quota_eff"][stay] - c["usage"][stay], 0.0)
    # a switch forfeits the unused quota: the new plan may count other units, on other terms
    pl = world.plan
    carry = np.where(
        old == newp, np.minimum(unused * pl.rollover_share[old], pl.rollover_cap[old]), 0.0
    )
    pop.reset_month(stay, tl.quota[m][newp] + carry, day)
    if tl.active:
        _renew_terms(world, pop, stay, old, newp, day, m)
        fee = c["charge"][stay]
        acc.add_ps("discounts", m, newp, sseg, c["price"][stay] - fee)
    else:  # no events: the plan's list fee, also for those who switched plan today
        fee = pl.fee[newp]
        c["price"][stay] = fee
        c["charge"][stay] = fee
    c["fee_billed"][stay] = fee
    acc.add_ps("submonths", m, newp, sseg)
    acc.add_ps("revenue_fees", m, newp, sseg, fee)


def _engagement(
    world: World,
    pop: Population,
    streams: Streams,
    stay: NDArray[np.int64],
    sseg: NDArray[np.int64],
) -> None:
    """Engagement converges toward its target, with an optional lognormal shock."""
    sp, c = world.seg, pop.cols
    e = c["engagement"][stay]
    tgt = sp.eng_target[sseg]
    e = tgt - (tgt - e) * np.exp(-1.0 / sp.eng_tau_months[sseg])
    vol = sp.eng_volatility[sseg]
    if np.any(vol > 0):
        z = streams["engagement"].standard_normal(len(stay))
        e = e * np.exp(vol * z - vol**2 / 2)
    c["engagement"][stay] = e


def _timeline_moves(
    world: World,
    pop: Population,
    acc: Accumulators,
    ids: NDArray[np.int64],
    m: int,
    leave: NDArray[np.bool_],
    new_plan: NDArray[np.int64],
    rng: np.random.Generator,
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Free trials that end convert or lapse; retired plans' subscribers migrate."""
    tl, c = world.timeline, pop.cols
    seg, plan = c["seg"][ids], c["plan"][ids]
    months = tl.trial_months[plan]
    ending = (months > 0) & (c["plan_months"][ids] + 1 >= months)
    leave, new_plan = leave.copy(), new_plan.copy()
    if ending.any():
        scale = c["intensity"][ids[ending]] * c["engagement"][ids[ending]]
        target = convert_trials(world, seg[ending], scale, m, rng)
        leave[ending] = target < 0
        new_plan[ending] = np.where(target < 0, plan[ending], target)
        lapsed, converted = ending & leave, ending & ~leave
        acc.add_ps("trial_lapsed", m, plan[lapsed], seg[lapsed])
        acc.add_ps("trial_converted", m, plan[converted], seg[converted])
    target = tl.migrate_to[m][plan]
    moving = (target >= 0) & ~leave & ~ending
    if moving.any():
        new_plan[moving] = target[moving]
        acc.add_ps("migrated", m, plan[moving], seg[moving])
    return leave, new_plan


def _renew_terms(
    world: World,
    pop: Population,
    stay: NDArray[np.int64],
    old: NDArray[np.int64],
    newp: NDArray[np.int64],
    day: int,
    m: int,
) -> None:
    """Each renewing subscriber's fee for the new billing month.

    On a new plan: that plan's list fee and promotion of this month. On the same plan: its own
    fee, unless a price change has reached it by today (the latest one wins); a running
    promotion counts down one month.
    """
    tl, c = world.timeline, pop.cols
    moved = newp != old
    price = c["price"][stay]
    epoch = c["price_epoch"][stay]
    for k in range(len(tl.price_plan)):
        if tl.price_existing_day[k] <= day:
            hit = ~moved & (newp == tl.price_plan[k]) & (epoch < k)
            price[hit] = tl.price_fee[k]
            epoch[hit] = k
    price[moved] = tl.fee[m][newp[moved]]
    epoch[moved] = tl.epoch_at[m][newp[moved]]
    c["price"][stay] = price
    c["price_epoch"][stay] = epoch
    c["promo_left"][stay] = np.where(
        moved, tl.promo_months[m][newp], np.maximum(c["promo_left"][stay] - 1, 0)
    )
    c["promo_share"][stay] = np.where(moved, tl.promo_share[m][newp], c["promo_share"][stay])
    c["plan_months"][stay] = np.where(moved, 0, c["plan_months"][stay] + 1)
    c["charge"][stay] = _charge(c, stay)


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
