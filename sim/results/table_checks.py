"""Checks that a table read back from a results folder holds what its writer puts there.

Readers (``report``, ``compare``, ``sweep --resume``) must not draw, compare or reuse a table
a disk error, an editor or another program has damaged: a word where a number belongs, an
infinity, a missing count. :func:`check_numbers` finds the first such cell and raises
:class:`TableError` naming the file, the column, the line and the value, so the command can
refuse the folder with exit code 2 instead of rendering nonsense or failing with a traceback.

What the writers guarantee, and so what is checked:

* key columns (:data:`KEY_COLUMNS`: replication, month, hour, ...) hold whole numbers >= 0;
* text columns (:data:`TEXT_COLUMNS`: pool, SLA class, plan, segment, usage window) may hold
  anything;
* every other column holds numbers, never an infinity: the engine refuses to report a
  non-finite counter (``sim.engine.metrics.Accumulators.check_finite``);
* a missing value (NaN) only where a figure can be undefined (:func:`may_be_undefined`): a
  ratio or a latency statistic whose denominator is zero (no requests served, no renewal
  decision, no capacity). Counts and money are always defined.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

KEY_COLUMNS = frozenset({"replication", "month", "hour", "hour_of_day", "day"})
"""Columns indexing a table's rows: whole numbers >= 0."""
TEXT_COLUMNS = frozenset({"pool", "sla_class", "plan", "segment", "point", "window"})
"""Columns holding names (any text)."""
_UNDEFINED_WORDS = frozenset({"share", "rate", "utilisation", "attainment", "ratio", "per"})
"""Words (between underscores) of a ratio's column name."""
_UNDEFINED_STAT = re.compile(r"(_mean_s|_p\d+_s)$|^busy_hour")
"""A latency statistic (a mean or a percentile in seconds), or a busy-hour figure."""

CSV_FIRST_DATA_LINE = 2
"""Line number of a CSV table's first row (line 1 is the header)."""


class TableError(ValueError):
    """A table cell that its writer would never have written; the message names file and cell."""


def may_be_undefined(column: str) -> bool:
    """True for a ratio or latency statistic (may be NaN: its denominator can be zero)."""
    return bool(_UNDEFINED_WORDS & set(column.split("_")) or _UNDEFINED_STAT.search(column))


def check_numbers(path: Path, df: pd.DataFrame, columns: Iterable[str] | None = None) -> None:
    """Raise TableError at the first cell of ``columns`` (default: all) that is not valid.

    Valid is as the module docstring says. Columns absent from ``df`` are skipped: the
    caller checks presence (a reader of an earlier version's folder adds missing columns).
    Line numbers are those of a CSV file (the header is line 1).
    """
    names = list(df.columns) if columns is None else [c for c in columns if c in df.columns]
    for c in names:
        if c in TEXT_COLUMNS:
            continue
        _check_column(path, c, df[c])


def _line(s: pd.Series, mask: np.ndarray) -> tuple[int, object]:
    """CSV line and value of the first row where ``mask`` holds."""
    i = int(np.flatnonzero(mask)[0])
    return i + CSV_FIRST_DATA_LINE, s.iloc[i]


def _check_column(path: Path, c: str, s: pd.Series) -> None:
    if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
        x = pd.to_numeric(s.astype(object), errors="coerce")
        bad = x.isna().to_numpy() & s.notna().to_numpy()
        if bad.any():
            line, v = _line(s, bad)
            raise TableError(f"{path}: column {c}, line {line}: {v!r} is not a number")
        s = x.astype(float)
    if pd.api.types.is_bool_dtype(s):
        return
    v = s.to_numpy(dtype=float)
    inf = np.isinf(v)
    if inf.any():
        line, val = _line(s, inf)
        raise TableError(f"{path}: column {c}, line {line}: {val} is not a finite number")
    nan = np.isnan(v)
    if nan.any() and (c in KEY_COLUMNS or not may_be_undefined(c)):
        line, _ = _line(s, nan)
        raise TableError(
            f"{path}: column {c}, line {line}: missing value (a count, an amount"
            " or a key is always written)"
        )
    if c in KEY_COLUMNS:
        bad = (v < 0) | (v != np.floor(v))
        if bad.any():
            line, val = _line(s, bad)
            raise TableError(f"{path}: column {c}, line {line}: {val} is not a whole number >= 0")
