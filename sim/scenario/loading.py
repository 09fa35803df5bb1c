"""Reading scenarios: YAML files and parsed data into a validated Scenario, errors by field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from sim.scenario.book_table import check_book_table
from sim.scenario.errors import ScenarioError
from sim.scenario.events import Event
from sim.scenario.schema import Acquisition, Exhaustion, Scenario, Sweep, TokenLength
from sim.traces.readers import TraceError
from sim.traces.replay import load_replay


def _union_members(tp: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models inside a (possibly Annotated, possibly nested) union type."""
    for arg in get_args(tp):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            yield arg
        else:
            yield from _union_members(arg)


def union_tags(*unions: Any) -> frozenset[str]:
    """Discriminator values of the unions' members: each member's single-valued Literal field."""
    tags: set[str] = set()
    for union in unions:
        for member in _union_members(union):
            for f in member.model_fields.values():
                values = get_args(f.annotation) if get_origin(f.annotation) is Literal else ()
                if len(values) == 1:
                    tags.add(str(values[0]))
    return frozenset(tags)


UNION_TAGS = union_tags(Exhaustion, Acquisition, TokenLength, Event)
"""Tags pydantic puts in an error's location inside a discriminated union (``payg``, ``bass``,
``empirical``, ...): not keys of the file, so error paths leave them out. Derived from the
schema, so a new rule, acquisition model or token distribution needs no change here."""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in UNION_TAGS:
            continue  # discriminated-union tag, not a key of the file
        elif part.startswith("function-") or part.endswith("]"):
            continue
        else:
            out += ("." if out else "") + part
    return out or "(scenario)"


def validate_data(data: Any) -> Scenario:
    """Validate already-parsed data into a Scenario or raise ScenarioError with every problem."""
    if not isinstance(data, dict):
        raise ScenarioError([("(scenario)", "the file must hold a mapping of keys to values")])
    # top-level keys starting with "x-" hold YAML anchors for reuse (as in compose files)
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        probs: list[tuple[str, str]] = []
        for err in e.errors():
            ctx = err.get("ctx") or {}
            inner = ctx.get("error")
            if isinstance(inner, ScenarioError):
                probs.extend(inner.problems)
                continue
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            probs.append((_loc(tuple(err["loc"])), msg))
        raise ScenarioError(probs) from None


def validate_sweep(data: Any) -> Sweep:
    """Validate a sweep block given apart from its scenario (``--set`` options); paths say sweep."""
    try:
        return Sweep.model_validate(data)
    except ValidationError as e:
        probs = []
        for err in e.errors():
            where = _loc(("sweep", *err["loc"]))
            probs.append((where, err["msg"].removeprefix("Value error, ")))
        raise ScenarioError(probs) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario file; raise ScenarioError naming every bad field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError([("(file)", f"cannot read {p}: {e.strerror}")]) from None
    except UnicodeDecodeError as e:
        raise ScenarioError(
            [("(file)", f"{p} is not UTF-8 text: {e.reason} at byte {e.start}")]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ScenarioError([(where, f"malformed YAML: {getattr(e, 'problem', e)}")]) from None
    s = validate_data(data)
    check_replays(s, p.parent)  # trace files are read relative to the scenario file
    check_book_table(s, p.parent)  # so is the book's subscriber table
    return s


def json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, for editors (``tokensim schema``)."""
    return Scenario.model_json_schema()


def check_replays(s: Scenario, base: Path) -> None:
    """Make relative replay files absolute against ``base`` and read each once.

    ``base`` is the scenario file's folder; absolute paths let copies of the scenario (sweep
    points, the run folder's resolved scenario.yaml) find the trace from anywhere.
    """
    problems: list[tuple[str, str]] = []
    for k, g in enumerate(s.segments):
        if g.replay is not None:
            if not Path(g.replay.file).is_absolute():
                g.replay.file = str((base / g.replay.file).resolve())
            try:
                load_replay(g.replay.path(), g.replay.format, g.replay.shift_s)
            except TraceError as e:
                problems.append((f"segments[{k}].replay.file", str(e)))
    if problems:
        raise ScenarioError(problems)
