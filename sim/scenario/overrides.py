"""Change a scenario by dotted paths: ``plans.dev_pro.price_per_month = 159.9``.

A path walks the scenario as it is written in YAML. Mapping keys are path
parts; a list is entered by the ``name`` of one of its items (plans, segments,
pools, models, SLA classes) or by its index; a name with dots in it (``deepseek-v3.2``) is
written as it is. Overrides are applied to the
fully resolved scenario (every default filled in), so any field can be set,
and the result is validated again: a bad value is reported with its path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sim.scenario.errors import ScenarioError
from sim.scenario.loading import validate_data
from sim.scenario.schema import Scenario


def _step(node: Any, part: str, walked: str) -> Any:
    """The child of ``node`` called ``part``; ScenarioError naming the path if there is none."""
    if isinstance(node, dict):
        if part in node:
            return node[part]
        known = ", ".join(sorted(map(str, node)))
        raise ScenarioError([(walked, f"no field '{part}' here (known: {known})")])
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and item.get("name") == part:
                return item
        if part.isdigit() and int(part) < len(node):
            return node[int(part)]
        names = [str(i.get("name")) for i in node if isinstance(i, dict) and "name" in i]
        known = ", ".join(names) if names else f"indices 0-{len(node) - 1}"
        raise ScenarioError([(walked, f"no item '{part}' in this list (known: {known})")])
    raise ScenarioError([(walked, f"'{part}' cannot be looked up in a value")])


def _named_item_parts(node: Any, rest: list[str]) -> int:
    """How many path parts name the next step: more than one when a list item's name has dots."""
    if isinstance(node, list):
        names = {str(item.get("name")) for item in node if isinstance(item, dict)}
        for k in range(len(rest), 1, -1):
            if ".".join(rest[:k]) in names:
                return k
    return 1


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the field at dotted ``path`` of scenario data in place (the field must exist)."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise ScenarioError([(path or "(path)", "a path is dot-separated names, e.g. plans.x.y")])
    node: Any = data
    i = 0
    while i < len(parts) - 1:
        k = _named_item_parts(node, parts[i:-1])
        part = ".".join(parts[i : i + k])
        node = _step(node, part, ".".join(parts[:i]) or "(scenario)")
        i += k
    leaf, parent = parts[-1], ".".join(parts[:-1]) or "(scenario)"
    old = _step(node, leaf, parent)
    if isinstance(old, dict | list):
        raise ScenarioError([(path, "names a block, not a single value")])
    if isinstance(node, list):
        raise ScenarioError([(path, "list items are replaced field by field, not whole")])
    is_int = isinstance(old, int) and not isinstance(old, bool)
    if is_int and isinstance(value, float) and value.is_integer():
        value = int(value)  # 96.0 for an integer field such as gpus
    node[leaf] = value


def apply_overrides(base: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """A new validated scenario: ``base`` with each path set to its value.

    Raises ScenarioError naming the path when a path does not exist or the
    changed scenario does not validate (e.g. a negative price).
    """
    data = copy.deepcopy(base.model_dump(mode="json", exclude={"sweep"}))
    for path, value in overrides.items():
        set_path(data, path, value)
    try:
        return validate_data(data)
    except ScenarioError as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise ScenarioError([(p, f"{m} (with {shown})") for p, m in e.problems]) from None
