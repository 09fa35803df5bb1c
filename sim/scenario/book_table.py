"""The subscriber table a book may name: an operator's export of who holds which plan.

CSV or Parquet (by the file's suffix), one row per subscriber, columns ``id``, ``segment``,
``plan``, ``tenure_months`` and optionally ``monthly_tokens`` (mean tokens per billing month
over the subscriber's recent history). Read and checked at load, with problems naming
``book.file`` and the first offending rows, so a bad export fails before any simulation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.scenario.errors import ScenarioError
from sim.scenario.limits import MAX_BOOK_BYTES
from sim.scenario.yaml_reader import check_file

if TYPE_CHECKING:
    from sim.scenario.schema import Scenario

REQUIRED = ("id", "segment", "plan", "tenure_months")
"""Columns every subscriber table has."""

OPTIONAL = ("monthly_tokens",)
"""Columns a table may add."""

MAX_ROWS = 50_000_000
"""Largest table read (rows): a guard against a wrong file, above any operator's package base
in ../shared/context (China Telecom's hundreds of millions are mobile lines, not packages)."""

MAX_TENURE_MONTHS = 600
"""Longest tenure accepted (months, 50 years): beyond it a value is a unit mistake."""

MAX_MONTHLY_TOKENS = 1e13
"""Largest monthly usage accepted (tokens): about 3,800 tokens/s all month, beyond any single
subscriber of the catalog's plans; a larger value is a unit mistake."""


def _rows(mask: pd.Series) -> str:
    """The first few offending rows, numbered as in the file (header = row 1)."""
    bad = np.flatnonzero(mask.to_numpy())
    shown = ", ".join(str(i + 2) for i in bad[:5])
    return f"rows {shown}" + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def _read_frame(path: Path, where: str) -> pd.DataFrame:
    """The file as a DataFrame with the known columns, or a ScenarioError."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            df = pd.read_csv(path, nrows=MAX_ROWS + 1, dtype={"segment": str, "plan": str})
        else:
            raise ScenarioError([(where, f"{path.name}: use a .csv or .parquet file")])
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ScenarioError([(where, f"cannot read {path.name}: {e}")]) from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ScenarioError([(where, f"{path.name} lacks columns {', '.join(missing)}")])
    extra = [c for c in df.columns if c not in REQUIRED + OPTIONAL]
    if extra:
        raise ScenarioError([(where, f"{path.name} has unknown columns {', '.join(extra)}")])
    if len(df) > MAX_ROWS:
        raise ScenarioError([(where, f"{path.name} has more than {MAX_ROWS:,} rows")])
    return df


def read_book_table(path: Path) -> pd.DataFrame:
    """Read a subscriber table; raise ScenarioError naming ``book.file`` if it is malformed."""
    where = "book.file"
    df = _read_frame(path, where)
    problems: list[tuple[str, str]] = []
    if df["id"].duplicated().any():
        problems.append((where, f"duplicate id at {_rows(df['id'].duplicated())}"))
    for col, top in (("tenure_months", MAX_TENURE_MONTHS), ("monthly_tokens", MAX_MONTHLY_TOKENS)):
        if col not in df.columns:
            continue
        x = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(x) | (x < 0) | (x > top)
        if col == "tenure_months":
            bad |= x.fillna(0) % 1 != 0
        if bad.any():
            problems.append((where, f"{col} must be a number in [0, {top:g}]: {_rows(bad)}"))
        df[col] = x
    if problems:
        raise ScenarioError(problems)
    df["tenure_months"] = df["tenure_months"].astype(np.int64)
    return df


def check_book_table(s: Scenario, base: Path) -> pd.DataFrame | None:
    """Resolve the book's table against the scenario's folder, read it, check its names.

    Returns the table (or None without one). Segments and plans must be the scenario's and
    each plan offered to its row's segment; each segment's ``initial_subscribers`` is left 0
    or equals the table's count.
    """
    b = s.book
    if b is None or b.file is None:
        return None
    if not Path(b.file).is_absolute():
        b.file = str((base / b.file).resolve())
    check_file(Path(b.file), "book.file", MAX_BOOK_BYTES)  # a regular file, not too large
    df = read_book_table(Path(b.file))
    offered = {g.name: set(g.plans) for g in s.segments}
    problems: list[tuple[str, str]] = []
    unknown_seg = ~df["segment"].isin(offered)
    if unknown_seg.any():
        problems.append(("book.file", f"unknown segment at {_rows(unknown_seg)}"))
    ok = ~unknown_seg
    bad_plan = ok & ~pd.Series(
        [p in offered.get(g, set()) for g, p in zip(df["segment"], df["plan"], strict=True)],
        index=df.index,
    )
    if bad_plan.any():
        problems.append(("book.file", f"plan not offered to the segment at {_rows(bad_plan)}"))
    counts = df["segment"].value_counts()
    for k, g in enumerate(s.segments):
        n = int(counts.get(g.name, 0))
        if g.initial_subscribers not in (0, n):
            problems.append(
                (
                    f"segments[{k}].initial_subscribers",
                    f"{g.initial_subscribers} disagrees with the book's {n} for '{g.name}'",
                )
            )
    if problems:
        raise ScenarioError(problems)
    return df
