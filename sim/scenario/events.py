"""The book at t=0 and the events on the run's timeline (schema parts).

A pricing team's question is "what happens to the subscribers we have if we change X in month
m". So the scenario may state who holds which plan at t=0 (``book``: counts per segment and
plan, or a subscriber table exported from billing) instead of letting every initial
subscriber choose at today's prices, and may list ``events``: a price change that reaches
existing subscribers at their next renewal (or after a grandfathering period, or never), a
quota change, a plan launch or retirement, a promotion, a free trial, a competitor's price
move. Each event has the calendar month it takes effect in (0 = the first).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim.scenario.assumptions import BOOK_TENURE_MEAN_MONTHS
from sim.scenario.base import Money, Month, PosMoney, QuotaUnits, Strict, Subscribers

Months = Annotated[int, Field(ge=1, le=120)]
"""A number of billing months."""


class BookEntry(Strict):
    """Subscribers of one segment holding one plan at t=0."""

    segment: str = Field(description="segment name")
    plan: str = Field(description="plan they hold (one the segment is offered)")
    subscribers: Subscribers = Field(description="subscribers (count)")
    tenure_mean_months: Annotated[float, Field(ge=0, le=600, allow_inf_nan=False)] = Field(
        default=BOOK_TENURE_MEAN_MONTHS,
        description="mean months already subscribed; tenures are geometric with this mean"
        " (the steady state of a constant churn rate; 0 = all new)",
    )


class Book(Strict):
    """Who holds which plan at t=0: counts per segment and plan, or a subscriber table.

    With a book, each segment's ``initial_subscribers`` is the book's count (leave it 0 or
    give the same number) and nobody chooses a plan at t=0 unless ``rechoose`` is true.
    """

    entries: list[BookEntry] = Field(
        default_factory=list, description="counts per segment and plan"
    )
    file: str | None = Field(
        default=None,
        description="subscriber table (CSV or Parquet, relative to the scenario file) with"
        " columns id, segment, plan, tenure_months and optionally monthly_tokens (the"
        " subscriber's mean monthly tokens, which sets its intensity)",
    )
    rechoose: bool = Field(
        default=False,
        description="let the book's subscribers choose their plan at t=0 by the logit"
        " (only their segments are kept)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Book:
        if self.file is not None and self.entries:
            raise ValueError("give either entries or file, not both")
        if self.file is None and not self.entries:
            raise ValueError("give entries (counts per segment and plan) or a file")
        return self


class PriceChange(Strict):
    """A plan's monthly fee changes from ``month`` on."""

    kind: Literal["price_change"] = Field(description="price change")
    month: Month = Field(description="calendar month it takes effect (0 = first)")
    plan: str = Field(description="plan whose fee changes")
    price_per_month: Money = Field(description="new monthly fee (currency/month)")
    existing: Literal["next_renewal", "grandfathered", "new_only"] = Field(
        default="next_renewal",
        description="existing subscribers pay it from their next renewal, after"
        " grandfather_months, or never (new subscribers pay it from the month on)",
    )
    grandfather_months: Annotated[int, Field(ge=1, le=120)] | None = Field(
        default=None, description="months existing subscribers keep the old fee (grandfathered)"
    )

    @model_validator(mode="after")
    def _grandfathering(self) -> PriceChange:
        if (self.existing == "grandfathered") != (self.grandfather_months is not None):
            raise ValueError("grandfather_months is given exactly when existing is grandfathered")
        return self


class QuotaChange(Strict):
    """A plan's quota changes from ``month`` on (existing subscribers at their next renewal)."""

    kind: Literal["quota_change"] = Field(description="quota change")
    month: Month = Field(description="calendar month it takes effect (0 = first)")
    plan: str = Field(description="plan whose quota changes")
    amount: QuotaUnits = Field(
        description="new allowance per billing month (the plan's quota unit)"
    )


class Launch(Strict):
    """A plan goes on sale in ``month`` (before it, nobody may choose it)."""

    kind: Literal["launch"] = Field(description="plan launch")
    month: Month = Field(description="calendar month it goes on sale")
    plan: str = Field(description="plan launched")


class Retirement(Strict):
    """A plan comes off sale in ``month``; its subscribers move to ``migrate_to`` at renewal."""

    kind: Literal["retire"] = Field(description="plan retirement")
    month: Month = Field(description="calendar month it comes off sale")
    plan: str = Field(description="plan retired")
    migrate_to: str = Field(description="plan its subscribers move to at their next renewal")


class Promotion(Strict):
    """New subscribers of a plan get a discount on their first billing months."""

    kind: Literal["promotion"] = Field(description="promotion")
    month: Month = Field(description="first calendar month of the offer")
    until_month: Month | None = Field(
        default=None, description="first month the offer is over (default: to the horizon)"
    )
    plan: str = Field(description="plan on offer")
    discount: Annotated[float, Field(gt=0, le=1)] = Field(
        description="share of the fee waived (0-1; 1 = free)"
    )
    discounted_months: Months = Field(description="billing months at the discount")


class FreeTrial(Strict):
    """A free trial plan on offer; at its end users choose a paid plan by the logit, or lapse.

    The trial plan is an ordinary plan of the scenario (its quota, models, rule) offered only
    while a trial event runs; its fee is not charged. After ``trial_months`` billing months,
    each user compares the segment's paid plans on sale with not buying (utility 0, the
    logit's outside option) and takes one, or lapses (counted as churned and ``lapsed``).
    """

    kind: Literal["trial"] = Field(description="free trial")
    month: Month = Field(description="first calendar month the trial is offered")
    until_month: Month | None = Field(
        default=None, description="first month it is no longer offered (default: the horizon)"
    )
    plan: str = Field(description="the trial plan")
    trial_months: Months = Field(description="billing months the trial lasts")


class CompetitorPrice(Strict):
    """The market's reference price for a segment moves (a competitor's price).

    The reference enters churn (``churn.reference_price`` per unit of ln(paid / reference))
    and acquisition (sign-ups scale by (price index / reference) ^ -elasticity, the price
    index being the expected fee of the segment's logit choice).
    """

    kind: Literal["competitor_price"] = Field(description="competitor price move")
    month: Month = Field(description="calendar month it takes effect")
    segment: str = Field(description="segment whose market reference price moves")
    reference_price: PosMoney = Field(
        description="the competitor's comparable monthly price (currency/month)"
    )


Event = Annotated[
    PriceChange | QuotaChange | Launch | Retirement | Promotion | FreeTrial | CompetitorPrice,
    Field(discriminator="kind"),
]
"""One event on the timeline; ``kind`` says which."""
