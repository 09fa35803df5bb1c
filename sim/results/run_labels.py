"""Run labels: a run named by the parameters that differ from the reference run's.

A run folder records the resolved scenario it ran (``scenario.yaml``, every default filled
in) and its seed (``manifest.json``). Two runs of a comparison are told apart by the
scenario fields whose values differ, written as the dotted paths that ``--set`` and sweeps
take (``plans.dev_70m.price_per_month``; list items by their ``name``, unnamed list items by
their index). A label shows them in short form: the path from the innermost named item on,
when that name is used by one item only (``dev_70m.price_per_month=207.9``), so that a
sweep's point ``p001`` reads as the price it was run at.

Fields that do not change the simulated market are left out: the scenario's name and
description (a sweep names its points ``NAME.p000``, ...), its replications, outputs and
sweep block, and its ``seed`` field (the run's seed is the manifest's, which ``--seed`` may
have overridden; a different seed is shown as ``seed=N``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IGNORED_FIELDS = ("name", "description", "seed", "replications", "outputs", "sweep")
"""Top-level scenario fields that never label a run (see the module docstring)."""
SHOWN_CHANGES = 3
"""Changes a label shows before it ends with ``+N more``."""
VALUE_CHARS = 24
"""Longest value text in a label (lists and blocks are cut with an ellipsis)."""
ADDED, REMOVED = "added", "removed"
"""Value texts of a named item (a plan, a segment, ...) only one of the two scenarios has."""


@dataclass(frozen=True)
class Change:
    """One scenario field of a run that differs from the reference run's."""

    path: str
    """Dotted path as ``--set`` takes it, e.g. ``plans.dev_70m.price_per_month``."""
    short: str
    """The path from its innermost uniquely named item on, e.g. ``dev_70m.price_per_month``."""
    value: str
    """The run's value as text (``added`` / ``removed`` for a whole named item)."""

    def text(self, short: bool = True) -> str:
        """``path=value`` (short path by default)."""
        return f"{self.short if short else self.path}={self.value}"


@dataclass(frozen=True)
class RunLabel:
    """How a run is shown in a comparison."""

    label: str
    """Its changed parameters (truncated with ``+N more``), or its folder name."""
    changes: tuple[Change, ...]
    """Every field that differs from the reference run (all of them, none cut)."""

    def changes_text(self) -> str:
        """Every change in full form, ``; ``-separated (empty for none)."""
        return "; ".join(c.text(short=False) for c in self.changes)


def value_text(v: Any, limit: int = VALUE_CHARS) -> str:
    """A scenario value as a label shows it: ``207.9``, ``96``, ``payg``, ``[0.5, 1.2, ...]``."""
    if isinstance(v, bool) or v is None:
        text = json.dumps(v)
    elif isinstance(v, float):
        text = str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    elif isinstance(v, int | str):
        text = str(v)
    else:
        text = json.dumps(v, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_named_list(x: Any) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(i, dict) and "name" in i for i in x)


def _item_names(x: Any) -> Iterator[str]:
    """Every name of an item of a named list anywhere in ``x``."""
    if isinstance(x, dict):
        for v in x.values():
            yield from _item_names(v)
    elif isinstance(x, list):
        if _is_named_list(x):
            yield from (str(i["name"]) for i in x)
        for i in x:
            yield from _item_names(i)


def _diff(a: Any, b: Any, parts: tuple[str, ...], named: int) -> Iterator[tuple[tuple, int, str]]:
    """(path parts, index of the innermost named part or -1, value text) where b differs from a.

    ``named`` is the index in ``parts`` of the innermost list item addressed by its name.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*b, *(k for k in a if k not in b)]:
            if k not in a:
                yield from _leaves(b[k], (*parts, str(k)), named)
            elif k not in b:
                yield (*parts, str(k)), named, REMOVED
            else:
                yield from _diff(a[k], b[k], (*parts, str(k)), named)
    elif _is_named_list(a) and _is_named_list(b):
        yield from _diff_named(a, b, parts)
    elif (
        isinstance(a, list)
        and isinstance(b, list)
        and len(a) == len(b)
        and any(isinstance(i, dict) for i in (*a, *b))
    ):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, (*parts, str(i)), named)
    elif a != b:
        yield parts, named, value_text(b)


def _diff_named(a: list, b: list, parts: tuple[str, ...]) -> Iterator[tuple[tuple, int, str]]:
    """:func:`_diff` of two lists of named items, matched by name (their order ignored)."""
    old = {str(i["name"]): i for i in a}
    new = {str(i["name"]): i for i in b}
    for name, item in new.items():
        if name in old:
            yield from _diff(old[name], item, (*parts, name), len(parts))
        else:
            yield (*parts, name), -1, ADDED  # in full: plans.max=added
    for name in old:
        if name not in new:
            yield (*parts, name), -1, REMOVED


def _leaves(b: Any, parts: tuple[str, ...], named: int) -> Iterator[tuple[tuple, int, str]]:
    """A field only ``b`` has: its own value, or each of its leaves for a block."""
    if isinstance(b, dict) and b:
        for k, v in b.items():
            yield from _leaves(v, (*parts, str(k)), named)
    else:
        yield parts, named, value_text(b)


def scenario_changes(base: Mapping[str, Any], run: Mapping[str, Any]) -> list[Change]:
    """The fields of scenario ``run`` that differ from ``base`` (both as in ``scenario.yaml``).

    In the order of ``run``'s fields; fields in :data:`IGNORED_FIELDS` are left out.
    """
    a = {k: v for k, v in base.items() if k not in IGNORED_FIELDS}
    b = {k: v for k, v in run.items() if k not in IGNORED_FIELDS}
    names = Counter([*_item_names(a), *set(_item_names(b)) - set(_item_names(a))])
    out = []
    for parts, named, value in _diff(a, b, (), -1):
        path = ".".join(parts)
        short = ".".join(parts[named:]) if named >= 0 and names[parts[named]] == 1 else path
        out.append(Change(path, short, value))
    return out


def label_text(changes: Sequence[Change], shown: int = SHOWN_CHANGES) -> str:
    """Up to ``shown`` changes in short form, then ``+N more`` for the rest."""
    head = ", ".join(c.text() for c in changes[:shown])
    rest = len(changes) - shown
    return f"{head} +{rest} more" if rest > 0 else head


def _value_at(scenario: Mapping[str, Any], path: str) -> Any:
    """The value at a :class:`Change` path of ``scenario`` (KeyError when there is none)."""
    node: Any = scenario
    for part in path.split("."):
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list):
            hit = [i for i in node if isinstance(i, dict) and str(i.get("name")) == part]
            node = hit[0] if hit else node[int(part)]
        else:
            raise KeyError(part)
    return node


def run_labels(
    names: Sequence[str], scenarios: Sequence[Mapping[str, Any]], seeds: Sequence[Any]
) -> list[RunLabel]:
    """Labels of runs (folder names, ``scenario.yaml`` contents, seeds); the first is the base.

    Each later run is labelled by its changes against the base, plus ``seed=N`` when its
    seed differs. The base is labelled by its own values of the paths the others change
    (``dev_70m.price_per_month=159.9``), and those are its ``changes``. A run with no change
    is labelled by its folder name; labels that would repeat get `` #i`` (the run's position,
    from 1).
    """
    changes = [scenario_changes(scenarios[0], s) for s in scenarios]
    for i, seed in enumerate(seeds):
        if seed != seeds[0]:
            changes[i].append(Change("seed", "seed", value_text(seed)))
    changed = {c.path: c.short for ch in changes[1:] for c in ch}
    own = []
    for path, short in changed.items():
        try:
            value = seeds[0] if path == "seed" else _value_at(scenarios[0], path)
        except (KeyError, IndexError, ValueError):
            continue  # a field or item only the other runs have
        own.append(Change(path, short, value_text(value)))
    changes[0] = own
    texts = [label_text(ch) or name for ch, name in zip(changes, names, strict=True)]
    texts = [t if texts.count(t) == 1 else f"{t} #{i + 1}" for i, t in enumerate(texts)]
    return [RunLabel(t, tuple(ch)) for t, ch in zip(texts, changes, strict=True)]
