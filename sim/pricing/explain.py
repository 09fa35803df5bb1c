"""What each package buys each segment, from the scenario's own demand model (``tokensim explain``).

For every plan and every segment that may take it, without simulating:

* **a request** at the segment's typical sizes: mean input (with its cached share) and output
  tokens as the engine draws them (caps applied, :mod:`sim.pricing.token_sizes`), the quota
  units it burns (the plan's model and token-class weights: ``sim.engine.choice.
  units_per_request`` on those means) and its price at the catalog's API list prices;
* **what the quota covers**: requests (a chat turn, an API call), sessions of
  ``requests_per_session`` requests (a coding-agent session) and documents (one request whose
  input is the segment's ``DOCUMENT_INPUT_QUANTILE`` quantile);
* **a month of use** over the segment's subscribers (:mod:`sim.pricing.monthly_use`): the
  percentiles of demand as a share of the quota, the share who exhaust it, the tokens used, what
  happens past the quota and what it costs (:mod:`sim.pricing.past_quota`), and the
  **effective price per 1M tokens used**, unused quota counted: the month's expected payment
  over its expected tokens used, against the API list price of the same token mix;
* the same month for the plan's **choosers**: the segment's subscribers weighted by the
  probability that the scenario's plan-choice logit (``sim.engine.choice.plan_utility``,
  scale ``choice_temperature``) picks this plan at their settled engagement, as the initial
  subscribers of a scenario without ``book`` choose. New subscribers choose at
  ``engagement.start``; renewals' up- and downgrades then move them; neither is in this figure;
* with a ``book``, the same month for the subscribers the book holds on the plan at t = 0, at
  the intensities their ``monthly_tokens`` give (:mod:`sim.pricing.book_use`).

Usage is taken at each segment's engagement ``target`` with its steady-state spread: the
established subscriber's month. Every constant is named below with its unit and source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from sim.engine.choice import plan_utility, units_per_request
from sim.engine.resolution import ACTIVITY_WINDOW_S
from sim.pricing.book_use import book_holders
from sim.pricing.explain_types import (
    Coverage,
    Explanation,
    PlanForSegment,
    PlanTerms,
    Population,
    RequestSize,
    UnknownPlanError,
)
from sim.pricing.monthly_use import (
    MonthlyUse,
    SessionDemand,
    activity_variance,
    engagement_cv2,
    intensity_cells,
    monthly_use,
)
from sim.pricing.past_quota import Pacing, RuleTerms, month_outcome
from sim.pricing.token_sizes import length_moments, length_quantile
from sim.scenario.schema import Scenario
from sim.units import SECONDS_PER_DAY, TOKENS_PER_MTOK
from sim.world.arrays import F64, World
from sim.world.build import build

DOCUMENT_INPUT_QUANTILE = 0.9
"""A "document" is one request whose input is at this quantile of the segment's input lengths
(share). Assumption: the upper decile of a segment's own prompts stands for a long document
pasted or uploaded for analysis, the use the market story sets against short questions ("the
same 10 million tokens are consumed at different speeds for short questions and long document
analyses", ../shared/context/token-packages-article.txt). On the baseline's chat lengths
(Kimi/Mooncake lognormal, median 6,437, sigma 1.2) it is about 29,900 tokens."""

USE_PERCENTILES = (5, 25, 50, 75, 95, 99)
"""Percentiles of monthly demand reported (percent): those of the run report's quota-use table
(``sim.report.data.QUOTA_PERCENTILES``), so that explain and a run can be read side by side."""


ASSUMPTIONS: tuple[tuple[str, float | str, str, str], ...] = (
    (
        "DOCUMENT_INPUT_QUANTILE",
        DOCUMENT_INPUT_QUANTILE,
        "share",
        "assumption: the upper decile of the segment's input lengths stands for a long document"
        " (../shared/context/token-packages-article.txt: short questions vs long document"
        " analyses)",
    ),
    (
        "USE_PERCENTILES",
        ", ".join(str(p) for p in USE_PERCENTILES),
        "percent",
        "the run report's quota-use percentiles (sim.report.data.QUOTA_PERCENTILES)",
    ),
    (
        "engagement",
        "target, steady-state spread",
        "",
        "the established subscriber's month (docs/model.md, Demand); new subscribers start at"
        " engagement.start",
    ),
    (
        "choosers",
        "logit at engagement target",
        "",
        "sim.engine.choice.plan_utility and choose_plans, as the initial subscribers choose"
        " without a book",
    ),
)
"""The explanation's own constants and modelling choices: name, value, unit, source."""


def _capped_world(world: World) -> World:
    """The world with the segments' mean lengths as the engine draws them (caps applied)."""
    in_mean, _ = length_moments(world.seg, "input")
    out_mean, _ = length_moments(world.seg, "output")
    return replace(world, seg=replace(world.seg, in_mean=in_mean, out_mean=out_mean))


def _model_mix(world: World, s: int, p: int) -> F64:
    """Probability of each catalog model for segment ``s`` on plan ``p``."""
    return np.diff(world.seg.model_cum[s, p], prepend=0.0)


def _request(world: World, s: int, p: int, upr: float) -> tuple[RequestSize, float]:
    """Segment ``s``'s mean request on plan ``p``, and E[X^2] of its quota units."""
    seg, pl, pool = world.seg, world.plan, world.pool
    in1, in2 = (float(v[s]) for v in length_moments(seg, "input"))
    out1, out2 = (float(v[s]) for v in length_moments(seg, "output"))
    h = float(seg.cache_hit[s])
    prob = _model_mix(world, s, p)
    w1 = float(prob @ pl.model_weight[p])
    w2 = float(prob @ pl.model_weight[p] ** 2)
    alpha = float(pl.w_miss[p] * (1 - h) + pl.w_hit[p] * h)
    beta = float(pl.w_out[p])
    doc_in = float(length_quantile(seg, "input", DOCUMENT_INPUT_QUANTILE)[s])
    if pl.quota_in_requests[p]:
        second, doc_units = w2, w1
    else:
        second = w2 * (alpha**2 * in2 + 2 * alpha * beta * in1 * out1 + beta**2 * out2)
        doc_units = w1 * (alpha * doc_in + beta * out1)
    per_model = (pool.price_miss * (1 - h) + pool.price_hit * h) * in1 + pool.price_out * out1
    size = RequestSize(
        input_tokens=in1,
        cached_input_tokens=h * in1,
        output_tokens=out1,
        model_weight=w1,
        quota_units=upr,
        list_price=float(prob @ per_model) / TOKENS_PER_MTOK,
        document_input_tokens=doc_in,
        document_quota_units=doc_units,
    )
    return size, second


def _per(quota: float, units: float) -> float:
    """How many ``units`` fit in ``quota`` (inf when a unit costs nothing)."""
    return quota / units if units > 0 else float("inf")


def _session_demand(world: World, s: int, upr: float, second: float) -> SessionDemand:
    """What a month's demand of segment ``s`` depends on, with E[X] = ``upr``."""
    seg = world.seg
    dpm = world.days_per_month
    if seg.replay and seg.replay[s] is not None:
        return SessionDemand(
            sessions_per_month=float(seg.replay_requests_per_day[s]) * dpm,
            requests_per_session=1.0,
            units_mean=upr,
            units_second=second,
            arrival_cv=1.0,
            activity_var=0.0,
            engagement=1.0,
            engagement_cv2=0.0,
            follows_intensity=False,
        )
    return SessionDemand(
        sessions_per_month=float(seg.sessions_per_day[s]) * dpm,
        requests_per_session=float(seg.requests_per_session[s]),
        units_mean=upr,
        units_second=second,
        arrival_cv=float(seg.arrival_cv[s]),
        activity_var=activity_variance(
            float(seg.activity_sigma[s]),
            float(seg.activity_timescale_s[s]),
            seg.hour_weight[s],
            seg.weekday_weight[s],
            world.start_weekday,
            dpm,
            ACTIVITY_WINDOW_S,
        ),
        engagement=float(seg.eng_target[s]),
        engagement_cv2=engagement_cv2(
            float(seg.eng_target[s]), float(seg.eng_tau_months[s]), float(seg.eng_volatility[s])
        ),
    )


def choice_shares(world: World, s: int, intensity: F64) -> F64:
    """[J, P] probability that a subscriber of segment ``s`` at each intensity picks each plan.

    The logit of ``sim.engine.choice.choose_plans`` at scale intensity x engagement target.
    """
    seg = np.full(len(intensity), s, dtype=np.int64)
    u = plan_utility(world, seg, intensity * world.seg.eng_target[s])
    u = u / world.churn.choice_temperature
    u -= u.max(axis=1, keepdims=True)
    e = np.exp(u)
    return e / e.sum(axis=1, keepdims=True)


def _population(
    use: MonthlyUse,
    share: float,
    requests: float,
    terms: RuleTerms,
    pace: Pacing,
    request: RequestSize,
    break_even_units: float,
) -> Population:
    """A month of ``use`` under ``terms``: shares, service, money, effective prices.

    ``requests``: the population's mean requests a month.
    """
    q = terms.quota
    x = request.quota_units
    demand = use.total_mean()
    out = month_outcome(use, terms, pace)
    served_share = out.served_units / demand if demand > 0 else 1.0
    tokens = requests * request.tokens * served_share
    median = use.quantile(0.5)
    med_out = month_outcome(MonthlyUse.point(median), terms, pace)
    med_tokens = med_out.served_units / x * request.tokens if x > 0 else 0.0
    med_paid = terms.fee + med_out.overage + med_out.topup_spend
    has_quota = q > 0
    return Population(
        share_of_segment=share,
        demand_requests=requests,
        demand_units=demand,
        use_percentiles={
            pc: use.quantile(pc / 100) / q if has_quota else float("nan") for pc in USE_PERCENTILES
        },
        used_share=use.capped(q) / q if has_quota else float("nan"),
        exhausting_share=use.sf(q) if has_quota else 1.0,
        demand_past_quota_units=use.excess(q),
        served_past_quota_units=out.served_past_quota_units,
        refused_share=1.0 - served_share,
        tokens_used=tokens,
        fee=terms.fee,
        overage=out.overage,
        topup_packs=out.packs,
        topup_spend=out.topup_spend,
        effective_price_per_mtok=_price_per_mtok(terms.fee + out.overage + out.topup_spend, tokens),
        median_demand_units=median,
        median_effective_price_per_mtok=_price_per_mtok(med_paid, med_tokens),
        fee_worth_it_share=use.sf(break_even_units) if break_even_units <= q else 0.0,
    )


def _price_per_mtok(paid: float, tokens: float) -> float:
    """Currency per 1M tokens (inf when nothing is used)."""
    return paid / tokens * TOKENS_PER_MTOK if tokens > 0 else float("inf")


def _pair(
    world: World, capped: World, s: int, p: int, cells: tuple[F64, F64], chosen: F64
) -> PlanForSegment:
    """What plan ``p`` buys segment ``s`` (``chosen``: [J] choice probability of ``p``)."""
    holders = book_holders(world, s, p, cells)
    seg, pl = world.seg, world.plan
    upr = float(units_per_request(capped)[s, p])
    request, second = _request(capped, s, p, upr)
    demand = _session_demand(capped, s, upr, second)
    terms = RuleTerms.of(pl, p)
    q = terms.quota
    pace = Pacing(
        month_s=world.days_per_month * SECONDS_PER_DAY,
        requests_per_session=demand.requests_per_session,
        think_time_s=float(seg.think_time_s[s]),
        think_time_cv=float(seg.think_time_cv[s]),
        units_per_request=upr,
    )
    tokens_per_unit = request.tokens / upr if upr > 0 else float("inf")
    quota_tokens = q * tokens_per_unit if q > 0 else 0.0
    list_per_token = request.list_price / request.tokens if request.tokens > 0 else 0.0
    break_even_tokens = terms.fee / list_per_token if list_per_token > 0 else float("inf")
    break_even_units = break_even_tokens / tokens_per_unit
    weight, node = cells
    use = monthly_use(demand, weight, node)
    per_request = demand.requests_at_unit_intensity
    everyone = _population(use, 1.0, per_request, terms, pace, request, break_even_units)
    pick = float(np.dot(weight, chosen))
    choosers = None
    if pick > 0:
        mine = use.reweighted(chosen)
        scale = float(np.dot(mine.weight, node)) if demand.follows_intensity else 1.0
        choosers = _population(
            mine, pick, per_request * scale, terms, pace, request, break_even_units
        )
    book = None
    if holders is not None:
        held = monthly_use(demand, holders.weight, holders.intensity)
        mean_g = float(np.dot(held.weight, holders.intensity)) if demand.follows_intensity else 1
        book = _population(
            held,
            holders.share_of_segment,
            per_request * mean_g,
            terms,
            pace,
            request,
            break_even_units,
        )
    return PlanForSegment(
        plan=pl.names[p],
        segment=seg.names[s],
        kind=seg.kinds[s],
        request=request,
        covers=Coverage(
            requests=_per(q, upr),
            sessions=_per(q, upr * demand.requests_per_session),
            documents=_per(q, request.document_quota_units),
            requests_per_session=demand.requests_per_session,
        ),
        list_price_per_mtok=list_per_token * TOKENS_PER_MTOK,
        quota_tokens=quota_tokens,
        full_quota_price_per_mtok=_price_per_mtok(terms.fee, quota_tokens),
        break_even_tokens=break_even_tokens,
        everyone=everyone,
        choosers=choosers,
        book=book,
        book_subscribers=holders.subscribers if holders else 0,
    )


def _terms(s: Scenario) -> list[PlanTerms]:
    """Each plan of the scenario as sold, with the segments that may take it."""
    return [
        PlanTerms(
            name=p.name,
            fee=p.price_per_month,
            quota=p.quota.amount,
            quota_unit=p.quota.unit,
            models=dict(p.models),
            token_class_weights=p.token_class_weights.model_dump(),
            on_exhaustion=p.on_exhaustion.model_dump(),
            rollover=p.rollover.model_dump(),
            concurrency_limit=p.concurrency_limit,
            sla_class=p.sla_class,
            channel=p.channel,
            segments=[g.name for g in s.segments if p.name in g.plans],
        )
        for p in s.plans
    ]


def explain(scenario: Scenario, plans: Sequence[str] | None = None) -> Explanation:
    """What each plan (or each of ``plans``) buys each segment that may take it.

    Raises :class:`UnknownPlanError` naming a plan the scenario does not define, and
    ``ScenarioError`` when the world cannot be built (an unreadable replay trace).
    """
    known = [p.name for p in scenario.plans]
    for name in plans or ():
        if name not in known:
            raise UnknownPlanError(
                f"unknown plan '{name}' (the scenario's plans: {', '.join(known)})"
            )
    wanted = [known.index(n) for n in dict.fromkeys(plans)] if plans else list(range(len(known)))
    world = build(scenario)
    capped = _capped_world(world)
    pairs = []
    for s in range(len(world.seg.names)):
        offered = [p for p in wanted if world.seg.eligible[s, p]]
        if not offered:
            continue
        cells = intensity_cells(float(world.seg.intensity_shape[s]))
        shares = choice_shares(world, s, cells[1])
        pairs += [_pair(world, capped, s, p, cells, shares[:, p]) for p in offered]
    order = {p: i for i, p in enumerate(wanted)}
    pairs.sort(key=lambda x: order[known.index(x.plan)])
    terms = _terms(scenario)
    return Explanation(
        scenario=scenario.name,
        currency=scenario.currency,
        days_per_month=scenario.days_per_month,
        plans=[terms[p] for p in wanted],
        pairs=pairs,
        models={
            m.name: {
                "input_miss": m.price_input_miss_per_mtok,
                "input_hit": m.price_input_hit_per_mtok,
                "output": m.price_output_per_mtok,
            }
            for m in scenario.catalog.models
        },
    )
