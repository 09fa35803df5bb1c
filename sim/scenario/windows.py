"""Usage windows and peak-hour weights: how coding plans meter beside the month.

Coding plans grant an allowance per rolling 5-hour window, add a weekly cap, and some count a
request at peak hours 2-3x (MODEL.md, section 5: "1,200 / 9,000 / 18,000 requests for CNY 40"
in 5-hour / weekly / monthly windows). A plan's ``windows`` and ``peak_weights`` say so; a
segment's ``at_window_limit`` says what its users do when a window is full. The engine side is
:mod:`sim.engine.windows`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim.scenario.assumptions import (
    THROTTLE_MIN_GAP_S,
    WINDOW_MAX_HOURS,
    WINDOW_MAX_WAIT_HOURS,
    WINDOW_WAIT_SHARE,
)
from sim.scenario.base import Name, PosWeight, QuotaUnits, Seconds, Share, Strict
from sim.units import HOURS_PER_DAY

WindowHours = Annotated[float, Field(gt=0, le=WINDOW_MAX_HOURS, allow_inf_nan=False)]
"""A window's length (h), at most WINDOW_MAX_HOURS."""


class UsageWindow(Strict):
    """An allowance over a window shorter than the month.

    A request is admitted only while every window of its plan has room (the request that
    crosses an allowance passes, as the monthly quota's does).

    ``kind`` says how the window moves:

    * ``rolling``: a sliding window over the subscriber's own past usage: the usage counted
      is what the subscriber sent in the last ``hours`` (kept exactly: each admitted request
      leaves the window ``hours`` after it was sent);
    * ``session``: a fixed window that opens with the first request after the last one
      closed and lasts ``hours`` (the "5-hour session" some coding plans sell);
    * ``calendar``: fixed windows on the calendar, from Monday 00:00 of the first week in
      steps of ``hours`` (a weekly cap that resets every Monday: ``hours: 168``).

    ``unit: requests`` counts each request as its model's quota weight (a premium model
    counts 2-3x) times the peak weight; ``unit: tokens`` counts the plan's quota units of the
    request (its tokens times the token-class and model weights) times the peak weight.
    """

    name: Name = Field(description="window name, e.g. 5h or week (reporting)")
    kind: Literal["rolling", "session", "calendar"] = Field(
        default="rolling",
        description="rolling (sliding over the last `hours`), session (opens at the first"
        " request) or calendar (fixed steps from Monday 00:00)",
    )
    hours: WindowHours = Field(description="window length (h)")
    allowance: QuotaUnits = Field(description="requests or tokens allowed per window")
    unit: Literal["requests", "tokens"] = Field(
        default="requests", description="what the allowance counts"
    )
    on_limit: Literal["wait", "cutoff", "throttle", "monthly_rule"] = Field(
        default="wait",
        description="when full: wait (the user may wait for the window to roll, see the"
        " segment's at_window_limit), cutoff (refused until it rolls), throttle (served on"
        " the slow lane: lowest priority, one request per min_gap_s) or monthly_rule (the"
        " plan's on_exhaustion, as if the month's quota had run out: payg serves and bills"
        " the whole request, throttle serves on its slow lane or cheaper model, cutoff and"
        " topup refuse)",
    )
    min_gap_s: Seconds = Field(
        default=THROTTLE_MIN_GAP_S,
        description="on_limit=throttle: at most one request per this many seconds (s)",
    )

    @model_validator(mode="after")
    def _positive(self) -> UsageWindow:
        if self.allowance <= 0:
            raise ValueError("allowance must be positive (a plan with no use is not a plan)")
        return self


class PeakWeight(Strict):
    """A quota weight for the hours [from_hour, to_hour) of some days.

    Each request's quota charge (monthly quota and every window) is multiplied by ``weight``
    in those hours and by 1 outside every peak rule.
    """

    days: Literal["all", "weekdays", "weekend"] = Field(
        default="weekdays", description="which days the weight applies on"
    )
    from_hour: Annotated[int, Field(ge=0, le=HOURS_PER_DAY - 1)] = Field(
        description="first hour of day the weight applies (0-23)"
    )
    to_hour: Annotated[int, Field(ge=1, le=HOURS_PER_DAY)] = Field(
        description="hour of day it stops applying (1-24, exclusive)"
    )
    weight: PosWeight = Field(description="quota units charged per unit at those hours")

    @model_validator(mode="after")
    def _ordered(self) -> PeakWeight:
        if self.to_hour <= self.from_hour:
            raise ValueError(f"to_hour ({self.to_hour}) must be after from_hour ({self.from_hour})")
        return self

    def hours_of_week(self) -> list[int]:
        """The hours of the week (0 = Monday 00:00) this rule covers."""
        days = {"all": range(7), "weekdays": range(5), "weekend": range(5, 7)}[self.days]
        return [d * HOURS_PER_DAY + h for d in days for h in range(self.from_hour, self.to_hour)]


def check_windows(windows: list[UsageWindow], peaks: list[PeakWeight]) -> None:
    """Window names unique and peak rules that do not overlap (ValueError naming them)."""
    names = [w.name for w in windows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"window names must be unique: {', '.join(dup)}")
    seen: dict[int, int] = {}
    for k, rule in enumerate(peaks):
        for h in rule.hours_of_week():
            if h in seen:
                raise ValueError(
                    f"peak_weights {seen[h]} and {k} both cover weekday {h // HOURS_PER_DAY}"
                    f" hour {h % HOURS_PER_DAY}"
                )
            seen[h] = k


class WindowBehaviour(Strict):
    """What a segment's users do when a ``wait`` window of their plan is full."""

    wait_share: Share = Field(
        default=WINDOW_WAIT_SHARE,
        description="share of users who wait for the window to roll and send again; the"
        " others give the request up (a refusal)",
    )
    max_wait_hours: Annotated[float, Field(gt=0, le=HOURS_PER_DAY, allow_inf_nan=False)] = Field(
        default=WINDOW_MAX_WAIT_HOURS,
        description="longest wait from the request's first try (h); a window that rolls"
        " later, or after the day's end, is not waited for",
    )
