"""Generate the scenario field reference (docs/parameters.md) from the schema itself.

The reference table is written from the pydantic models' fields, so the
documentation cannot drift from the code; ``tests/functional/test_docs.py``
checks the committed file holds exactly what this module generates.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

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
    ("segments[]", Segment),
    ("segments[].input_tokens / output_tokens (dist: lognormal)", LogNormal),
    ("segments[].input_tokens / output_tokens (dist: empirical)", Empirical),
    ("segments[].replay", Replay),
    ("segments[].engagement", Engagement),
    ("segments[].patience", Patience),
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


def parameters_markdown() -> str:
    """The field reference as Markdown, between BEGIN and END markers."""
    lines = [BEGIN, ""]
    for title, model in SECTIONS:
        lines += [f"### `{title}`", ""]
        if model.__doc__:
            lines += [model.__doc__.strip().splitlines()[0], ""]
        lines += ["| field | default | meaning |", "|---|---|---|"]
        for name, f in model.model_fields.items():
            desc = (f.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {_default(f)} | {desc} |")
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
