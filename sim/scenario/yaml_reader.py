"""Reading a scenario's YAML safely: file type and size, nesting depth, alias expansion, keys.

A scenario file is untrusted input. Before any value is built, :func:`read_text` checks that
the path is a regular file of at most :data:`~sim.scenario.limits.MAX_SCENARIO_BYTES`, and
:func:`parse_yaml` walks the YAML event stream once (no recursion) to refuse

* nesting deeper than :data:`~sim.scenario.limits.MAX_YAML_DEPTH` (a deep file would otherwise
  end in a RecursionError traceback),
* more than :data:`~sim.scenario.limits.MAX_YAML_NODES` values once aliases are expanded
  (an alias of an alias of a list grows exponentially),
* a key given twice in one mapping (YAML's last-one-wins would silently drop the first: a
  second ``price_per_month: 0`` would make a plan free); a ``<<`` merge may still override
  merged keys, as YAML intends,

each with a :class:`~sim.scenario.errors.ScenarioError` naming the path in the file.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.scenario.errors import ScenarioError
from sim.scenario.limits import MAX_SCENARIO_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where installed (tens of times faster), else PyYAML's."""

SHOWN_LEVELS = 6
"""Levels of a too-deep path shown in its error (the rest is elided)."""

MERGE_KEY = "<<"
"""YAML's merge key: its mapping's keys are defaults that explicit keys override."""


def check_file(path: Path, where: str, limit: int) -> None:
    """Raise ScenarioError at ``where`` unless ``path`` is a regular file of <= ``limit`` bytes.

    Devices (``/dev/zero``), pipes and folders are refused before anything is read, since
    reading them may never end.
    """
    try:
        st = path.stat()
    except OSError as e:
        raise ScenarioError([(where, f"cannot read {path}: {e.strerror}")]) from None
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError([(where, f"{path} is not a regular file")])
    if st.st_size > limit:
        raise ScenarioError(
            [(where, f"{path} has {st.st_size:,} bytes, more than the limit of {limit:,}")]
        )


def read_text(path: Path) -> str:
    """The scenario file's text: a regular UTF-8 file of at most MAX_SCENARIO_BYTES bytes."""
    check_file(path, "(file)", MAX_SCENARIO_BYTES)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SCENARIO_BYTES + 1)  # the file may have grown since stat
    except OSError as e:
        raise ScenarioError([("(file)", f"cannot read {path}: {e.strerror}")]) from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError([("(file)", f"{path} has more than {MAX_SCENARIO_BYTES:,} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(
            [("(file)", f"{path} is not UTF-8 text: {e.reason} at byte {e.start}")]
        ) from None


@dataclass
class _Frame:
    """A mapping or list being read: where it is, what it holds so far."""

    is_map: bool
    anchor: str | None
    keys: dict[str, int] = field(default_factory=dict)  # key -> line it was first given
    expect_key: bool = True
    key: str = "?"
    index: int = 0
    size: int = 1  # values inside, aliases expanded, itself included
    depth: int = 1  # levels below, itself included


def _path(stack: list[_Frame]) -> str:
    """The dotted path of the value being read (as the schema's error paths are written)."""
    out = ""
    for parent in stack:
        if parent.is_map:
            out += ("." if out else "") + parent.key
        else:
            out += f"[{parent.index}]"
    return out or "(scenario)"


class _Walker:
    """Reads the YAML events once, keeping the open collections, anchors and a value count."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (size, depth)
        self.total = 0  # values read, aliases expanded

    def event(self, ev: Any) -> None:
        """Take one event; raise ScenarioError on depth, size or a duplicate key."""
        if isinstance(ev, yaml.ScalarEvent | yaml.AliasEvent | yaml.CollectionStartEvent):
            self._key(ev)
        if isinstance(ev, yaml.ScalarEvent):
            self.total += 1
            if ev.anchor is not None:
                self.anchors[ev.anchor] = (1, 0)
            self._done(1, 0)
        elif isinstance(ev, yaml.AliasEvent):
            size, depth = self.anchors.get(ev.anchor or "", (1, 0))
            self.total += size
            if len(self.stack) + depth > MAX_YAML_DEPTH:
                self._too_deep()
            self._done(size, depth)
        elif isinstance(ev, yaml.CollectionStartEvent):
            self.total += 1
            self.stack.append(_Frame(isinstance(ev, yaml.MappingStartEvent), ev.anchor))
            if len(self.stack) > MAX_YAML_DEPTH:
                self._too_deep()
        elif isinstance(ev, yaml.CollectionEndEvent):
            fr = self.stack.pop()
            if fr.anchor is not None:
                self.anchors[fr.anchor] = (fr.size, fr.depth)
            self._done(fr.size, fr.depth)
        if self.total > MAX_YAML_NODES:
            raise ScenarioError(
                [
                    (
                        _path(self.stack),
                        f"the file holds more than {MAX_YAML_NODES:,} values (aliases"
                        " expanded): too large for a scenario",
                    )
                ]
            )

    def _key(self, ev: Any) -> None:
        """If ``ev`` starts a key of the innermost mapping, note it; refuse a duplicate."""
        if not (self.stack and self.stack[-1].is_map and self.stack[-1].expect_key):
            return
        top = self.stack[-1]
        top.key = ev.value if isinstance(ev, yaml.ScalarEvent) else "?"
        if not isinstance(ev, yaml.ScalarEvent) or top.key == MERGE_KEY:
            return
        line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
        if top.key in top.keys:
            raise ScenarioError(
                [
                    (
                        _path(self.stack),
                        f"duplicate key '{top.key}' (line {line}; first given on line"
                        f" {top.keys[top.key]}): YAML would silently keep only the last",
                    )
                ]
            )
        top.keys[top.key] = line

    def _done(self, size: int, depth: int) -> None:
        """A value of the innermost open collection is complete: count it, move on."""
        if not self.stack:
            return
        top = self.stack[-1]
        top.size += size
        top.depth = max(top.depth, depth + 1)
        if top.is_map:
            top.expect_key = not top.expect_key
        else:
            top.index += 1

    def _too_deep(self) -> None:
        raise ScenarioError(
            [
                (
                    _path(self.stack[:SHOWN_LEVELS]) + "...",
                    f"nested more than {MAX_YAML_DEPTH} levels deep: too deep for a scenario",
                )
            ]
        )


def parse_yaml(text: str) -> Any:
    """The YAML document in ``text``, after the checks of this module; ScenarioError otherwise.

    Malformed YAML is reported at its line and column.
    """
    try:
        walker = _Walker()
        for ev in yaml.parse(text, Loader=Loader):
            walker.event(ev)
        return yaml.load(text, Loader=Loader)  # a safe loader (no Python objects)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ScenarioError([(where, f"malformed YAML: {getattr(e, 'problem', e)}")]) from None
