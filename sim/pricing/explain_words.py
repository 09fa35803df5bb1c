"""``explain``'s sentences: a plan as sold, its rule past the quota, what it buys a segment.

Built from :class:`sim.pricing.explain_types.Explanation`'s parts with the number formats of
:mod:`sim.pricing.explain_numbers`; :mod:`sim.pricing.explain_text` carries them into the text
and the JSON, so the terminal, ``explain.json`` and the page say the same thing.
"""

from __future__ import annotations

from sim.pricing.explain import DOCUMENT_INPUT_QUANTILE, USE_PERCENTILES
from sim.pricing.explain_numbers import (
    SMALLEST_AMOUNT,
    SMALLEST_SHARE,
    about_money,
    about_tokens,
    count,
    duration,
    finite,
    money,
    plural,
    share,
    tokens,
)
from sim.pricing.explain_types import PlanForSegment, PlanTerms, Population

KIND_WORDS = {
    "chat": ("chat turn", "conversation"),
    "household": ("chat turn", "conversation"),
    "coder": ("agent request", "coding-agent session"),
    "enterprise_bot": ("API request", "session"),
    "other": ("request", "session"),
}
"""What a segment kind calls one request and one session (singular nouns)."""


def _unit_noun(terms: PlanTerms) -> str:
    return "requests" if terms.quota_unit == "requests" else "tokens"


def plan_words(terms: PlanTerms, currency: str) -> str:
    """The plan as sold, in one sentence."""
    models = ", ".join(f"{m} x{w:g}" for m, w in terms.models.items())
    extra = []
    if terms.rollover.get("share", 0) > 0:
        extra.append(
            f"{share(terms.rollover['share'])} of unused quota carries over"
            f" (at most {tokens(terms.rollover['cap_units'])})"
        )
    if terms.concurrency_limit:
        extra.append(f"at most {terms.concurrency_limit} requests in flight")
    extra.append(f"SLA class {terms.sla_class}")
    quota = f"for {tokens(terms.quota)} {_unit_noun(terms)}" if terms.quota > 0 else "with no quota"
    return (
        f"{money(terms.fee, currency)} a month {quota} (models and their quota weights:"
        f" {models}); {'; '.join(extra)}."
    )


def past_quota_words(terms: PlanTerms, currency: str) -> str:
    """What the plan does past its quota, in one sentence."""
    ex = terms.on_exhaustion
    unit = _unit_noun(terms)
    rule = ex["rule"]
    if rule == "cutoff":
        return "Past the quota, requests are refused until the next billing month."
    if rule == "throttle":
        lane = ", queued behind every SLA class" if ex.get("deprioritise") else ""
        gap = duration(ex["min_gap_s"])
        if ex.get("mode") == "downgrade":
            return (
                f"Past the quota, requests go to {ex['downgrade_model']} instead, at most one"
                f" every {gap}{lane}, until the next billing month."
            )
        return (
            f"Past the quota, at most one request every {gap} is served{lane}, until the next"
            " billing month."
        )
    if rule == "payg":
        block = ex.get("block_units", 1.0)
        blocks = f", in blocks of {tokens(block)}" if block > 1 else ""
        return (
            f"Past the quota, every request is served and billed at"
            f" {money(ex['price_per_munit'], currency)} per 1M quota {unit}{blocks},"
            " at the close of the month."
        )
    pack = f"packs of {tokens(ex['pack_units'])} {unit} for {money(ex['pack_price'], currency)}"
    most = f"at most {ex['max_packs_per_month']} a month"
    if ex.get("purchase") == "auto":
        return (
            f"Past the quota, {pack} are bought automatically, {most}; then requests are refused."
        )
    return (
        f"Past the quota, the subscriber is offered {pack}, {most}; a"
        f" {share(ex['manual_buy_probability'])} chance each time that it buys (the scenario's"
        " assumption); who declines is cut off until the next billing month."
    )


def _request_sentence(x: PlanForSegment, terms: PlanTerms, currency: str) -> str:
    turn, _ = KIND_WORDS.get(x.kind, KIND_WORDS["other"])
    r = x.request
    units = (
        f"{r.quota_units:,.3g} quota requests"
        if terms.quota_unit == "requests"
        else f"{r.quota_units:,.0f} quota tokens"
    )
    price = (
        f"{money(r.list_price, currency)} at API list prices"
        if r.list_price > 0
        else "the catalog lists no API price for these models"
    )
    return (
        f"One {turn} at the segment's mean sizes: {r.tokens:,.0f} tokens"
        f" ({r.input_tokens:,.0f} input, of which"
        f" {share(r.cached_input_tokens / r.input_tokens if r.input_tokens else 0)} cached;"
        f" {r.output_tokens:,.0f} output), counted as {units} (models weighted"
        f" {r.model_weight:.3g}x on average); {price}."
    )


def _covers_sentence(x: PlanForSegment, terms: PlanTerms) -> str:
    if terms.quota <= 0:
        return "The plan has no quota: every request is past it, under the rule below."
    turn, session = KIND_WORDS.get(x.kind, KIND_WORDS["other"])
    c = x.covers
    parts = [f"{count(c.requests)} {plural(turn, c.requests)}"]
    if c.requests_per_session > 1:
        parts.append(
            f"{count(c.sessions)} {plural(session, c.sessions)} of"
            f" {c.requests_per_session:g} requests"
        )
    parts.append(
        f"{count(c.documents)} {plural('document', c.documents)}"
        f" ({x.request.document_input_tokens:,.0f} input tokens, the segment's"
        f" {DOCUMENT_INPUT_QUANTILE * 100:g}th percentile)"
    )
    return "The quota covers about " + ", or ".join(parts) + "."


def _percentiles(pop: Population) -> str:
    names = {50: "median"}
    return ", ".join(
        f"{names.get(pc, f'p{pc}')} {share(pop.use_percentiles[pc])}" for pc in USE_PERCENTILES
    )


def _money_breakdown(pop: Population, currency: str) -> str:
    parts = [f"fee {money(pop.fee, currency)}"]
    if pop.overage >= SMALLEST_AMOUNT:
        parts.append(f"overage {about_money(pop.overage, currency)}")
    if pop.topup_spend >= SMALLEST_AMOUNT:
        parts.append(f"top-ups {about_money(pop.topup_spend, currency)}")
    if len(parts) == 1:
        return f"pays the fee, {money(pop.fee, currency)}"
    return f"pays {about_money(pop.paid, currency)} ({' + '.join(parts)})"


def _month_sentences(x: PlanForSegment, terms: PlanTerms, currency: str, days: int) -> list[str]:
    turn, _ = KIND_WORDS.get(x.kind, KIND_WORDS["other"])
    e = x.everyone
    q = terms.quota
    quota_part = (
        f" ({about_tokens(e.demand_units)} quota {_unit_noun(terms)},"
        f" {share(e.demand_units / q)} of the quota)"
        if q > 0
        else ""
    )
    out = [
        f"A month of the segment's subscribers, all on this plan: {count(e.demand_requests)}"
        f" {plural(turn, e.demand_requests)} on average, {count(e.demand_requests / days)} a"
        f" day{quota_part}."
    ]
    if q > 0:
        out.append(
            f"Demand as a share of the quota: {_percentiles(e)}; {share(e.used_share)} of the"
            f" quota is used on average and {share(e.exhausting_share)} of subscribers exhaust"
            " it."
        )
    out.append(
        f"A subscriber uses {about_tokens(e.tokens_used)} tokens a month on average and"
        f" {_money_breakdown(e, currency)}."
    )
    return out


def _price_sentences(x: PlanForSegment, terms: PlanTerms, currency: str) -> list[str]:
    e = x.everyone
    lp = x.list_price_per_mtok
    against = (
        f", against {about_money(lp, currency)} per 1M at API list prices for the same token"
        f" mix: {e.effective_price_per_mtok / lp:.3g}x the list price."
        if lp > 0
        else "; the catalog gives these models no API list price to compare with."
    )
    out = [
        f"Effective price: {about_money(e.effective_price_per_mtok, currency)} per 1M tokens"
        f" used{', unused quota counted' if terms.quota > 0 else ''} (all subscribers together;"
        f" {about_money(e.median_effective_price_per_mtok, currency)} for the median"
        f" subscriber){against}"
    ]
    full = (
        f"A fully used quota comes to {about_money(x.full_quota_price_per_mtok, currency)} per"
        " 1M tokens."
        if finite(x.full_quota_price_per_mtok)
        else ""
    )
    if terms.fee <= 0 or lp <= 0 or not finite(x.break_even_tokens):
        buys = ""
    elif x.break_even_tokens > x.quota_tokens:
        buys = (
            f"The fee buys {about_tokens(x.break_even_tokens)} tokens at API list prices, more"
            f" than the quota holds ({about_tokens(x.quota_tokens)})."
        )
    else:
        buys = (
            f"The fee buys {about_tokens(x.break_even_tokens)} tokens at API list prices;"
            f" {share(e.fee_worth_it_share)} of subscribers use that many within the quota."
        )
    if full or buys:
        out.append(" ".join(t for t in (full, buys) if t))
    return out


def _past_sentence(x: PlanForSegment, terms: PlanTerms, currency: str) -> str | None:
    e = x.everyone
    rule = terms.on_exhaustion["rule"]
    unit = _unit_noun(terms)
    if e.demand_past_quota_units <= 0 or (terms.quota <= 0 and rule == "cutoff"):
        return None
    if e.exhausting_share < SMALLEST_SHARE:
        return f"The quota is practically never exhausted ({share(e.exhausting_share)})."
    past = about_tokens(e.demand_past_quota_units)
    head = (
        f"Past the quota: {past} quota {unit} of demand a month on average"
        if terms.quota > 0
        else f"Without a quota, all the demand is past it: {past} quota {unit} a month on average"
    )
    if rule == "payg":
        return f"{head}, all served, billed {about_money(e.overage, currency)}."
    if rule == "topup":
        return (
            f"{head}; {_packs(e.topup_packs)} packs bought"
            f" ({about_money(e.topup_spend, currency)}),"
            f" {share(e.refused_share)} of the demand refused."
        )
    if rule == "throttle":
        return (
            f"{head}; about {about_tokens(e.served_past_quota_units)} of it served under the"
            f" throttle (rough estimate), {share(e.refused_share)} of the demand refused."
        )
    return f"{head}; {share(e.refused_share)} of the demand is refused."


def _packs(n: float) -> str:
    return f"under {SMALLEST_AMOUNT:g}" if 0 < n < SMALLEST_AMOUNT else f"{n:.3g}"


def _population_clause(pop: Population, terms: PlanTerms, currency: str, who: str) -> str:
    """How a population uses the quota and what it pays per 1M tokens used."""
    use = (
        f"use {share(pop.used_share)} of the quota on average (median demand"
        f" {share(pop.use_percentiles[50])}), {share(pop.exhausting_share)} exhaust it, and "
        if terms.quota > 0
        else ""
    )
    return (
        f"{use}pay {about_money(pop.effective_price_per_mtok, currency)} per 1M tokens used"
        f" ({about_money(pop.median_effective_price_per_mtok, currency)} for the median {who})."
    )


def _choosers_sentence(x: PlanForSegment, terms: PlanTerms, currency: str) -> str:
    c = x.choosers
    if c is None:
        return "Choosers: the plan-choice logit sends none of the segment's subscribers here."
    return (
        f"Choosers ({share(c.share_of_segment)} of the segment would pick this plan): they"
        f" {_population_clause(c, terms, currency, 'chooser')}"
    )


def _book_sentence(x: PlanForSegment, terms: PlanTerms, currency: str) -> str | None:
    b = x.book
    if b is None:
        return None
    return (
        f"The scenario's book holds {x.book_subscribers:,} subscribers on this plan at t = 0"
        f" ({share(b.share_of_segment)} of the segment's book): at their own usage they"
        f" {_population_clause(b, terms, currency, 'holder')}"
    )


def pair_words(x: PlanForSegment, terms: PlanTerms, currency: str, days: int) -> list[str]:
    """What plan ``terms`` buys segment ``x.segment``, sentence by sentence.

    ``days``: days in a billing month.
    """
    out = [_request_sentence(x, terms, currency), _covers_sentence(x, terms)]
    out += _month_sentences(x, terms, currency, days)
    out += _price_sentences(x, terms, currency)
    past = _past_sentence(x, terms, currency)
    if past:
        out.append(past)
    out.append(_choosers_sentence(x, terms, currency))
    book = _book_sentence(x, terms, currency)
    if book:
        out.append(book)
    return out
