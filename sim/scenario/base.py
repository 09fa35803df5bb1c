"""The schema's building blocks: the strict base model and the constrained number types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NonNeg = Annotated[float, Field(ge=0)]

Pos = Annotated[float, Field(gt=0)]

Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""An amount of the scenario's currency: finite, not negative."""

Share = Annotated[float, Field(ge=0, le=1)]

Month = Annotated[int, Field(ge=0, le=119)]
"""A calendar month of the run (0 = the first); the horizon check is in references."""


class Strict(BaseModel):
    """Base for every schema object: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
