"""The search space of ``tune``: scenario fields by dotted path, each over a range.

``--vary PATH=LOW..HIGH[:STEP]`` names a field the way ``--set`` and sweeps do
(:mod:`sim.scenario.overrides`): ``plans.dev_70m.price_per_month=99..299``,
``cluster.pools.deepseek.gpus=8..32:8``. A field that holds a whole number in the scenario
(GPU counts, months) is searched over whole numbers. :func:`check_space` validates every path
and range against the scenario before anything runs: the path exists and holds a number, the
range is ordered, and the scenario validates at both ends (at every value of a short whole-number
range), so a bad question exits 2 with nothing written.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sim.pricing.objectives import TuneError
from sim.scenario.errors import ScenarioError
from sim.scenario.overrides import apply_overrides, set_path
from sim.scenario.schema import Scenario

VARY_OPTION = "--vary"
"""The option naming a searched field, as error messages name it."""
CHECK_EVERY_VALUE_UP_TO = 200
"""A whole-number range with at most this many values is validated at every value (a field may
refuse values inside its range, e.g. a GPU count below one replica); longer ranges at their ends."""
STEP_TOLERANCE = 1e-9
"""Relative tolerance when checking that a step divides a range."""

_MARK = object()


@dataclass(frozen=True)
class Parameter:
    """One searched field: its dotted path, its range, whole numbers or not, an optional step."""

    path: str
    low: float
    high: float
    integer: bool = False
    step: float | None = None

    @property
    def label(self) -> str:
        """The parameter as ``--vary`` writes it."""
        step = "" if self.step is None else f":{self.step:g}"
        return f"{self.path}={self.low:g}..{self.high:g}{step}"

    def value(self, x: float) -> float | int:
        """``x`` as this field takes it (an int for whole-number fields)."""
        return round(x) if self.integer else float(x)

    def contains(self, x: Any) -> bool:
        """True when ``x`` is a number inside the range."""
        return isinstance(x, int | float) and self.low <= x <= self.high


def parse_vary(text: str) -> tuple[str, float, float, float | None]:
    """``PATH=LOW..HIGH[:STEP]`` as (path, low, high, step); TuneError naming ``--vary``."""
    path, eq, rng = text.partition("=")
    path = path.strip()
    lo, dots, rest = rng.partition("..")
    hi, colon, step = rest.partition(":")
    if not eq or not path or not dots or not lo.strip() or not hi.strip() or (colon and not step):
        raise TuneError(
            f"{VARY_OPTION} '{text}': expected PATH=LOW..HIGH[:STEP],"
            " e.g. plans.dev_70m.price_per_month=99..299"
        )
    try:
        low, high = float(lo), float(hi)
        step_value = float(step) if colon else None
    except ValueError:
        raise TuneError(f"{VARY_OPTION} '{text}': LOW, HIGH and STEP must be numbers") from None
    if not all(math.isfinite(v) for v in (low, high, step_value or 1.0)):
        raise TuneError(f"{VARY_OPTION} '{text}': LOW, HIGH and STEP must be finite")
    return path, low, high, step_value


def _found(original: Any, marked: Any) -> tuple[bool, Any]:
    """The value of ``original`` where ``marked`` (a copy with one field set to _MARK) has it."""
    if marked is _MARK:
        return True, original
    if isinstance(marked, dict):
        pairs = [(original[k], marked[k]) for k in marked]
    elif isinstance(marked, list):
        pairs = list(zip(original, marked, strict=True))
    else:
        return False, None
    for a, b in pairs:
        found, value = _found(a, b)
        if found:
            return True, value
    return False, None


def current_value(s: Scenario, path: str) -> Any:
    """The scenario's value at dotted ``path`` (ScenarioError when there is no such field).

    The path is walked by :func:`sim.scenario.overrides.set_path` itself (on a copy), so
    ``--vary`` reads exactly the field ``--set`` would change.
    """
    data = s.model_dump(mode="json", exclude={"sweep"})
    marked = copy.deepcopy(data)
    set_path(marked, path, _MARK)
    return _found(data, marked)[1]


def _check_values(base: Scenario, p: Parameter, text: str) -> None:
    """The scenario must validate at the range's ends (and every value of a short int range)."""
    if p.integer and p.high - p.low < CHECK_EVERY_VALUE_UP_TO:
        step = int(p.step or 1)
        values: list[float | int] = list(range(int(p.low), int(p.high) + 1, step))
    else:
        values = [p.value(p.low), p.value(p.high)]
    for v in values:
        try:
            apply_overrides(base, {p.path: v})
        except ScenarioError as e:
            where, msg = e.problems[0]
            raise TuneError(f"{VARY_OPTION} '{text}': at {v:g}, {where}: {msg}") from None


def check_parameter(base: Scenario, text: str) -> Parameter:
    """One ``--vary`` option checked against the scenario (see the module docstring)."""
    path, low, high, step = parse_vary(text)
    try:
        now = current_value(base, path)
    except ScenarioError as e:
        where, msg = e.problems[0]
        raise TuneError(f"{VARY_OPTION} '{text}': {where}: {msg}") from None
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise TuneError(
            f"{VARY_OPTION} '{text}': {path} holds {now!r}, not a number; only numeric fields"
            " can be tuned"
        )
    if not high > low:
        raise TuneError(f"{VARY_OPTION} '{text}': HIGH ({high:g}) must exceed LOW ({low:g})")
    integer = isinstance(now, int)
    if integer and not all(float(v).is_integer() for v in (low, high, step or 1.0)):
        raise TuneError(
            f"{VARY_OPTION} '{text}': {path} is a whole number ({now}); give whole-number"
            " LOW, HIGH and STEP"
        )
    if step is not None:
        n = (high - low) / step if step > 0 else -1.0
        if n < 1 or abs(n - round(n)) > STEP_TOLERANCE * max(1.0, n):
            raise TuneError(
                f"{VARY_OPTION} '{text}': STEP must be > 0 and divide HIGH - LOW"
                f" ({high - low:g}) into whole steps"
            )
    p = Parameter(path, low, high, integer, step)
    _check_values(base, p, text)
    return p


def check_space(
    base: Scenario, vary: Sequence[str] | Mapping[str, tuple[float, float]]
) -> list[Parameter]:
    """Every ``--vary`` option checked against ``base``; TuneError for the first bad one.

    ``vary``: ``PATH=LOW..HIGH[:STEP]`` texts, or a mapping path -> (low, high).
    """
    texts = (
        [f"{k}={lo!r}..{hi!r}" for k, (lo, hi) in vary.items()]
        if isinstance(vary, Mapping)
        else list(vary)
    )
    if not texts:
        raise TuneError(f"{VARY_OPTION}: give at least one PATH=LOW..HIGH to search over")
    params: list[Parameter] = []
    for text in texts:
        p = check_parameter(base, text)
        if any(q.path == p.path for q in params):
            raise TuneError(f"{VARY_OPTION} '{text}': {p.path} is given twice")
        params.append(p)
    return params


KEY_DIGITS = 12
"""Significant digits that identify a point's values (a value read back from a CSV file is the
same point as the one written)."""


def point_key(params: Sequence[Parameter], values: Mapping[str, Any]) -> tuple[float, ...]:
    """The identity of a point: its values in parameter order, to :data:`KEY_DIGITS` digits."""
    return tuple(float(f"{float(values[p.path]):.{KEY_DIGITS}g}") for p in params)


@dataclass
class Point:
    """A point of the search: its trial number, role, values by path and identity.

    ``role`` is ``incumbent`` (the scenario as given, trial 0) or ``search`` (a trial the
    sampler asked for); ``error`` says why the scenario does not validate at the point.
    """

    trial: int
    role: str
    values: dict[str, float | int]
    key: tuple[float, ...]
    error: str | None = None


def incumbent_values(base: Scenario, params: Sequence[Parameter]) -> dict[str, float | int]:
    """The searched fields' values in the scenario as given (the incumbent)."""
    return {p.path: current_value(base, p.path) for p in params}


def scenario_at(base: Scenario, values: Mapping[str, float | int]) -> Scenario:
    """``base`` with each searched field set (ScenarioError if the point does not validate)."""
    return apply_overrides(base, dict(values))


SHADOWED_BY_EVENTS: dict[str, str] = {
    "price_change": "price_per_month",
    "quota_change": "quota.amount",
}
"""Event kind -> the plan field it sets from its month on (``plans.NAME.FIELD``)."""


def shadowing_notes(base: Scenario, params: Sequence[Parameter]) -> list[str]:
    """Warnings for searched plan fields that an event of the scenario overrides.

    A ``price_change`` of plan X in month m sets X's fee from m on, so searching
    ``plans.X.price_per_month`` moves only the fee before m; the event's own field
    (``events.I.price_per_month``) is the one that tunes the new fee.
    """
    notes = []
    for i, e in enumerate(base.events):
        leaf = SHADOWED_BY_EVENTS.get(e.kind)
        plan = getattr(e, "plan", None)
        if leaf is None or plan is None:
            continue
        path = f"plans.{plan}.{leaf}"
        if not any(p.path == path for p in params):
            continue
        own = "price_per_month" if e.kind == "price_change" else "amount"
        value = getattr(e, own)
        notes.append(
            f"{path} is {plan}'s value before month {e.month} only: the scenario's"
            f" {e.kind} event (events.{i}) sets it to {value:g} from month {e.month} on, so this"
            f" search moves only what is paid (or allowed) before the event reaches each"
            f" subscriber; to tune the new value, vary events.{i}.{own}"
        )
    return notes


EDGE_SHARE = 0.2
"""Outer share of a range (each end) where a best point that is also the most extreme value
searched suggests the optimum may lie beyond the range."""


def edge_notes(
    params: Sequence[Parameter],
    searched: Sequence[Mapping[str, float | int]],
    chosen: Mapping[str, float | int],
    is_incumbent: bool,
) -> list[str]:
    """Warnings when the answer is the most extreme value searched near an end of its range.

    ``searched``: the values of the points that met the constraints; a chosen point beyond
    every other one, in the outer :data:`EDGE_SHARE` of the range, leaves open whether the
    objective keeps rising past the range's end.
    """
    if is_incumbent or not searched:
        return []
    notes = []
    for p in params:
        x = float(chosen[p.path])
        xs = [float(v[p.path]) for v in searched]
        share = (x - p.low) / (p.high - p.low)
        for end, extreme, near in (
            ("highest", x >= max(xs), share >= 1 - EDGE_SHARE),
            ("lowest", x <= min(xs), share <= EDGE_SHARE),
        ):
            if extreme and near:
                bound = p.high if end == "highest" else p.low
                notes.append(
                    f"the answer's {p.path} ({x:.6g}) is the {end} value searched that meets"
                    f" the constraints, near the range's end ({bound:g}): the best may lie at or"
                    " beyond it; widen the range or raise --budget to check"
                )
    return notes
