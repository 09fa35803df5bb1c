"""The subscriber-month ledger on disk: what is kept, how it is encoded, how it is read back.

The ledger (one row per replication x subscriber x billing month, see
``sim.engine.billing``) is by far the largest file of a run folder. It is written

* with the narrowest **exact** type per column: integer columns as the smallest signed integer
  that holds their range; float columns whose values are all whole numbers (counts of
  requests and tokens, units used) as integers; other float columns as float32 only when every
  value survives the round trip to float32 bit for bit, else float64 (money such as 9.9 stays
  float64). No value is ever rounded: :func:`encode_ledger` checks each column and keeps the
  original type when in doubt;
* with plan, segment and status dictionary-encoded (pandas categoricals), and the wide integer
  columns (token and request counts, subscriber ids: near-random values a dictionary cannot
  shorten) delta-encoded instead (:data:`LEDGER_DELTA_MIN_BITS`);
* zstd-compressed (:data:`LEDGER_COMPRESSION`) in row groups of :data:`LEDGER_ROW_GROUP_ROWS`.

Only long-standard Parquet encodings are used (dictionary, DELTA_BINARY_PACKED, zstd), which
pyarrow 15 (the oldest the project supports) and the common Parquet readers read. Rows keep
the engine's order.

The original pandas types and categories are stored in the file's schema metadata
(:data:`LEDGER_METADATA_KEY`), so :func:`read_ledger` gives back exactly the frame
``RunResult.ledger()`` held in memory, and reads only the columns asked for. Plain
``pd.read_parquet`` gives the same values in the narrower types.

What is kept is the :class:`LedgerPolicy` (``tokensim run --ledger full|sample|none``): every
row, a seeded random sample of subscribers with every month of each, or nothing. The monthly
tables hold every aggregate either way; only per-subscriber distributions come from the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from sim.results.ledger_policy import (
    LEDGER_NONE,
    LEDGER_SAMPLE,
    LedgerPolicy,
)

LEDGER_COMPRESSION = "zstd"
"""Parquet compression codec of the ledger."""
LEDGER_COMPRESSION_LEVEL = 3
"""zstd level (1 fastest .. 22 smallest); on the baseline level 9 made the file 0.9% smaller
and level 1 0.5% larger."""
LEDGER_ROW_GROUP_ROWS = 1 << 20
"""Rows per Parquet row group (1,048,576): on the baseline, groups of 2**18 rows made the file
2% larger; a reader holding one group at a time still stays far below the whole ledger."""
LEDGER_DELTA_MIN_BITS = 32
"""Integer columns stored at least this wide (int32, int64) are written DELTA_BINARY_PACKED
without a dictionary: on the baseline the file is 11% smaller than with dictionaries (88.7 to
78.7 MB). BYTE_STREAM_SPLIT saved 13% more, but reading it for integers needs pyarrow >= 16
(the project supports 15) and other readers only recently learned it."""
LEDGER_METADATA_KEY = b"tokensim.ledger"
"""Schema metadata key of the ledger file: JSON with the original pandas types and categories,
and the policy (mode and sample fraction) that wrote it."""
SAMPLE_STREAM = 0x1ED6E5
"""Mixed with the run seed to seed the subscriber sample, apart from the simulation's streams."""

KEY_MODE = "mode"
"""Key of the manifest's ledger entry (and the file's metadata): the mode that was written."""
KEY_SAMPLE_FRACTION = "sample_fraction"
"""Key of the manifest's ledger entry: share of subscribers kept (1 full, 0 none)."""
KEY_ROWS = "rows"
"""Key of the manifest's ledger entry: rows written (subscriber-months)."""
KEY_ROWS_SIMULATED = "rows_simulated"
"""Key of the manifest's ledger entry: rows the engine recorded, before any sampling."""

_INT_TYPES = (np.int8, np.int16, np.int32, np.int64)
"""Signed integer types, narrowest first, that integer columns are stored as."""


# ---------------------------------------------------------------------- sampling


def sample_subscribers(ledger: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The rows of a random ``fraction`` of subscribers, every month of each, in ledger order.

    Each subscriber id is kept independently with probability ``fraction`` (a Bernoulli
    sample, so the count kept is binomial), drawn from a stream seeded by ``seed`` and
    :data:`SAMPLE_STREAM`: the same seed keeps the same ids, in every replication and run.
    """
    if fraction >= 1.0 or ledger.empty:
        return ledger
    ids = ledger["subscriber"].to_numpy()
    u = np.random.default_rng([SAMPLE_STREAM, int(seed)]).random(int(ids.max()) + 1)
    return ledger[u[ids] < fraction].reset_index(drop=True)


# ---------------------------------------------------------------------- encoding


def _narrow_int(x: NDArray[Any]) -> NDArray[Any]:
    """``x`` (whole numbers) as the narrowest signed integer type holding its range."""
    lo, hi = (int(x.min()), int(x.max())) if len(x) else (0, 0)
    for t in _INT_TYPES:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return x.astype(t)
    return x.astype(np.int64)


def _narrow_float(x: NDArray[np.float64]) -> NDArray[Any]:
    """``x`` as integers when every value is a whole number, else float32 when exact, else as is.

    Whole numbers need no NaN, no infinity and no negative zero (its sign would be lost), and
    must fit int64; float32 needs every value back bit for bit (NaN stays NaN).
    """
    finite = np.isfinite(x).all()
    if (
        finite
        and (np.abs(x) < 2.0**63).all()
        and (x == np.floor(x)).all()
        and not np.signbit(x[x == 0]).any()
    ):
        return _narrow_int(x.astype(np.int64))
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf, refused below
        f32 = x.astype(np.float32)
    back = f32.astype(np.float64)
    same = (back.view(np.int64) == x.view(np.int64)) | (np.isnan(back) & np.isnan(x))
    return f32 if same.all() else x


def encode_ledger(ledger: pd.DataFrame, policy: LedgerPolicy) -> pa.Table:
    """The ledger as an Arrow table in its narrowest exact types, restorable by :func:`read_ledger`.

    Categorical columns stay dictionary-encoded; the original pandas types, the categories and
    the policy are stored in the schema metadata under :data:`LEDGER_METADATA_KEY`.
    """
    cols: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    categories: dict[str, list[str]] = {}
    for name in ledger.columns:
        s = ledger[name]
        dtypes[name] = str(s.dtype)
        if isinstance(s.dtype, pd.CategoricalDtype):
            categories[name] = [str(c) for c in s.cat.categories]
            cols[name] = pd.Categorical.from_codes(
                _narrow_int(s.cat.codes.to_numpy()), categories=categories[name]
            )
        elif s.dtype.kind in "iu":
            cols[name] = _narrow_int(s.to_numpy())
        elif s.dtype == np.float64:
            cols[name] = _narrow_float(s.to_numpy())
        else:
            cols[name] = s.to_numpy()
    table = pa.Table.from_pandas(pd.DataFrame(cols), preserve_index=False)
    meta = {
        "dtypes": dtypes,
        "categories": categories,
        KEY_MODE: policy.mode,
        KEY_SAMPLE_FRACTION: policy.kept_fraction,
    }
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), LEDGER_METADATA_KEY: json.dumps(meta).encode()}
    )


def write_ledger(
    ledger: pd.DataFrame, path: Path, policy: LedgerPolicy, seed: int
) -> dict[str, Any]:
    """Write what ``policy`` keeps of ``ledger`` to ``path``; return the manifest's ledger entry.

    Nothing is written when the policy is :data:`LEDGER_NONE` or no row is left (the entry then
    says mode none). ``seed`` seeds the subscriber sample (:func:`sample_subscribers`).
    """
    rows_simulated = len(ledger)
    kept = (
        sample_subscribers(ledger, policy.fraction, seed)
        if policy.mode == LEDGER_SAMPLE
        else ledger
    )
    if policy.mode == LEDGER_NONE or kept.empty:
        policy = LedgerPolicy(LEDGER_NONE)
        kept = kept.iloc[:0]
    else:
        table = encode_ledger(kept, policy)
        delta = [
            f.name
            for f in table.schema
            if pa.types.is_integer(f.type) and f.type.bit_width >= LEDGER_DELTA_MIN_BITS
        ]
        pq.write_table(
            table,
            path,
            compression=LEDGER_COMPRESSION,
            compression_level=LEDGER_COMPRESSION_LEVEL,
            row_group_size=LEDGER_ROW_GROUP_ROWS,
            use_dictionary=[c for c in table.column_names if c not in delta],
            column_encoding=dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
        )
    return {
        KEY_MODE: policy.mode,
        KEY_SAMPLE_FRACTION: policy.kept_fraction,
        KEY_ROWS: len(kept),
        KEY_ROWS_SIMULATED: rows_simulated,
    }


# ---------------------------------------------------------------------- reading


def ledger_metadata(path: Path) -> dict[str, Any]:
    """The ledger file's metadata (:data:`LEDGER_METADATA_KEY`); empty for an older file."""
    raw = (pq.read_schema(path).metadata or {}).get(LEDGER_METADATA_KEY)
    meta = json.loads(raw) if raw else {}
    return meta if isinstance(meta, dict) else {}


def read_ledger(
    path: Path, columns: Sequence[str] | None = None, original_types: bool = True
) -> pd.DataFrame:
    """The ledger file at ``path``, only ``columns`` (all when None), in its original types.

    Reads only the asked columns from disk. A file written by :func:`write_ledger` comes back
    with the pandas types and categories the engine's frame had; an older file as stored.
    ``original_types=False`` keeps the stored types (the same values in less memory: whole
    numbers as integers), categories aside, which are restored either way.
    """
    meta = ledger_metadata(path)
    df = pq.read_table(path, columns=None if columns is None else list(columns)).to_pandas()
    if not original_types:
        meta = {"categories": meta.get("categories", {})}
    dtypes: dict[str, str] = meta.get("dtypes", {})
    categories: dict[str, list[str]] = meta.get("categories", {})
    for name in df.columns:
        if name in categories:
            df[name] = pd.Categorical(df[name], categories=categories[name])
        elif name in dtypes and str(df[name].dtype) != dtypes[name]:
            df[name] = df[name].astype(dtypes[name])
    return df
