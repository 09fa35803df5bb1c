"""Numbers for people: one formatter for the command line, ``compare`` and the HTML report.

Shares in per cent (differences in percentage points), money with thousands separators and the
scenario's currency, seconds with three significant digits, counts of tokens and requests in
M / B / T from a million up; never scientific notation. :func:`fmt_exact` writes a value as
the scenario gives it (159.9 stays 159.9), for prices and settings a reader checks against the
file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MISSING = "–"
"""Shown for a value that does not exist (no replication, NaN, no interval)."""
SIGNIFICANT = 3
"""Significant digits of seconds, small shares and large token counts (their noise over a few
replications is at least a per cent, so more digits would be noise)."""
WHOLE_FROM = 100.0
"""Amounts from this size up are shown whole (a mean of 56,412.3 subscribers as 56,412)."""
BIG_COUNTS = ((1e12, "T"), (1e9, "B"), (1e6, "M"))
"""Token and request counts from a million up: divisor and suffix."""
COUNTED_IN_BIG_UNITS = frozenset({"tokens", "requests"})
"""Units whose large values are written with :data:`BIG_COUNTS`."""


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float | np.integer | np.floating)


def _missing(x: Any) -> bool:
    return x is None or (_is_number(x) and not math.isfinite(float(x)))


def significant(v: float, digits: int = SIGNIFICANT) -> str:
    """``v`` to ``digits`` significant digits in positional notation, trailing zeros dropped.

    0.000207, 41.2, 0.49 (not 0.490), 1,234; never scientific notation.
    """
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals > 0 else text


def unit_text(unit: str, currency: str = "") -> str:
    """A unit for a table's unit column: ``currency`` becomes the scenario's currency."""
    return unit.replace("currency", currency) if currency else unit


def fmt(x: Any, unit: str = "", currency: str = "", diff: bool = False) -> str:
    """A number for a person: ``12.34%``, ``0.412 s``, ``15,960,312 CNY``, ``1.23 B``.

    ``unit`` as in :data:`sim.results.kpis.KPIS` (``share``, ``s``, ``currency``,
    ``currency/1M tokens``, ``tokens``, ``subscribers``, ...); money gets ``currency`` appended
    when given, seconds ``s``, shares ``%``; other units are left to the table's unit column.
    ``diff`` writes a signed difference (shares in percentage points).
    """
    if _missing(x):
        return MISSING
    if not _is_number(x):
        return str(x)
    v = float(x)
    sign = "+" if diff and v > 0 else ""
    if unit == "share":
        pct = v * 100
        num = f"{pct:,.2f}" if abs(pct) >= 0.01 or pct == 0 else significant(pct, 2)
        return f"{sign}{num}{' pp' if diff else '%'}"
    if unit == "s":
        return f"{sign}{significant(v)} s"
    a = abs(v)
    if unit in COUNTED_IN_BIG_UNITS and a >= BIG_COUNTS[-1][0]:
        num = next(f"{significant(v / d)} {s}" for d, s in BIG_COUNTS if a >= d)
    elif a >= WHOLE_FROM or (v == int(v) and a < 1e15):
        num = f"{v:,.0f}"
    else:
        num = significant(v, 4)
    cur = currency if unit.startswith("currency") else ""
    return f"{sign}{num}{' ' + cur if cur else ''}"


def fmt_exact(x: Any, currency: str = "") -> str:
    """A value exactly as the scenario gives it: 159.9 stays 159.9, 1234567 is 1,234,567.

    For prices, costs and swept settings, which a reader checks against the scenario file:
    thousands separators on the whole part, every decimal the value has (its shortest
    round-trip form), ``currency`` appended when given; anything not a number as text.
    """
    if _missing(x):
        return MISSING
    if not _is_number(x):
        return str(x)
    v = float(x)
    num = f"{int(v):,}" if v == int(v) and abs(v) < 1e15 else f"{v:,}"
    return f"{num} {currency}" if currency else num


def fmt_ci(
    mean: Any, lo: Any, hi: Any, unit: str = "", currency: str = "", diff: bool = False
) -> str:
    """``mean [lo, hi]``, or only the mean without an interval."""
    m = fmt(mean, unit, currency, diff)
    if _missing(lo) or _missing(hi) or m == MISSING:
        return m
    return f"{m} [{fmt(lo, unit, currency, diff)}, {fmt(hi, unit, currency, diff)}]"


def kpi_lines(summary: dict[str, Any], names: Any, currency: str = "") -> list[str]:
    """Aligned lines ``name  mean  [low, high]  unit`` of KPIs from a run's ``summary()``.

    Money carries the currency in the unit column, not after each number.
    """
    rows = []
    for k in names:
        v = summary[k]
        unit = str(v["unit"])
        lo, hi = v["ci95_low"], v["ci95_high"]
        ci = "" if _missing(lo) or _missing(hi) else f"[{fmt(lo, unit)}, {fmt(hi, unit)}]"
        shown = "" if unit in ("share", "s") else unit_text(unit, currency)
        rows.append((k, fmt(v["mean"], unit), ci, shown))
    widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    return [
        f"  {k:<{widths[0]}}  {m:>{widths[1]}}  {ci:<{widths[2]}}  {u}".rstrip()
        for k, m, ci, u in rows
    ]
