"""Readers of real LLM request traces and of the calibration tables (plain numpy/pandas).

Formats (recognised by their header or first record, as the calibration folder's ``stats.py``
does; any of them may be gzip-compressed, ``.gz``):

* Azure LLM inference CSV: ``TIMESTAMP,ContextTokens,GeneratedTokens``; TIMESTAMP a datetime
  (then times are seconds from midnight of the trace's first day) or seconds;
* Mooncake JSONL: ``timestamp`` (ms), ``input_length``, ``output_length``, optional
  ``hash_ids`` (prefix blocks of 512 tokens);
* ServeGen per-customer arrivals, token PMF and per-customer token summaries (CSV);
* the digitised Azure 2024 hourly profile (CSV);
* ``published_aggregates.json``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class Trace:
    """Requests of a trace, sorted by arrival time."""

    name: str  # file name
    t: NDArray[np.float64]  # arrival (s; from midnight of day 0 for Azure datetimes)
    input: NDArray[np.int64]  # input tokens
    output: NDArray[np.int64]  # output tokens
    hash_ids: list[list[int]] | None = None  # Mooncake prefix-block hashes, in time order

    def __len__(self) -> int:
        return len(self.t)


AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


def _first_line(path: Path) -> str:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return str(fh.readline()).strip()
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise TraceError(f"cannot read {path}: {e}") from None


def detect(path: str | Path) -> str | None:
    """The format of a file, from its first line; None when not recognised.

    One of azure, mooncake, servegen_arrivals, servegen_pmf, servegen_client_tokens,
    azure2024_profile, aggregates.
    """
    p = Path(path)
    first = _first_line(p)
    if first.startswith(",".join(AZURE_COLUMNS)):
        return "azure"
    if first.startswith("{") and '"input_length"' in first and '"timestamp"' in first:
        return "mooncake"
    if first.startswith("{"):
        return "aggregates"
    cols = set(first.split(","))
    if {"model", "client", "window_start_s", "rate_rps", "iat_cv"} <= cols:
        return "servegen_arrivals"
    if {"model", "client", "window_start_s", "requests", "in_mean"} <= cols:
        return "servegen_client_tokens"
    if {"model", "field", "tokens", "prob"} <= cols:
        return "servegen_pmf"
    if {"class", "hour_start_utc", "approx_requests_per_min"} <= cols:
        return "azure2024_profile"
    return None


def azure_class(path: str | Path) -> str:
    """Service class of an Azure 2023 trace file: "code" if its name says so, else "conv"."""
    return "code" if "code" in Path(path).name.lower() else "conv"


def _sorted_trace(name: str, t: Any, inp: Any, out: Any, hashes: Any = None) -> Trace:
    t = np.asarray(t, dtype=np.float64)
    inp = np.asarray(inp)
    out = np.asarray(out)
    if len(t) == 0:
        raise TraceError(f"{name}: no requests")
    if not (np.isfinite(t).all() and np.isfinite(inp).all() and np.isfinite(out).all()):
        raise TraceError(f"{name}: missing or non-numeric values")
    if (inp < 0).any() or (out < 0).any():
        raise TraceError(f"{name}: negative token counts")
    order = np.argsort(t, kind="stable")
    h = [list(hashes[i]) for i in order] if hashes is not None else None
    return Trace(name, t[order], inp[order].astype(np.int64), out[order].astype(np.int64), h)


def read_azure(path: str | Path) -> Trace:
    """An Azure LLM inference CSV (times in s from midnight of its first day)."""
    p = Path(path)
    try:
        d = pd.read_csv(p)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as e:
        raise TraceError(f"cannot read {p.name} as CSV: {e}") from None
    missing = [c for c in AZURE_COLUMNS if c not in d.columns]
    if missing:
        raise TraceError(f"{p.name}: missing column(s) {', '.join(missing)}")
    ts = d["TIMESTAMP"]
    if pd.api.types.is_numeric_dtype(ts):
        t = ts.astype(float).to_numpy()
    else:
        try:
            dt = pd.to_datetime(ts)
        except (ValueError, TypeError) as e:
            raise TraceError(
                f"{p.name}: TIMESTAMP is neither seconds nor a datetime: {e}"
            ) from None
        t = (dt - dt.dt.normalize().min()).dt.total_seconds().to_numpy()
    inp = pd.to_numeric(d["ContextTokens"], errors="coerce").to_numpy(dtype=float)
    out = pd.to_numeric(d["GeneratedTokens"], errors="coerce").to_numpy(dtype=float)
    return _sorted_trace(p.name, t, inp, out)


def read_mooncake(path: str | Path) -> Trace:
    """A Mooncake JSONL trace (times in s from the trace start; prefix hashes kept)."""
    p = Path(path)
    opener: Any = gzip.open if p.name.endswith(".gz") else open
    rows: list[dict[str, Any]] = []
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            for k, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise TraceError(f"{p.name} line {k}: not JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise TraceError(f"cannot read {p.name}: {e}") from None
    bad = [k for k in MOONCAKE_KEYS if rows and k not in rows[0]]
    if bad:
        raise TraceError(f"{p.name}: records lack {', '.join(bad)}")
    try:
        t = np.array([r["timestamp"] for r in rows], dtype=float) / 1000.0
        inp = np.array([r["input_length"] for r in rows], dtype=float)
        out = np.array([r["output_length"] for r in rows], dtype=float)
    except (KeyError, TypeError, ValueError) as e:
        raise TraceError(f"{p.name}: a record lacks or mistypes {e}") from None
    hashes = [r["hash_ids"] for r in rows] if rows and "hash_ids" in rows[0] else None
    return _sorted_trace(p.name, t, inp, out, hashes)


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """A request trace in the Azure or Mooncake format (detected when ``fmt`` is None)."""
    kind = fmt or detect(path)
    if kind == "azure":
        return read_azure(path)
    if kind == "mooncake":
        return read_mooncake(path)
    raise TraceError(f"{Path(path).name}: not an Azure CSV or Mooncake JSONL request trace")


TABLE_NUMBERS: dict[str, tuple[str, ...]] = {
    "servegen_arrivals": ("client", "window_start_s", "rate_rps", "iat_cv"),
    "servegen_pmf": ("tokens", "prob"),
    "servegen_client_tokens": ("requests",),
    "azure2024_profile": ("approx_requests_per_min",),
}
"""Columns of each calibration table that the fits use as numbers: every row must hold a
finite number >= 0 there (a truncated or edited file otherwise turns into NaN probabilities
or a failed fit deep inside the calibration)."""
TABLE_TEXT: dict[str, tuple[str, ...]] = {
    "servegen_arrivals": ("model",),
    "servegen_pmf": ("model", "field"),
    "servegen_client_tokens": ("model",),
    "azure2024_profile": ("class", "hour_start_utc"),
}
"""Columns of each calibration table that the fits group by: never empty."""


def check_table(name: str, kind: str, df: pd.DataFrame) -> None:
    """Raise TraceError naming ``name``, the line and the column of the first bad cell.

    ``kind`` is the table's format (:func:`detect`); see :data:`TABLE_NUMBERS` and
    :data:`TABLE_TEXT` for what is checked. Line numbers count the header as line 1.
    """
    if df.empty:
        raise TraceError(f"{name}: no rows")
    for c in TABLE_TEXT.get(kind, ()):
        if c not in df.columns:
            raise TraceError(f"{name}: missing column {c}")
        bad = df[c].isna().to_numpy()
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise TraceError(f"{name} line {line}: no value in column {c} (a truncated file?)")
    for c in TABLE_NUMBERS.get(kind, ()):
        if c not in df.columns:
            raise TraceError(f"{name}: missing column {c}")
        x = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(x) | (x < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = df[c].iloc[i]
            what = "no value" if pd.isna(value) else f"{value!r} is not a finite number >= 0"
            raise TraceError(f"{name} line {i + 2}: {what} in column {c} (a truncated file?)")


def read_table(path: str | Path) -> pd.DataFrame:
    """A calibration table (CSV, possibly gzip-compressed), checked when its format is known.

    A table :func:`detect` recognises is checked by :func:`check_table`; TraceError names
    the file and the first problem.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as e:
        raise TraceError(f"cannot read {p.name} as CSV: {e}") from None
    kind = detect(p)
    if kind in TABLE_NUMBERS:
        check_table(p.name, kind, df)
    return df


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON document (``published_aggregates.json``)."""
    p = Path(path)
    opener: Any = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        raise TraceError(f"cannot read {p.name} as JSON: {e}") from None
    if not isinstance(data, dict):
        raise TraceError(f"{p.name}: expected a JSON object")
    return data
