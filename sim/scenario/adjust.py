"""Scenario options every command shares: ``--set``, ``--horizon-months``, ``--demand-scale``.

:func:`adjust_scenario` turns a loaded scenario into the one a command runs, in a fixed order:

1. ``--set PATH=VALUE`` overrides (:func:`~sim.scenario.overrides.apply_overrides`);
2. ``--horizon-months N``;
3. ``--demand-scale X`` or ``SEGMENT=X``, multiplying the subscriber counts *after* the
   overrides, so ``--set segments.chat.initial_subscribers=100 --demand-scale 2`` starts with
   200 chat subscribers.

Each step returns a new validated scenario (the ``sweep:`` block kept); a bad option raises
:class:`~sim.scenario.errors.ScenarioError` whose paths name the option (``--demand-scale``,
``--horizon-months``, ``--set PATH``), so the command can refuse it before writing anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data
from sim.scenario.overrides import apply_overrides, set_path
from sim.scenario.run_size import check_run_size
from sim.scenario.schema import Scenario, SweepValue

SET_OPTION = "--set"
"""The option of single-value overrides (``PATH=VALUE``), as error paths name it."""
HORIZON_OPTION = "--horizon-months"
"""The option replacing ``horizon_months``, as error paths name it."""
DEMAND_SCALE_OPTION = "--demand-scale"
"""The option scaling segments' subscriber counts, as error paths name it."""
MAX_DEMAND_SCALE = 1000.0
"""Largest demand factor accepted (dimensionless): a thousandfold demand is a number no market
reaches, so a larger factor is taken for a typo."""
ACQUISITION_VOLUME = {"bass": "market_size", "constant": "per_month"}
"""Per acquisition model (its ``model`` tag in the schema), the field that sets how many
subscribers it acquires: the Bass market size M (subscribers; new per month = (p + q N/M)(M - N),
so scaling M and the starting N together scales the whole adoption curve) and the constant
model's expected sign-ups per month (subscribers/month)."""


def parse_value(text: str) -> SweepValue:
    """One value as YAML reads it: ``99`` int, ``159.9`` float, ``true`` bool, ``payg`` str.

    Raises ValueError when the text is empty or is not a single value (a list, a mapping, null).
    """
    import yaml

    try:
        v = yaml.safe_load(text.strip()) if text.strip() else None
    except yaml.YAMLError:
        v = None
    if not isinstance(v, float | int | str | bool):
        raise ValueError(f"'{text}' is not a single value")
    return v


def parse_set_values(options: list[str]) -> dict[str, Any]:
    """Parse ``--set PATH=VALUE`` options into {dotted path: value} (values as :func:`parse_value`).

    Every malformed option is reported, with ``--set`` in its path; a path given twice is refused.
    """
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for opt in options:
        path, eq, text = opt.partition("=")
        path = path.strip()
        if not eq or not path or not text.strip():
            problems.append((SET_OPTION, f"'{opt}': expected PATH=VALUE, e.g. plans.x.price=9.9"))
        elif path in out:
            problems.append((f"{SET_OPTION} {path}", "given twice"))
        else:
            try:
                out[path] = parse_value(text)
            except ValueError as e:
                problems.append((f"{SET_OPTION} {path}", str(e)))
    if problems:
        raise ScenarioError(problems)
    return out


def parse_demand_scale(options: list[str]) -> dict[str | None, float]:
    """Parse ``--demand-scale`` options: ``X`` (key None: every segment) or ``SEGMENT=X``.

    X is a dimensionless factor, finite, > 0 and <= :data:`MAX_DEMAND_SCALE`. Every bad option is
    reported, naming ``--demand-scale``; the same segment (or the all-segments factor) twice is
    refused. Segment names are checked against a scenario by :func:`scale_demand`.
    """
    out: dict[str | None, float] = {}
    problems: list[tuple[str, str]] = []
    for opt in options:
        name, eq, text = opt.partition("=")
        key = name.strip() if eq else None
        text = text if eq else name
        try:
            x = float(text)
        except ValueError:
            problems.append((DEMAND_SCALE_OPTION, f"'{opt}': expected X or SEGMENT=X, e.g. 2"))
            continue
        if key == "":
            problems.append((DEMAND_SCALE_OPTION, f"'{opt}': the segment name is missing"))
        elif not (math.isfinite(x) and 0 < x <= MAX_DEMAND_SCALE):
            problems.append(
                (
                    DEMAND_SCALE_OPTION,
                    f"'{opt}': the factor must be a finite number > 0 and <= {MAX_DEMAND_SCALE:g}",
                )
            )
        elif key in out:
            which = "the all-segments factor" if key is None else f"segment '{key}'"
            problems.append((DEMAND_SCALE_OPTION, f"'{opt}': {which} is given twice"))
        else:
            out[key] = x
    if problems:
        raise ScenarioError(problems)
    return out


def _validated(data: dict[str, Any], option: str) -> Scenario:
    """``data`` validated into a Scenario; any problem is reported under ``option``."""
    try:
        return validate_data(data)
    except ScenarioError as e:
        raise ScenarioError([(option, f"{p}: {m}") for p, m in e.problems]) from None


def scale_demand(s: Scenario, scales: Mapping[str | None, float]) -> Scenario:
    """A new validated scenario with each segment's demand multiplied by its factor.

    ``scales`` maps a segment name to its factor, and None to the factor of every segment not
    named (default 1). A segment's ``initial_subscribers`` is multiplied and rounded to the
    nearest whole subscriber (halves to even), and its acquisition volume is multiplied: the Bass
    ``market_size`` or the constant model's ``per_month`` (:data:`ACQUISITION_VOLUME`). Usage
    per subscriber is unchanged, so simulated requests scale with the subscribers; a replayed
    segment's requests come from its trace, so there only the subscribers sharing them change.
    Unknown segment names raise ScenarioError naming ``--demand-scale`` and the known segments.
    """
    known = [g.name for g in s.segments]
    unknown = [k for k in scales if k is not None and k not in known]
    if unknown:
        raise ScenarioError(
            [
                (
                    DEMAND_SCALE_OPTION,
                    f"unknown segment(s) {', '.join(unknown)} (known: {', '.join(known)})",
                )
            ]
        )
    if not scales:
        return s
    data = s.model_dump(mode="json")  # the sweep block included
    for g in data["segments"]:
        factor = scales.get(g["name"], scales.get(None, 1.0))
        g["initial_subscribers"] = round(g["initial_subscribers"] * factor)
        acquisition = g["acquisition"]
        field = ACQUISITION_VOLUME[acquisition["model"]]
        acquisition[field] = acquisition[field] * factor
    return _validated(data, DEMAND_SCALE_OPTION)


def horizon_bounds() -> tuple[int, int]:
    """The schema's bounds of ``horizon_months`` (months, inclusive)."""
    meta = Scenario.model_fields["horizon_months"].metadata
    low = next(m.ge for m in meta if hasattr(m, "ge"))
    high = next(m.le for m in meta if hasattr(m, "le"))
    return int(low), int(high)


def set_horizon(s: Scenario, months: int) -> Scenario:
    """A new validated scenario simulating ``months`` calendar months (within the schema's bounds).

    A value out of :func:`horizon_bounds` raises ScenarioError naming ``--horizon-months``.
    """
    low, high = horizon_bounds()
    if isinstance(months, bool) or not low <= months <= high:
        raise ScenarioError(
            [(HORIZON_OPTION, f"{months} months: must be between {low} and {high} (months)")]
        )
    data = s.model_dump(mode="json")
    data["horizon_months"] = months
    return _validated(data, HORIZON_OPTION)


def override(s: Scenario, sets: Mapping[str, Any]) -> Scenario:
    """A new validated scenario with each dotted path set to its value, the sweep block kept.

    A path that does not exist raises ScenarioError naming ``--set PATH`` and where the walk
    stopped; a value the scenario refuses names ``--set`` and the field.
    """
    data = s.model_dump(mode="json", exclude={"sweep"})  # a throwaway copy for the paths
    problems: list[tuple[str, str]] = []
    for path, value in sets.items():  # each path on its own, so an error names its option
        try:
            set_path(data, path, value)
        except ScenarioError as e:
            problems += [(f"{SET_OPTION} {path}", f"{p}: {m}") for p, m in e.problems]
    if problems:
        raise ScenarioError(problems)
    try:
        out = apply_overrides(s, sets)
    except ScenarioError as e:
        raise ScenarioError([(SET_OPTION, f"{p}: {m}") for p, m in e.problems]) from None
    return out.model_copy(update={"sweep": s.sweep})


def adjust_scenario(
    s: Scenario,
    *,
    sets: Mapping[str, Any],
    demand_scale: Mapping[str | None, float],
    horizon_months: int | None,
) -> Scenario:
    """The scenario a command runs: overrides, then the horizon (months), then the demand scale.

    The order is fixed: ``--set`` values are what the demand scale multiplies (a set
    ``initial_subscribers`` is scaled too), and the horizon is set on its own. With no option
    given, ``s`` itself is returned (same digest). Raises ScenarioError naming the option, or
    naming the fields that make the run too large to hold in memory
    (:func:`~sim.scenario.run_size.check_run_size`).
    """
    out = override(s, sets) if sets else s
    if horizon_months is not None:
        out = set_horizon(out, horizon_months)
    out = scale_demand(out, demand_scale) if demand_scale else out
    check_run_size(out)
    return out
