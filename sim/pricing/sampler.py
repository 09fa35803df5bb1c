"""Optuna's side of ``tune``: the seeded sampler, the search space, telling it a point.

TPE (optuna.samplers.TPESampler) models the good and the bad points of the search as two
densities and asks where their ratio is best; with constraints it prefers points that meet
them and ranks the others by their total violation. It copes with noise through the
replications behind each mean it is told, not by itself. Optuna >= 5 takes constraints per
trial (Trial.set_constraint), older versions through ``constraints_func``: both are supported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sim.pricing.answer import figure
from sim.pricing.journal import Journal
from sim.pricing.objectives import Constraint, Objective
from sim.pricing.space import STEP_TOLERANCE, Parameter, Point

if TYPE_CHECKING:
    import optuna

MAX_STARTUP_TRIALS = 10
"""Random trials before TPE models the objective (optuna's own default, 10)."""
MIN_STARTUP_TRIALS = 3
"""Fewest random trials before TPE models the objective: it needs a few points to split into
good and bad ones."""
STARTUP_SHARE = 1 / 3
"""Share of the budget spent on random trials (between the two bounds above): a small budget
still leaves most of its points to the model."""
VIOLATION_CAP = 1e6
"""Relative violation told to the sampler for a constraint without a value (optuna takes no
infinities in constraints; any large number ranks the point last)."""


def startup_trials(budget: int) -> int:
    """Random trials of a search of ``budget`` points (see STARTUP_SHARE)."""
    return max(MIN_STARTUP_TRIALS, min(MAX_STARTUP_TRIALS, round(budget * STARTUP_SHARE)))


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna without its INFO log lines and version warnings (experimental, deprecation)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        yield


def has_set_constraint() -> bool:
    """True with optuna >= 5 (Trial.set_constraint); older ones take a constraints_func."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


CONSTRAINTS_ATTR = "constraints"
"""Trial user attribute holding the violations, for optuna < 5's ``constraints_func``."""


def make_sampler(seed: int, budget: int, constrained: bool) -> optuna.samplers.BaseSampler:
    """The seeded TPE sampler: multivariate, a constant liar for batches, with constraints."""
    import optuna

    kwargs: dict[str, Any] = {}
    if constrained and not has_set_constraint():
        kwargs["constraints_func"] = lambda t: t.user_attrs[CONSTRAINTS_ATTR]
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=startup_trials(budget),
        multivariate=True,
        constant_liar=True,
        **kwargs,
    )


def distributions(params: Sequence[Parameter]) -> dict[str, Any]:
    """Optuna's distribution of each parameter: whole numbers as int, with the step if any."""
    from optuna.distributions import FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in params:
        if p.integer:
            out[p.path] = IntDistribution(int(p.low), int(p.high), step=int(p.step or 1))
        else:
            out[p.path] = FloatDistribution(p.low, p.high, step=p.step)
    return out


def on_grid(params: Sequence[Parameter], values: Mapping[str, float | int]) -> bool:
    """True when the values lie in the ranges (and on their steps): optuna may be told them."""
    for p in params:
        x = float(values[p.path])
        if not p.low <= x <= p.high:
            return False
        steps = (x - p.low) / p.step if p.step is not None else 0.0
        if abs(steps - round(steps)) > STEP_TOLERANCE * max(1.0, steps):
            return False
    return True


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    point: Point,
    journal: Journal,
    goal: Objective,
    cons: Sequence[Constraint],
    reps: range,
) -> None:
    """Tell the sampler the point's mean objective and its constraints' violations."""
    from optuna.trial import TrialState

    mean = math.nan if point.error else figure(journal, point, reps, goal.metric)[0]
    if not math.isfinite(mean):
        study.tell(trial, state=TrialState.FAIL)
        return
    violations = [
        min(c.violation(figure(journal, point, reps, c.metric)[0]), VIOLATION_CAP) for c in cons
    ]
    if cons:
        if has_set_constraint():
            for i, (c, v) in enumerate(zip(cons, violations, strict=True)):
                trial.set_constraint(f"{i}:{c.label}", v)  # a constraint given twice is two
        else:
            trial.set_user_attr(CONSTRAINTS_ATTR, violations)
    study.tell(trial, mean)
