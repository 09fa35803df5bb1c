"""The ``explain`` page and files: what each package buys each segment, as HTML and JSON.

The page is drawn from the JSON data of ``sim.pricing.explain_text.explanation_dict`` (the
numbers and sentences of ``explain.json``), so the page, the file and the terminal text say
the same thing. Like the run report it is one self-contained file: inline CSS, figures as SVG
data URIs, no scripts (``sim.report.html``). Files are written only once every one of them is
rendered, each atomically (``sim.results.atomic.atomic_file``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim.pricing.explain_numbers import about_money, about_tokens, count, money, share, tokens
from sim.pricing.explain_words import KIND_WORDS
from sim.report.figures import quota_use
from sim.report.html import Cell, fig_html, page_html, para_html, table_html
from sim.results.atomic import atomic_file

EXPLAIN_JSON = "explain.json"
"""File name of the data in an ``--out`` folder."""
EXPLAIN_HTML = "explain.html"
"""File name of the page in an ``--out`` folder."""


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3g}x" if a is not None and b else "–"


def _num(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _summary_rows(data: dict[str, Any]) -> list[list[Cell]]:
    cur = data["currency"]
    rows: list[list[Cell]] = []
    for p in data["plans"]:
        for g in p["for_segments"]:
            e, c = g["everyone"], g["choosers"]
            turn = KIND_WORDS.get(g["kind"], KIND_WORDS["other"])[0]
            rows.append(
                [
                    p["name"],
                    g["segment"],
                    money(p["fee"], cur),
                    f"{tokens(p['quota'])} {p['quota_unit']}",
                    f"{count(_num(g['covers']['requests']))} {turn}s",
                    share(_num(e["use_percentiles"]["p50"])),
                    share(_num(e["use_percentiles"]["p95"])),
                    share(_num(e["used_share"])),
                    share(e["exhausting_share"]),
                    about_money(_num(e["effective_price_per_mtok"]), cur),
                    about_money(_num(g["list_price_per_mtok"]), cur),
                    _ratio(e["effective_price_per_mtok"], g["list_price_per_mtok"]),
                    share(c["share_of_segment"]) if c else "0%",
                    share(c["exhausting_share"]) if c else "–",
                    about_money(_num(c["effective_price_per_mtok"]), cur) if c else "–",
                ]
            )
    return rows


SUMMARY_HEADER = (
    "plan",
    "segment",
    "fee",
    "quota",
    "quota covers",
    "median demand",
    "p95 demand",
    "quota used (mean)",
    "exhaust",
    "effective price /1M",
    "API list /1M",
    "effective / list",
    "choosers",
    "choosers exhaust",
    "choosers /1M",
)
"""Columns of the summary table (demand and use as shares of the quota)."""


def _population_table(g: dict[str, Any], cur: str, percentiles: Sequence[int]) -> str:
    pops = [("everyone in the segment", g["everyone"])]
    if g["choosers"]:
        pops.append(("its choosers", g["choosers"]))
    if g.get("book"):
        pops.append(("the book at t = 0", g["book"]))
    rows: list[list[Cell]] = []
    for label, pop in pops:
        rows.append(
            [
                label,
                share(pop["share_of_segment"]),
                *(share(_num(pop["use_percentiles"][f"p{pc:02d}"])) for pc in percentiles),
                share(_num(pop["used_share"])),
                share(pop["exhausting_share"]),
                about_tokens(_num(pop["tokens_used"])),
                about_money(pop["paid"], cur),
                about_money(_num(pop["effective_price_per_mtok"]), cur),
            ]
        )
    header = [
        "subscribers",
        "of the segment",
        *(f"p{pc}" for pc in percentiles),
        "quota used",
        "exhaust",
        "tokens used",
        "paid",
        "per 1M used",
    ]
    return table_html(
        header,
        rows,
        "A subscriber-month: demand as a share of the quota at its percentiles, mean share"
        " of the quota used, share exhausting it, tokens used, payment and effective price"
        " (means).",
    )


def _plan_section(p: dict[str, Any], data: dict[str, Any]) -> tuple[str, str, str]:
    cur = data["currency"]
    parts = [para_html(p["words"]), para_html(p["past_quota_words"])]
    if not p["for_segments"]:
        parts.append(para_html("No segment of the scenario is offered this plan.", "note"))
    for g in p["for_segments"]:
        kind = f" ({g['kind']})" if g["kind"] != g["segment"] else ""
        parts.append(f"<h3>{html.escape(g['segment'] + kind)}</h3>")
        parts += [para_html(w) for w in g["words"]]
        parts.append(_population_table(g, cur, data["use_percentiles"]))
    return (f"plan-{p['name']}", p["name"], "\n".join(parts))


def _use_figures(data: dict[str, Any]) -> str:
    """A box plot per segment of its monthly demand against each offered plan's quota."""
    by_segment: dict[str, dict[str, dict[str, float]]] = {}
    for p in data["plans"]:
        if p["quota"] <= 0:
            continue
        for g in p["for_segments"]:
            e = g["everyone"]
            row = {k: _num(v) for k, v in e["use_percentiles"].items()}
            row["mean"] = e["demand_units"] / p["quota"]
            by_segment.setdefault(g["segment"], {})[p["name"]] = row
    out = []
    for seg, rows in by_segment.items():
        fig = quota_use(pd.DataFrame.from_dict(rows, orient="index"))
        fig.axes[0].set_title(
            f"{seg}: monthly demand / quota of each plan (box: quartiles; whiskers: 5th-95th"
            " percentile; diamond: mean)",
            fontsize=10,
        )
        fig.axes[0].set_xlabel("monthly demand / quota")
        out.append(
            fig_html(
                fig,
                f"monthly demand of {seg} against each plan's quota",
                f"Every subscriber of {seg} as if all were on each plan. Past 100% the plan's"
                " rule decides what is served and billed.",
            )
        )
    return "\n".join(out)


def _method_section(data: dict[str, Any]) -> str:
    rows: list[list[Cell]] = [
        [a["name"], str(a["value"]), a["unit"], (a["source"], "l")] for a in data["assumptions"]
    ]
    parts = [para_html(t) for t in data["approximations"]]
    parts.append(table_html(["name", "value", "unit", "source"], rows, "Named constants."))
    prices = [
        [m, money(v["input_miss"], data["currency"]), money(v["input_hit"], data["currency"]),
         money(v["output"], data["currency"])]
        for m, v in data["models"].items()
    ]  # fmt: skip
    parts.append(
        table_html(
            ["model", "input (miss) /1M", "input (hit) /1M", "output /1M"],
            prices,
            "The catalog's API list prices the effective prices are compared with.",
        )
    )
    parts.append(para_html("How these numbers are made and checked: docs/explain.md.", "note"))
    return "\n".join(parts)


def explain_page(data: dict[str, Any]) -> str:
    """The whole HTML document for ``explain``'s data."""
    sections = [
        (
            "summary",
            "At a glance",
            table_html(
                list(SUMMARY_HEADER),
                _summary_rows(data),
                "Each plan for each segment offered it: how many requests the quota covers at"
                " the segment's mean sizes (sessions and documents: in the plan's section), the"
                " segment's monthly demand as a share of the quota, the effective price per 1M"
                " tokens used against the API list price of the same token mix, and the plan's"
                " choosers.",
            ),
        ),
        ("use", "Demand against the quota", _use_figures(data)),
        *(_plan_section(p, data) for p in data["plans"]),
        ("method", "How the numbers are made", _method_section(data)),
    ]
    title = f"What each package buys: {data['scenario']}"
    subtitle = (
        f"{data['currency']}, {data['days_per_month']}-day billing months; from the scenario's"
        " own demand model, no simulation"
    )
    footer = (
        "(tokensim explain) Means and shares are expectations of the scenario's demand model,"
        " computed without simulation."
    )
    return page_html(title, subtitle, sections, footer)


def output_problem(json_file: Path | None, out_dir: Path | None) -> str | None:
    """Why the outputs cannot be written, or None.

    A folder where a file goes, or a file where the folder goes.
    """
    if json_file is not None and json_file.is_dir():
        return f"--json {json_file} is a folder; give a file name"
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        return f"--out {out_dir} exists and is not a folder"
    for name in (EXPLAIN_JSON, EXPLAIN_HTML):
        if out_dir is not None and (out_dir / name).is_dir():
            return f"--out {out_dir}: {out_dir / name} is a folder"
    return None


def write_explanation(
    data: dict[str, Any], json_file: Path | None, out_dir: Path | None
) -> list[Path]:
    """Write ``data`` to ``json_file`` and/or explain.json and explain.html in ``out_dir``.

    Every file is rendered before the first is written. Returns the paths written.
    """
    text = json.dumps(data, indent=2) + "\n"
    files: dict[Path, str] = {}
    if json_file is not None:
        files[json_file] = text
    if out_dir is not None:
        files[out_dir / EXPLAIN_JSON] = text
        files[out_dir / EXPLAIN_HTML] = explain_page(data)
    return [atomic_file(path, content) for path, content in files.items()]
