"""Numbers for a person: counts, tokens, money, shares and durations as ``explain`` says them.

Counts and estimated amounts are rounded to ``SIGNIFICANT`` digits: they are expectations of a
demand model, not ledger totals. Amounts that are a plan's terms (fees, quotas, prices) print
as the scenario gives them.
"""

from __future__ import annotations

import math

from sim.units import SECONDS_PER_HOUR

SECONDS_PER_MINUTE = 60.0
"""Seconds in a minute (s)."""

SIGNIFICANT = 3
"""Significant digits of the "about" counts and monthly totals (digits)."""

SMALLEST_SHARE = 1e-4
"""Shares below this print as "under 0.01%" (share): the demand law's far tail is not worth
more digits than the model's own precision."""

SMALLEST_AMOUNT = 1e-3
"""Positive amounts of money and packs below this print as "under 0.001" (currency, packs)."""


def finite(x: float) -> bool:
    """True for a finite int or float (False for NaN, infinities and None)."""
    return isinstance(x, int | float) and math.isfinite(x)


def significant(x: float, digits: int = SIGNIFICANT) -> float:
    """``x`` rounded to ``digits`` significant digits."""
    if not finite(x) or x == 0:
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def count(x: float) -> str:
    """A count for a person: three significant digits, thousands separators ("2,740")."""
    if not finite(x):
        return "unlimited" if x == math.inf else "–"
    v = significant(x)
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:,.2g}"


def tokens(x: float) -> str:
    """A token (or quota-unit) amount: exact below 1M, else in M or B ("1.77M", "13,269")."""
    if not finite(x):
        return "unlimited" if x == math.inf else "–"
    for div, suffix in ((1e9, "B"), (1e6, "M")):
        if abs(x) >= div:
            return f"{significant(x / div):,g}{suffix}"
    return f"{x:,.0f}"


def about_tokens(x: float) -> str:
    """An estimated token (or quota-unit) amount: ``SIGNIFICANT`` digits ("274,000", "1.77M")."""
    return tokens(significant(x))


def money(x: float, currency: str) -> str:
    """An amount of money: "CNY 9.9", "CNY 1,726", "CNY 0.0215"."""
    if not finite(x):
        return "–"
    a = abs(x)
    if 0 < a < SMALLEST_AMOUNT:
        return f"under {currency} {SMALLEST_AMOUNT:g}"
    if a >= 1000:
        num = f"{x:,.0f}"
    elif a >= 1 or a == 0:
        num = f"{x:,.2f}".rstrip("0").rstrip(".")
    else:
        num = f"{significant(x):g}"
    return f"{currency} {num}"


def about_money(x: float, currency: str) -> str:
    """An estimated amount of money: ``SIGNIFICANT`` digits ("CNY 167", "CNY 5.61")."""
    return money(significant(x), currency)


def share(x: float) -> str:
    """A share in percent: "19.7%", "0.28%", "106%"."""
    if not finite(x):
        return "–"
    p = x * 100
    if 0 < abs(x) < SMALLEST_SHARE:
        return f"under {SMALLEST_SHARE * 100:g}%"
    if p == 0 or abs(p) >= 100:
        return f"{p:,.0f}%"
    if abs(p) < 1:
        return f"{significant(p, 2):g}%"
    return f"{p:.1f}".removesuffix(".0") + "%"


def duration(seconds: float) -> str:
    """A gap for a person: "10 min", "30 s", "2 h"."""
    if seconds >= SECONDS_PER_HOUR and seconds % SECONDS_PER_HOUR == 0:
        return f"{seconds / SECONDS_PER_HOUR:g} h"
    if seconds >= SECONDS_PER_MINUTE and seconds % SECONDS_PER_MINUTE == 0:
        return f"{seconds / SECONDS_PER_MINUTE:g} min"
    return f"{seconds:g} s"


def plural(noun: str, n: float) -> str:
    """``noun`` for about one of it, else with an s."""
    return noun if finite(n) and significant(n) == 1 else noun + "s"
