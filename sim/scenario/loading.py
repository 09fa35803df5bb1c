"""Reading scenarios: YAML files and parsed data into a validated Scenario, errors by field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sim.scenario.base import NAME_PATTERN
from sim.scenario.errors import ScenarioError
from sim.scenario.events import Event
from sim.scenario.limits import MAX_REPLAY_BYTES
from sim.scenario.schema import Acquisition, Exhaustion, Scenario, Sweep, TokenLength
from sim.scenario.yaml_reader import check_file, parse_yaml, read_text
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


def _message(err: Any) -> str:
    """The message of one pydantic error, in the schema's words."""
    msg = str(err["msg"]).removeprefix("Value error, ")
    ctx = err.get("ctx") or {}
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        return "a name must not begin or end with a blank"
    if err["type"] in ("less_than_equal", "less_than"):
        return f"{msg}: an upper bound of the schema (see Limits in docs/parameters.md)"
    return msg


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
            msg = _message(err)
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
    data = parse_yaml(read_text(p))  # type, size, depth, aliases and duplicate keys checked
    s = validate_data(data)
    check_replays(s, p.parent)  # trace files are read relative to the scenario file
    if s.book is not None and s.book.file is not None:  # so is the book's subscriber table
        from sim.scenario.book_table import check_book_table  # pandas: only when there is one

        check_book_table(s, p.parent)
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
                check_file(g.replay.path(), f"segments[{k}].replay.file", MAX_REPLAY_BYTES)
            except ScenarioError as e:
                problems.extend(e.problems)
                continue
            try:
                load_replay(g.replay.path(), g.replay.format, g.replay.shift_s)
            except TraceError as e:
                problems.append((f"segments[{k}].replay.file", str(e)))
    if problems:
        raise ScenarioError(problems)
