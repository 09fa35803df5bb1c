"""Reading the report's HTML in tests: a section by its id, the rows of its tables."""

from __future__ import annotations

import html
import re


def section(page: str, sid: str) -> str:
    """The inside of ``<section id="sid">`` (the test fails when there is none)."""
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, f"no section {sid}"
    return m.group(1)


def rows(part: str) -> list[list[str]]:
    """The body rows of the tables in ``part``, cells unescaped."""
    body = "".join(re.findall(r"<tbody>(.*?)</tbody>", part, re.S))
    return [
        [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]
