"""The data of ``tokensim explain``'s answer: plans as sold and what each buys each segment.

Built by :func:`sim.pricing.explain.explain`; put in words by :mod:`sim.pricing.explain_text`.
Token amounts are in tokens, quota amounts in the plan's quota units (tokens or requests,
weights applied), money in the scenario's currency; every amount is a mean per
subscriber-month unless its docstring says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class UnknownPlanError(ValueError):
    """A plan name the scenario does not define."""


@dataclass(frozen=True)
class RequestSize:
    """One request at a segment's mean sizes under a plan (means; tokens, units, currency)."""

    input_tokens: float
    """Mean input (prompt) tokens, cap applied (tokens)."""
    cached_input_tokens: float
    """Of which served from the prefix cache: cache_hit_share x input (tokens)."""
    output_tokens: float
    """Mean output (completion) tokens, cap applied (tokens)."""
    model_weight: float
    """Mean quota weight of the models the segment uses on this plan (units per unit)."""
    quota_units: float
    """Mean quota units one request burns (tokens or requests, weights applied)."""
    list_price: float
    """Mean price of one request at the catalog's API list prices (currency)."""
    document_input_tokens: float
    """Input of a "document" request: the DOCUMENT_INPUT_QUANTILE quantile (tokens)."""
    document_quota_units: float
    """Quota units of a document request, with the mean output (units)."""

    @property
    def tokens(self) -> float:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Coverage:
    """What one month's quota covers at the segment's typical sizes (counts; inf: unlimited)."""

    requests: float
    """Requests of mean size in the quota (requests)."""
    sessions: float
    """Sessions of ``requests_per_session`` mean requests in the quota (sessions)."""
    documents: float
    """Document requests (see RequestSize) in the quota (requests)."""
    requests_per_session: float
    """Mean requests per session of the segment (requests; 1 for single requests)."""


@dataclass(frozen=True)
class Population:
    """A month of a population of subscribers on the plan (means per subscriber-month)."""

    share_of_segment: float
    """Share of the segment's subscribers in this population (1, or the choice share)."""
    demand_requests: float
    """Requests a month the population asks for, served or not (requests)."""
    demand_units: float
    """E[D]: quota units a month the population asks for (units)."""
    use_percentiles: dict[int, float]
    """Monthly demand as a share of the quota, at USE_PERCENTILES (NaN without a quota)."""
    used_share: float
    """E[min(D, Q)] / Q: mean share of the quota used."""
    exhausting_share: float
    """Share of subscribers whose demand reaches the quota."""
    demand_past_quota_units: float
    """E[(D - Q)+]: demand past the quota (units)."""
    served_past_quota_units: float
    """Of which served under the plan's rule (units)."""
    refused_share: float
    """Share of the demand (units) not served: past a cut-off, a declined top-up or a throttle."""
    tokens_used: float
    """Tokens served, input (cached included) plus output (tokens)."""
    fee: float
    """The plan's monthly fee (currency)."""
    overage: float
    """Pay-as-you-go bill past the quota (currency)."""
    topup_packs: float
    """Top-up packs bought (packs)."""
    topup_spend: float
    """Spent on top-up packs (currency)."""
    effective_price_per_mtok: float
    """All subscribers together: expected payment / expected tokens used (currency per 1M)."""
    median_demand_units: float
    """The median subscriber's monthly demand (units)."""
    median_effective_price_per_mtok: float
    """The subscriber at the median demand: its payment / its tokens used (currency per 1M)."""
    fee_worth_it_share: float
    """Share of subscribers whose use within the quota is worth the fee at API list prices."""

    @property
    def paid(self) -> float:
        """Fee plus overage plus top-ups (currency)."""
        return self.fee + self.overage + self.topup_spend


@dataclass(frozen=True)
class PlanForSegment:
    """What one plan buys one segment."""

    plan: str
    segment: str
    kind: str
    """The segment's kind (chat, household, coder, enterprise_bot, other)."""
    request: RequestSize
    """The segment's mean request on this plan."""
    covers: Coverage
    """What the quota covers at that size."""
    list_price_per_mtok: float
    """API list price of the segment's token mix on this plan's models (currency per 1M)."""
    quota_tokens: float
    """Tokens a fully used quota serves at typical sizes (tokens; 0 without a quota)."""
    full_quota_price_per_mtok: float
    """The fee over the tokens of a fully used quota (currency per 1M; inf without quota)."""
    break_even_tokens: float
    """Tokens a month whose API list price equals the fee (tokens)."""
    everyone: Population
    """Every subscriber of the segment, as if all were on this plan."""
    choosers: Population | None
    """The subscribers the plan-choice logit sends to this plan (None if it sends none)."""
    book: Population | None = None
    """The subscribers the scenario's book holds on this plan at t = 0 (None without any)."""
    book_subscribers: int = 0
    """How many subscribers the book holds on this plan (subscribers)."""


@dataclass(frozen=True)
class PlanTerms:
    """A plan as sold: fee, quota, models, rule (the scenario's fields)."""

    name: str
    fee: float
    """Monthly fee (currency)."""
    quota: float
    """Monthly quota (quota units: tokens or requests)."""
    quota_unit: str
    """``tokens`` or ``requests``."""
    models: dict[str, float]
    """Models the plan serves and their quota weights (units per token or request)."""
    token_class_weights: dict[str, float]
    """Quota weights of input (miss, hit) and output tokens (units per token)."""
    on_exhaustion: dict[str, Any]
    """The rule past the quota, as the scenario gives it."""
    rollover: dict[str, float]
    """Share of unused quota carried over and its cap (share, units)."""
    concurrency_limit: int | None
    """Requests in flight at most (requests; None: no limit)."""
    sla_class: str
    channel: str
    segments: list[str]
    """Segments that may take the plan."""


@dataclass(frozen=True)
class Explanation:
    """``explain``'s answer: the plans and what each buys each segment that may take it."""

    scenario: str
    currency: str
    days_per_month: int
    """Days in a billing month (days)."""
    plans: list[PlanTerms]
    pairs: list[PlanForSegment]
    """Every (plan, segment offered it), in the order of ``plans``."""
    models: dict[str, dict[str, float]]
    """Catalog API list prices per model: input_miss, input_hit, output (currency per 1M)."""

    def pairs_of(self, plan: str) -> list[PlanForSegment]:
        """The segments' views of ``plan``."""
        return [x for x in self.pairs if x.plan == plan]
