"""Generate the scenario field reference (docs/parameters.md) from the schema itself.

The reference table is written from the pydantic models' fields, so the
documentation cannot drift from the code; ``tests/functional/test_docs.py``
checks the committed file holds exactly what this module generates.
"""

from __future__ import annotations

import ast
import inspect
import itertools
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from sim.scenario import limits
from sim.scenario.events import (
    Book,
    BookEntry,
    CompetitorPrice,
    FreeTrial,
    Launch,
    PriceChange,
    Promotion,
    QuotaChange,
    Retirement,
)
from sim.scenario.schema import (
    LLM,
    SLO,
    Bass,
    CapacityChange,
    Churn,
    Cluster,
    Constant,
    Cutoff,
    Empirical,
    Engagement,
    GPUType,
    LogNormal,
    Outputs,
    Patience,
    Payg,
    Plan,
    Pool,
    Quota,
    Range,
    Replay,
    Retry,
    Rollover,
    Scenario,
    Segment,
    Serving,
    SLAClass,
    Sweep,
    Throttle,
    TokenClassWeights,
    Topup,
)
from sim.scenario.windows import PeakWeight, UsageWindow, WindowBehaviour

BEGIN = "<!-- BEGIN GENERATED FIELD REFERENCE (python -m sim.scenario.docgen) -->"
END = "<!-- END GENERATED FIELD REFERENCE -->"

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("scenario", Scenario),
    ("catalog.gpus[]", GPUType),
    ("catalog.models[]", LLM),
    ("catalog.models[].serving[]", Serving),
    ("plans[]", Plan),
    ("plans[].quota", Quota),
    ("plans[].token_class_weights", TokenClassWeights),
    ("plans[].on_exhaustion (rule: cutoff)", Cutoff),
    ("plans[].on_exhaustion (rule: throttle)", Throttle),
    ("plans[].on_exhaustion (rule: payg)", Payg),
    ("plans[].on_exhaustion (rule: topup)", Topup),
    ("plans[].rollover", Rollover),
    ("plans[].windows[]", UsageWindow),
    ("plans[].peak_weights[]", PeakWeight),
    ("segments[]", Segment),
    ("segments[].input_tokens / output_tokens (dist: lognormal)", LogNormal),
    ("segments[].input_tokens / output_tokens (dist: empirical)", Empirical),
    ("segments[].replay", Replay),
    ("segments[].engagement", Engagement),
    ("segments[].patience", Patience),
    ("segments[].retry", Retry),
    ("segments[].at_window_limit", WindowBehaviour),
    ("segments[].acquisition (model: bass)", Bass),
    ("segments[].acquisition (model: constant)", Constant),
    ("cluster", Cluster),
    ("cluster.pools[]", Pool),
    ("cluster.pools[].schedule[]", CapacityChange),
    ("cluster.sla_classes[]", SLAClass),
    ("cluster.sla_classes[].slo", SLO),
    ("churn", Churn),
    ("book", Book),
    ("book.entries[]", BookEntry),
    ("events[] (kind: price_change)", PriceChange),
    ("events[] (kind: quota_change)", QuotaChange),
    ("events[] (kind: launch)", Launch),
    ("events[] (kind: retire)", Retirement),
    ("events[] (kind: promotion)", Promotion),
    ("events[] (kind: trial)", FreeTrial),
    ("events[] (kind: competitor_price)", CompetitorPrice),
    ("outputs", Outputs),
    ("sweep", Sweep),
    ("sweep.parameters.PATH (a range, lhs only)", Range),
]


def _default(f: Any) -> str:
    if f.default is PydanticUndefined and f.default_factory is None:
        return "**required**"
    if f.default_factory is not None:
        try:
            v = f.default_factory()
        except TypeError:
            return "(computed)"
        if isinstance(v, BaseModel):
            return "see below"
        return f"`{v}`" if not isinstance(v, list) or len(v) < 4 else "(list)"
    if isinstance(f.default, BaseModel):
        return "see below"
    return f"`{f.default}`"


def _type(f: Any) -> str:
    t = str(f.annotation).replace("typing.", "")
    for long, short in (("Annotated[", ""), ("<class '", ""), ("'>", "")):
        t = t.replace(long, short)
    return t.split(",")[0].rstrip("]") if "Field" in t or "Ge" in t else t


BOUND_KEYS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
"""JSON-schema keys of a number's bounds."""

LIMIT_KEY = "x-limit"
"""JSON-schema key naming the limit of sim.scenario.limits that bounds a field from above."""


def limit_docs() -> dict[str, tuple[float, str]]:
    """Each named limit of :mod:`sim.scenario.limits`: (value, first paragraph of its docstring)."""
    tree = ast.parse(inspect.getsource(limits))
    out: dict[str, tuple[float, str]] = {}
    body = tree.body
    for node, doc in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            name = node.targets[0].id
            value = getattr(limits, name)
            if isinstance(value, int | float):
                text = " ".join(doc.value.value.split("\n\n")[0].split())
                out[name] = (float(value), text)
    return out


def _bounds(prop: dict[str, Any]) -> dict[str, Any]:
    """The JSON-schema property that carries a field's bounds (itself, or inside it).

    Looks into optional values (anyOf), list items and mapping values.
    """
    if any(k in prop for k in BOUND_KEYS):
        return prop
    for sub in [*prop.get("anyOf", []), prop.get("items"), prop.get("additionalProperties")]:
        if isinstance(sub, dict):
            b = _bounds(sub)
            if b:
                return b
    return {}


def _range(prop: dict[str, Any]) -> str:
    """The allowed range of a field, e.g. ``0 <= x <= 1e+08 (MAX_TOKENS)``; empty if none."""
    b = _bounds(prop)
    if not b:
        return ""
    parts = []
    if "minimum" in b:
        parts.append(f"{b['minimum']:g} <=")
    elif "exclusiveMinimum" in b:
        parts.append(f"{b['exclusiveMinimum']:g} <")
    parts.append("x")
    if "maximum" in b:
        parts.append(f"<= {b['maximum']:g}")
    elif "exclusiveMaximum" in b:
        parts.append(f"< {b['exclusiveMaximum']:g}")
    if LIMIT_KEY in b:
        parts.append(f"(`{b[LIMIT_KEY]}`)")
    return " ".join(parts)


def limits_markdown() -> list[str]:
    """The table of named limits with the reason for each value."""
    lines = [
        "### Limits",
        "",
        "Every number of a scenario is finite (`.inf` and `.nan` are refused everywhere) and"
        " bounded. The bounds are far above any real operator (China Mobile has about 1 billion"
        " subscribers; context windows reach 1-2 million tokens): they refuse typos, unit"
        " mistakes and input that would overflow a kernel or exhaust memory. A run is also"
        " refused before simulating when its estimated memory exceeds `MAX_RUN_MEMORY_GB`"
        f" (environment variable `{limits.MEMORY_LIMIT_ENV}` changes it). From"
        " `sim/scenario/limits.py`:",
        "",
        "| limit | value | why |",
        "|---|---|---|",
    ]
    for name, (value, why) in limit_docs().items():
        why_cell = why.replace("|", "\\|")
        lines.append(f"| `{name}` | {value:,.6g} | {why_cell} |")
    return [*lines, ""]


def parameters_markdown() -> str:
    """The field reference as Markdown, between BEGIN and END markers."""
    lines = [BEGIN, "", *limits_markdown()]
    for title, model in SECTIONS:
        lines += [f"### `{title}`", ""]
        if model.__doc__:
            lines += [model.__doc__.strip().splitlines()[0], ""]
        props = model.model_json_schema().get("properties", {})
        lines += ["| field | default | range | meaning |", "|---|---|---|---|"]
        for name, f in model.model_fields.items():
            desc = (f.description or "").replace("|", "\\|")
            rng = _range(props.get(name, {}))
            lines.append(f"| `{name}` | {_default(f)} | {rng} | {desc} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(text: str) -> str:
    """Replace the generated block of ``text`` (a whole docs/parameters.md) with a fresh one."""
    a, b = text.index(BEGIN), text.index(END) + len(END) + 1
    return text[:a] + parameters_markdown() + text[b:]


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    import sys
    from pathlib import Path

    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/parameters.md")
    path.write_text(splice(path.read_text()))
    print(f"updated {path}")
