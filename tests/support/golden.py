"""Golden run folders: a content digest per table and column, and a diff that names them.

A run folder's tables are reduced to one short SHA-256 per (file, column) over the exact
stored values (CSV text as written, Parquet values as stored, JSON leaves as written), plus the
row count and column order of each table. Timings and anything that names the machine
(wall and engine seconds, creation time, absolute paths) are left out, so two runs of the same
scenario and seed digest the same on any checkout. :func:`diff_digests` says which table and
which column differ, so a failing golden test points at the change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from sim.results.run_folder import (
    KEY_CREATED_UTC,
    KEY_ENGINE_S,
    KEY_SCENARIO_SHA256,
    KEY_VERSION,
    KEY_WALL_S,
    MANIFEST,
)

DIGEST_CHARS = 16
"""Hex characters kept of each SHA-256 (64 bits: collisions are not a concern here)."""

VOLATILE_MANIFEST_KEYS = frozenset(
    {KEY_WALL_S, KEY_ENGINE_S, KEY_CREATED_UTC, KEY_VERSION, KEY_SCENARIO_SHA256}
)
"""Manifest keys that change without the model changing: timings, the clock, the package
version, and the scenario digest (it covers absolute trace paths; scenario.yaml is digested
with the checkout's root replaced instead)."""

ROOT = Path(__file__).resolve().parents[2]
"""The checkout's root: replaced by ``<root>`` in text digests so they hold on any clone."""

Digests = dict[str, dict[str, str]]


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def _frame(frame: pd.DataFrame) -> dict[str, str]:
    """Column order, row count, and each column's values as text, one per line."""
    out = {"__columns__": _h("\n".join(frame.columns).encode()), "__rows__": str(len(frame))}
    for col in frame.columns:
        out[col] = _h("\n".join(map(str, frame[col].tolist())).encode())
    return out


def _csv(path: Path) -> dict[str, str]:
    """CSV cells exactly as written (read as text, no NA parsing)."""
    return _frame(pd.read_csv(path, dtype=str, keep_default_na=False))


def _parquet(path: Path) -> dict[str, str]:
    table = pq.read_table(path)
    out = {"__columns__": _h(str(table.schema).encode()), "__rows__": str(table.num_rows)}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        out[name] = _h(json.dumps(values, default=str).encode())
    return out


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = _h(json.dumps(value).encode())


def _json(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    if path.name == MANIFEST:
        data = {k: v for k, v in data.items() if k not in VOLATILE_MANIFEST_KEYS}
    out: dict[str, str] = {}
    _flatten("", data, out)
    return out


def _text(path: Path) -> dict[str, str]:
    text = path.read_text().replace(str(ROOT), "<root>")
    return {"__text__": _h(text.encode())}


def _jsonl(path: Path) -> dict[str, str]:
    """JSON lines as a table: one column per key."""
    return _frame(pd.read_json(path, lines=True, dtype=False))


READERS = {
    ".csv": _csv,
    ".parquet": _parquet,
    ".json": _json,
    ".jsonl": _jsonl,
    ".yaml": _text,
}


def digest_run_folder(folder: Path) -> Digests:
    """Per file of a run folder (by relative path), per column: a digest of its stored values.

    Plots (PNG) are left out: their bytes depend on the matplotlib build, and the tables they
    draw are digested.
    """
    folder = Path(folder)
    out: Digests = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in READERS:
            out[f.relative_to(folder).as_posix()] = READERS[f.suffix](f)
    return out


def diff_digests(expected: Digests, actual: Digests) -> list[str]:
    """Lines naming every table and column whose digest differs (empty when they agree)."""
    lines: list[str] = []
    for table in sorted(set(expected) | set(actual)):
        if table not in actual:
            lines.append(f"{table}: missing from the run folder")
            continue
        if table not in expected:
            lines.append(f"{table}: new file, not in the golden digests")
            continue
        e, a = expected[table], actual[table]
        for col in sorted(set(e) | set(a)):
            if col not in a:
                lines.append(f"{table}: column {col!r} missing")
            elif col not in e:
                lines.append(f"{table}: new column {col!r}")
            elif e[col] != a[col]:
                what = "row count" if col == "__rows__" else f"column {col!r}"
                lines.append(f"{table}: {what} differs ({e[col]} -> {a[col]})")
    return lines


def load_digests(path: Path) -> Digests:
    """Digests saved by :func:`save_digests`."""
    data: Digests = json.loads(Path(path).read_text())
    return data


def save_digests(digests: Digests, path: Path) -> None:
    """Write digests as sorted, indented JSON (reviewable diffs when they change)."""
    Path(path).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
