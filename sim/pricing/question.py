"""A tuning question checked before anything runs: options, metrics, the search space.

:func:`prepare` raises TuneError naming the option at fault, so ``tokensim tune`` exits 2 with
nothing simulated and nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sim.pricing import journal as jr
from sim.pricing.defaults import (
    DEFAULT_BATCH,
    DEFAULT_BUDGET,
    DEFAULT_FINAL_REPLICATIONS,
    DEFAULT_REPLICATIONS,
    DEFAULT_TOP,
)
from sim.pricing.objectives import (
    NEEDS_RENEWALS,
    Constraint,
    Objective,
    TuneError,
    objective_of,
    parse_constraint,
)
from sim.pricing.space import Parameter, check_space
from sim.scenario.schema import Scenario

MAX_FINAL_REPLICATIONS = 1000
"""Upper bound on replications per point (the scenario schema's bound on replications)."""


def _check_options(
    budget: int, replications: int, final_replications: int, top: int, batch: int, seed: int
) -> None:
    """TuneError naming the option that is out of bounds."""
    checks = [
        (seed >= 0, "--seed must be >= 0"),
        (budget >= 1, "--budget must be >= 1"),
        (1 <= replications <= MAX_FINAL_REPLICATIONS, "--replications must be between 1 and 1000"),
        (
            2 <= final_replications <= MAX_FINAL_REPLICATIONS,
            "--final-replications must be between 2 and 1000 (a paired interval needs two)",
        ),
        (top >= 1, "--top must be >= 1"),
        (batch >= 1, "--batch must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise TuneError(message)


def _check_horizon(base: Scenario, objective: Objective, constraints: Sequence[Constraint]) -> None:
    """Refuse metrics that have no value on a horizon without renewals (churn on one month)."""
    if base.horizon_months >= 2:
        return
    named = [objective.metric, *(c.metric for c in constraints)]
    for m in named:
        if m in NEEDS_RENEWALS:
            raise TuneError(
                f"{m} needs a horizon of 2 months or more (subscribers renew, or churn, at the"
                f" end of a billing month); this one has {base.horizon_months}"
                " (--horizon-months)"
            )


@dataclass(frozen=True)
class Question:
    """A tuning question checked against its scenario: what tune.json records as ``question``."""

    objective: Objective
    constraints: list[Constraint]
    parameters: list[Parameter]
    seed: int
    record: dict[str, Any]


def prepare(
    scenario: Scenario,
    vary: Sequence[str] | Mapping[str, tuple[float, float]],
    *,
    objective: str = "margin",
    constraints: Sequence[str | Constraint] = (),
    budget: int = DEFAULT_BUDGET,
    replications: int = DEFAULT_REPLICATIONS,
    final_replications: int = DEFAULT_FINAL_REPLICATIONS,
    top: int = DEFAULT_TOP,
    batch: int = DEFAULT_BATCH,
    seed: int | None = None,
) -> Question:
    """Check a tuning question (options as :func:`tune`'s) without simulating anything.

    Raises TuneError naming the option at fault; the command line calls it before it starts a
    cluster or touches the output folder.
    """
    goal = objective_of(objective)
    cons = [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
    seed = scenario.seed if seed is None else seed
    _check_options(budget, replications, final_replications, top, batch, seed)
    _check_horizon(scenario, goal, cons)
    params = check_space(scenario, vary)
    record = jr.question(
        scenario, goal, cons, params, seed, replications, final_replications, top, batch
    )
    return Question(goal, cons, params, seed, record)
