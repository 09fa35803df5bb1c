"""``explain``'s answer as JSON-ready data and as text for a terminal.

The sentences (:mod:`sim.pricing.explain_words`) are built once and carried in the JSON
(``words``), so the text on the terminal, ``explain.json`` and the report page
(``sim.report.explain_page``) say the same thing with the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from sim.pricing.explain import ASSUMPTIONS, USE_PERCENTILES
from sim.pricing.explain_types import Explanation, PlanForSegment, PlanTerms, Population
from sim.pricing.explain_words import pair_words, past_quota_words, plan_words
from sim.pricing.monthly_use import INTENSITY_CELLS

APPROXIMATIONS = (
    "Monthly demand: the engine's demand model (sessions, geometric requests per session,"
    " capped token lengths, model mix, quota weights) at each segment's engagement target, with"
    " intensity integrated exactly over its Gamma law and, given intensity, a Gamma law matched"
    " to the mean and variance of the month's compound sum (session-count noise, arrival_cv,"
    " activity spells, engagement's steady-state spread).",
    "Token lengths: rounding to whole tokens and the floor of one token are ignored; caps are"
    " applied as the engine applies them (plan choice uses the uncapped means).",
    "Not counted: rollover, the request that crosses the quota (it passes in full), the weekday"
    " mix of a particular billing month, new subscribers' lower engagement at sign-up, the"
    " up- and downgrades renewals make, churn (in a run the subscribers who stay are the"
    " heavier ones), events, requests refused for want of a slot or abandoned (they burn no"
    " quota in a run) and the concurrency limit.",
    "Book holders (with a book): each at the intensity its monthly_tokens give, as the engine"
    " sets it; without monthly_tokens drawn as for everyone.",
    "Throttling: what is served past the quota is a rough estimate (a dead-time counter on"
    " bursts of requests); cut-off, pay-as-you-go and top-ups are exact expectations of the"
    " demand law.",
    "Effective price: the month's expected payment (fee, overage, top-ups) over its expected"
    " tokens used (input and output, cached input included), unused quota counted; the API list"
    " price is the catalog's price of the same token mix on the plan's models.",
    f"Numerics: {INTENSITY_CELLS} intensity cells.",
)
"""What the numbers rest on, in the order docs/explain.md explains it."""


# ----------------------------------------------------------------------------- JSON and text


def _clean(v: Any) -> Any:
    """JSON-safe: NaN and infinities become None, keys become strings."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _population_dict(pop: Population | None) -> dict[str, Any] | None:
    if pop is None:
        return None
    d = asdict(pop)
    d["use_percentiles"] = {f"p{pc:02d}": v for pc, v in pop.use_percentiles.items()}
    d["paid"] = pop.paid
    return d


def _pair_dict(x: PlanForSegment, terms: PlanTerms, currency: str, days: int) -> dict[str, Any]:
    request = asdict(x.request) | {"tokens": x.request.tokens}
    return {
        "segment": x.segment,
        "kind": x.kind,
        "request": request,
        "covers": asdict(x.covers),
        "list_price_per_mtok": x.list_price_per_mtok,
        "quota_tokens": x.quota_tokens,
        "full_quota_price_per_mtok": x.full_quota_price_per_mtok,
        "break_even_tokens": x.break_even_tokens,
        "everyone": _population_dict(x.everyone),
        "choosers": _population_dict(x.choosers),
        "book": _population_dict(x.book),
        "book_subscribers": x.book_subscribers,
        "words": pair_words(x, terms, currency, days),
    }


def explanation_dict(ex: Explanation) -> dict[str, Any]:
    """The answer as JSON-ready data (explain.json): plans, each with its segments' views."""
    plans = []
    for t in ex.plans:
        d = asdict(t)
        d["words"] = plan_words(t, ex.currency)
        d["past_quota_words"] = past_quota_words(t, ex.currency)
        d["for_segments"] = [
            _pair_dict(x, t, ex.currency, ex.days_per_month) for x in ex.pairs_of(t.name)
        ]
        plans.append(d)
    return _clean(
        {
            "scenario": ex.scenario,
            "currency": ex.currency,
            "days_per_month": ex.days_per_month,
            "use_percentiles": list(USE_PERCENTILES),
            "plans": plans,
            "models": ex.models,
            "assumptions": [
                {"name": n, "value": v, "unit": u, "source": s} for n, v, u, s in ASSUMPTIONS
            ],
            "approximations": list(APPROXIMATIONS),
        }
    )


def explanation_text(data: dict[str, Any]) -> str:
    """The answer as text for a terminal, from :func:`explanation_dict`'s data."""
    lines = [
        f"What each package buys: scenario {data['scenario']} ({data['currency']},"
        f" {data['days_per_month']}-day billing months). Demand from the scenario's own model at"
        " each segment's settled engagement, no simulation; 'choosers' are the subscribers the"
        " plan-choice logit sends to the plan. Details: docs/explain.md.",
    ]
    for p in data["plans"]:
        lines += ["", f"{p['name']}: {p['words']}", f"  {p['past_quota_words']}"]
        if not p["for_segments"]:
            lines.append("  No segment of the scenario is offered this plan.")
        for g in p["for_segments"]:
            kind = f" ({g['kind']})" if g["kind"] != g["segment"] else ""
            lines.append(f"  for {g['segment']}{kind}:")
            lines += [f"    {w}" for w in g["words"]]
    return "\n".join(lines) + "\n"
