"""HTML building blocks of a report: tables, figures, the page (numbers: sim.results.number_format).

A report is one self-contained file: CSS inline, figures as data URIs, no JavaScript.
These helpers are the only place that writes markup or escapes text, so the pages
(``sim.report.pages``) compose strings without handling HTML themselves.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence
from typing import Any

from sim import __version__

# the report's number formats are the command line's and compare's (re-exported for the pages)
from sim.results.number_format import fmt as fmt
from sim.results.number_format import fmt_ci as fmt_ci
from sim.results.number_format import fmt_exact as fmt_exact

Cell = str | tuple[str, str]
"""A table cell: text, or (text, CSS class)."""

CI_SUFFIX = re.compile(r"^([^\[\]]*\S) (\[[^\[\]]*, [^\[\]]*\])$")
"""A cell ``mean [low, high]`` (as :func:`fmt_ci` writes it): the interval goes on a line of
its own under the mean, so a column is as wide as its longest number, not mean and interval."""


def table_html(header: Sequence[str], rows: Sequence[Sequence[Cell]], caption: str = "") -> str:
    """A table in a box that scrolls sideways when it is wider than the page.

    One header row (headings wrap), escaped cells (an interval on its own line), an optional
    caption.
    """

    def cell(c: Cell, tag: str = "td") -> str:
        text, cls = (c, "") if isinstance(c, str) else c
        attr = f' class="{cls}"' if cls else ""
        m = CI_SUFFIX.match(text) if tag == "td" else None
        if m:
            inner = f'{html.escape(m[1])} <span class="ci">{html.escape(m[2])}</span>'
        else:
            inner = html.escape(text)
        if tag == "th":  # long names such as busy_hour_ttft_p95_s may wrap after _ . = ,
            inner = re.sub(r"([_.=,])", r"\1<wbr>", inner)
        return f"<{tag}{attr}>{inner}</{tag}>"

    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(cell(h, "th") for h in header)
    body = "\n".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return (
        f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def figure_html(uri: str, alt: str, caption: str) -> str:
    """A figure element showing the image at ``uri`` with its alt text and caption."""
    return (
        f'<figure><img src="{uri}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def fig_html(fig: Any, alt: str, caption: str) -> str:
    """A matplotlib figure embedded as an SVG data URI (``sim.report.figures``)."""
    from sim.report.figures import svg_data_uri

    return figure_html(svg_data_uri(fig), alt, caption)


def para_html(text: str, cls: str = "") -> str:
    """A paragraph of escaped text, with an optional CSS class (e.g. ``note``)."""
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


CSS = """
:root { --ink:#1d2433; --muted:#5b6472; --line:#d9dee7; --accent:#2f5d9e; --bg:#fafbfc; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: var(--bg); }
header { background: var(--accent); color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; opacity: .9; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); margin-right: 16px; text-decoration: none; font-size: 14px; }
main { padding: 8px 32px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: 4px 20px 16px; margin: 18px 0; }
h2 { font-size: 19px; border-bottom: 2px solid var(--accent); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
figure { margin: 12px 0; }
figure img { display: block; width: 100%; max-width: 1200px; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.tw { overflow-x: auto; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: 4px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right;
         white-space: nowrap; }
th { background: #eef2f8; position: sticky; top: 0; white-space: normal; min-width: 6em;
     vertical-align: bottom; overflow-wrap: break-word; }
td .ci { display: block; color: var(--muted); font-size: 12px; white-space: normal; }
th:first-child, td:first-child { text-align: left; }
td.l { text-align: left; white-space: normal; }
td.lines { text-align: left; white-space: pre-line; vertical-align: top; }
td.up { color: #1b7f3b; font-weight: 600; } td.down { color: #b3261e; font-weight: 600; }
.note { color: var(--muted); font-size: 13px; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
@media print { nav { display: none; } section { break-inside: avoid; border: 0; }
               body { background: #fff; } }
"""


RUN_FOOTER = (
    "Means are over replications; intervals in brackets and shaded bands are 95% confidence"
    " intervals (Student t)."
)
"""The footer's note on pages of simulated runs."""


def page_html(
    title: str,
    subtitle: str,
    sections: Sequence[tuple[str, str, str]],
    footer: str = RUN_FOOTER,
) -> str:
    """The whole HTML document; ``sections`` are (id, heading, inner HTML).

    ``footer`` (plain text, escaped) follows the line naming the tokensim version and the time.
    """
    nav = "".join(f'<a href="#{sid}">{html.escape(h)}</a>' for sid, h, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{html.escape(h)}</h2>\n{inner}\n</section>'
        for sid, h, inner in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tokensim {html.escape(__version__)}">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>
<nav>{nav}</nav>
<main>
{body}
</main>
<footer>Written by tokensim {html.escape(__version__)} on \
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. {html.escape(footer)}</footer>
</body>
</html>
"""


def unit_label(unit: str, currency: str) -> str:
    """A KPI unit as shown: ``currency`` replaced by the run's currency code."""
    return unit.replace("currency", currency)
