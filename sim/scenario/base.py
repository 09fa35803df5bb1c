"""The schema's building blocks: the strict base model and the constrained number types.

Every number of a scenario is finite (``allow_inf_nan=False`` on the base model, so ``.inf``
and ``.nan`` are refused in every float field, list and mapping) and bounded above: the
generic types below by :data:`~sim.scenario.limits.MAX_MAGNITUDE`, the named ones (counts,
tokens, prices, GPUs, durations) by the tighter limits of :mod:`sim.scenario.limits`, each
documented there with the reason for its value.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sim.scenario import limits
from sim.scenario.limits import (
    MAX_LOGIT,
    MAX_NAME_LENGTH,
)


def _upto(limit: str, *, gt: float | None = None, ge: float | None = None) -> Any:
    """A Field from ``gt``/``ge`` up to the bound named ``limit`` in :mod:`sim.scenario.limits`.

    The JSON Schema carries the bound's name (``x-limit``) for docs/parameters.md's Limits.
    """
    return Field(gt=gt, ge=ge, le=getattr(limits, limit), json_schema_extra={"x-limit": limit})


def _finite_upto(limit: str, *, gt: float | None = None, ge: float | None = None) -> Any:
    """:func:`_upto` for a float: also refuses inf and NaN."""
    return Field(
        gt=gt,
        ge=ge,
        le=getattr(limits, limit),
        allow_inf_nan=False,
        json_schema_extra={"x-limit": limit},
    )


NonNeg = Annotated[
    float,
    _finite_upto("MAX_MAGNITUDE", ge=0),
]
"""A finite number, not negative, at most MAX_MAGNITUDE (the field's unit)."""

Pos = Annotated[
    float,
    _finite_upto("MAX_MAGNITUDE", gt=0),
]
"""A finite positive number, at most MAX_MAGNITUDE (the field's unit)."""

Money = Annotated[
    float,
    _finite_upto("MAX_PRICE", ge=0),
]
"""An amount of the scenario's currency: finite, not negative, at most MAX_PRICE."""

PosMoney = Annotated[
    float,
    _finite_upto("MAX_PRICE", gt=0),
]
"""A positive amount of the scenario's currency, at most MAX_PRICE."""

Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A share or probability, 0 to 1."""

Logit = Annotated[
    float,
    _finite_upto("MAX_LOGIT", ge=-MAX_LOGIT),
]
"""A coefficient on the logit scale, within +-MAX_LOGIT."""

Seconds = Annotated[
    float,
    _finite_upto("MAX_DURATION_S", ge=0),
]
"""A duration (s), 0 to MAX_DURATION_S."""

PosSeconds = Annotated[
    float,
    _finite_upto("MAX_DURATION_S", gt=0),
]
"""A positive duration (s), at most MAX_DURATION_S."""

Tokens = Annotated[
    float,
    _finite_upto("MAX_TOKENS", ge=0),
]
"""A token length (tokens), 0 to MAX_TOKENS."""

PosTokens = Annotated[
    float,
    _finite_upto("MAX_TOKENS", gt=0),
]
"""A positive token length (tokens), at most MAX_TOKENS."""

TokenCount = Annotated[int, _upto("MAX_TOKENS", ge=1)]
"""A whole number of tokens, 1 to MAX_TOKENS."""

TokenRate = Annotated[
    float,
    _finite_upto("MAX_TOKENS_PER_S", gt=0),
]
"""A positive rate (tokens/s), at most MAX_TOKENS_PER_S."""

QuotaUnits = Annotated[
    float,
    _finite_upto("MAX_QUOTA_UNITS", ge=0),
]
"""An amount of quota (tokens or requests), 0 to MAX_QUOTA_UNITS."""

Weight = Annotated[
    float,
    _finite_upto("MAX_RELATIVE_WEIGHT", ge=0),
]
"""A relative weight (dimensionless), 0 to MAX_RELATIVE_WEIGHT."""

PosWeight = Annotated[
    float,
    _finite_upto("MAX_RELATIVE_WEIGHT", gt=0),
]
"""A positive relative weight (dimensionless), at most MAX_RELATIVE_WEIGHT."""

LogSigma = Annotated[
    float,
    _finite_upto("MAX_LOG_SIGMA", ge=0),
]
"""A spread in ln units (sd of a log), 0 to MAX_LOG_SIGMA."""

Subscribers = Annotated[int, _upto("MAX_SUBSCRIBERS", ge=0)]
"""A subscriber count, 0 to MAX_SUBSCRIBERS."""

GPUs = Annotated[int, _upto("MAX_GPUS", ge=0)]
"""A number of cards (GPUs), 0 to MAX_GPUS."""

Month = Annotated[int, Field(ge=0, le=119)]
"""A calendar month of the run (0 = the first); the horizon check is in references."""

NAME_PATTERN = r"^\S(.*\S)?$"
"""What a name looks like: not blank at its ends (so not empty and not all blanks)."""

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)
]
"""A name other entries refer to: not empty, no leading or trailing blanks, at most
MAX_NAME_LENGTH characters."""


class Strict(BaseModel):
    """Base for every schema object: unknown keys are errors, values are validated on assignment.

    ``allow_inf_nan=False``: no float anywhere in a scenario may be infinite or NaN.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
