"""The ledger on disk (issue 13 point 6): exact narrow types, ``--ledger full|sample|none``.

The full ledger must read back exactly as the engine held it in memory; a sample must hold
whole subscribers (every month of each) and about the stated share of them; ``none`` writes no
file and the report still builds and says so; bad option values exit 2 naming the option.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from support.scenarios import small_dict, small_scenario

from sim.cli import main
from sim.experiments.runner import run_scenario
from sim.report.folders import RunFolder
from sim.report.pages import run_report
from sim.results.ledger_file import (
    KEY_MODE,
    KEY_ROWS,
    KEY_ROWS_SIMULATED,
    KEY_SAMPLE_FRACTION,
    encode_ledger,
    read_ledger,
    sample_subscribers,
    write_ledger,
)
from sim.results.ledger_policy import (
    LEDGER_FULL,
    LEDGER_NONE,
    LEDGER_SAMPLE,
    LedgerPolicy,
    LedgerPolicyError,
)
from sim.results.run_folder import (
    KEY_FILES,
    KEY_LEDGER,
    LEDGER,
    check_run_folder,
    read_manifest,
    write_run,
)
from sim.results.tables import RunResult

SEED = 11
BINOMIAL_Z = 5.0
"""Sampled counts must lie within this many binomial standard deviations of n x fraction."""


@pytest.fixture(scope="module")
def result() -> RunResult:
    return run_scenario(small_scenario(replications=2), seed=SEED, replications=2)


def _bits_equal(a: pd.Series, b: pd.Series) -> bool:
    """Same values bit for bit (floats by their IEEE bits, so -0.0 != 0.0 and NaN == NaN)."""
    x, y = a.to_numpy(), b.to_numpy()
    if x.dtype.kind == "f" and y.dtype.kind == "f":
        return bool(
            (x.astype(np.float64).view(np.int64) == y.astype(np.float64).view(np.int64)).all()
        )
    return bool((x == y).all())


def test_the_full_ledger_reads_back_exactly_as_in_memory(result: RunResult, tmp_path: Path):
    out = write_run(result, tmp_path / "run", SEED, plots=False)
    led = result.ledger()
    back = read_ledger(out / LEDGER)
    pd.testing.assert_frame_equal(back, led, check_exact=True)
    for col in led.columns:  # bit for bit, signed zeros included
        assert _bits_equal(back[col], led[col]), col
    # plain pandas gets the same values in the narrower stored types
    plain = pd.read_parquet(out / LEDGER)
    assert list(plain.columns) == list(led.columns)
    for col in led.columns:
        if isinstance(led[col].dtype, pd.CategoricalDtype):
            assert (plain[col].astype(str) == led[col].astype(str)).all(), col
        else:
            assert (plain[col].to_numpy() == led[col].to_numpy()).all(), col
    # only the asked columns are read, in their original types
    some = read_ledger(out / LEDGER, ["plan", "used_units"])
    assert list(some.columns) == ["plan", "used_units"]
    pd.testing.assert_frame_equal(some, led[["plan", "used_units"]], check_exact=True)
    # the report's columns, in the stored types: the same values
    report = RunFolder.open(out).ledger
    assert report is not None
    assert len(report.columns) < len(led.columns)
    pd.testing.assert_frame_equal(report, led[report.columns], check_exact=True, check_dtype=False)
    assert str(report["tokens|big|output"].dtype) in ("int8", "int16", "int32")
    entry = read_manifest(out)[KEY_LEDGER]
    assert entry == {
        KEY_MODE: LEDGER_FULL,
        KEY_SAMPLE_FRACTION: 1.0,
        KEY_ROWS: len(led),
        KEY_ROWS_SIMULATED: len(led),
    }


def test_the_file_is_narrow_dictionary_encoded_and_zstd(result: RunResult, tmp_path: Path):
    out = write_run(result, tmp_path / "run", SEED, plots=False)
    f = pq.ParquetFile(out / LEDGER)
    schema = f.schema_arrow
    for col in ("plan", "segment", "status"):
        assert str(schema.field(col).type).startswith("dictionary<values=string"), col
    for col in ("replication", "close_day", "requests", "tokens_served", "used_units"):
        assert str(schema.field(col).type) in ("int8", "int16", "int32"), col
    assert str(schema.field("fee").type) == "double"  # 9.9 is not a float32
    codecs = {f.metadata.row_group(0).column(i).compression for i in range(schema.__len__())}
    assert codecs == {"ZSTD"}
    # smaller than pandas' default encoding of the same frame
    default = tmp_path / "default.parquet"
    result.ledger().to_parquet(default, index=False)
    assert (out / LEDGER).stat().st_size < default.stat().st_size


def test_encoding_never_rounds_a_value(tmp_path: Path):
    n = 6
    frame = pd.DataFrame(
        {
            "whole": [0.0, 1.0, 2.0**40, -3.0, 7.0, 1e6],  # int64 holds them; int32 does not
            "negzero": [0.0, -0.0, 1.0, 2.0, 3.0, 4.0],  # an integer would lose -0.0's sign
            "halves": [0.5, 1.25, -2.75, np.nan, 0.0, 3.0],  # exact in float32
            "money": [9.9, 39.9, 0.1, 0.0, 1.0, 2.0],  # not exact in float32
            "huge": [1e300, 0.0, 1.0, 2.0, 3.0, 4.0],
            "inf": [np.inf, 0.0, 1.0, 2.0, 3.0, 4.0],
            "small_int": np.arange(n, dtype=np.int64),
            "big_int": np.array([0, 2**40, -(2**40), 1, 2, 3], dtype=np.int64),
            "flag": [True, False] * 3,
            "plan": pd.Categorical.from_codes([0, 1, 0, 1, 0, 0], categories=["a", "b", "unused"]),
        }
    )
    p = tmp_path / "t.parquet"
    pq.write_table(encode_ledger(frame, LedgerPolicy()), p)
    types = {f.name: str(f.type) for f in pq.read_schema(p)}
    assert types["whole"] == "int64"
    assert types["negzero"] == "float"  # float32 keeps the sign
    assert types["halves"] == "float"
    assert types["money"] == "double"
    assert types["huge"] == "double"
    assert types["inf"] == "float"  # infinity is exact in float32
    assert types["small_int"] == "int8"
    assert types["big_int"] == "int64"
    back = read_ledger(p)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    for col in frame.columns:
        assert _bits_equal(back[col], frame[col]), col
    assert list(back["plan"].cat.categories) == ["a", "b", "unused"]


def test_a_sample_holds_whole_subscribers_and_the_stated_share(result: RunResult, tmp_path: Path):
    fraction = 0.3
    out = write_run(
        result, tmp_path / "run", SEED, plots=False, ledger=LedgerPolicy(LEDGER_SAMPLE, fraction)
    )
    full = result.ledger()
    sample = read_ledger(out / LEDGER)
    key = ["replication", "subscriber"]
    kept = sample[key].drop_duplicates()
    # every month of each sampled subscriber, values unchanged, in ledger order
    expected = full.merge(kept, on=key, how="inner")
    pd.testing.assert_frame_equal(sample, expected, check_exact=True)
    # the share of subscribers kept, per replication, within binomial bounds
    for rep, g in full.groupby("replication"):
        n = g["subscriber"].nunique()
        k = kept[kept["replication"] == rep]["subscriber"].nunique()
        sd = math.sqrt(n * fraction * (1 - fraction))
        assert n > 100, "too few subscribers for the bound to mean anything"
        assert abs(k - n * fraction) <= BINOMIAL_Z * sd, (rep, n, k)
    entry = read_manifest(out)[KEY_LEDGER]
    assert entry[KEY_MODE] == LEDGER_SAMPLE
    assert entry[KEY_SAMPLE_FRACTION] == fraction
    assert entry[KEY_ROWS] == len(sample) < entry[KEY_ROWS_SIMULATED] == len(full)
    # seeded: the same seed keeps the same subscribers, another seed others
    again = sample_subscribers(full, fraction, SEED)
    pd.testing.assert_frame_equal(again, sample, check_exact=True)
    other = sample_subscribers(full, fraction, SEED + 1)
    assert not other[key].drop_duplicates().equals(kept)


def test_none_writes_no_ledger_and_the_report_still_builds(result: RunResult, tmp_path: Path):
    out = write_run(result, tmp_path / "run", SEED, plots=False, ledger=LedgerPolicy(LEDGER_NONE))
    assert not (out / LEDGER).exists()
    manifest = check_run_folder(out)  # complete without it
    assert LEDGER not in manifest[KEY_FILES]
    assert manifest[KEY_LEDGER][KEY_MODE] == LEDGER_NONE
    assert manifest[KEY_LEDGER][KEY_ROWS] == 0
    run = RunFolder.open(out)
    assert run.ledger is None
    assert run.ledger_mode == LEDGER_NONE
    assert main(["report", str(out), "--out", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert text.count("tokensim run --ledger none") == 2  # token mix, quota use


def test_the_report_says_its_ledger_figures_come_from_a_sample(result: RunResult, tmp_path: Path):
    full = RunFolder.open(write_run(result, tmp_path / "full", SEED, plots=False))
    policy = LedgerPolicy(LEDGER_SAMPLE, 0.25)
    sampled = RunFolder.open(write_run(result, tmp_path / "s", SEED, plots=False, ledger=policy))
    assert sampled.ledger_mode == LEDGER_SAMPLE
    assert sampled.ledger_fraction == 0.25
    assert full.ledger_mode == LEDGER_FULL
    assert full.ledger_fraction == 1.0
    text = run_report(sampled)
    assert text.count("random 25% of subscribers") == 2  # token mix, quota use
    assert "From a sample" not in run_report(full)


def test_a_folder_without_the_manifest_entry_reads_as_before(result: RunResult, tmp_path: Path):
    out = write_run(result, tmp_path / "run", SEED, plots=False)
    m = json.loads((out / "manifest.json").read_text())
    del m[KEY_LEDGER]
    (out / "manifest.json").write_text(json.dumps(m))
    pd.DataFrame(result.ledger()).to_parquet(out / LEDGER, index=False)  # an older file
    run = RunFolder.open(out)
    assert run.ledger_mode == LEDGER_FULL
    assert run.ledger_fraction == 1.0
    assert run.ledger is not None
    assert len(run.ledger) == len(result.ledger())


def test_ledger_policy_refuses_bad_values():
    with pytest.raises(LedgerPolicyError, match="--ledger must be one of"):
        LedgerPolicy("half")
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(LedgerPolicyError, match="--ledger-fraction"):
            LedgerPolicy(LEDGER_SAMPLE, bad)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--ledger", "half"], "--ledger"),
        (["--ledger", "sample", "--ledger-fraction", "0"], "--ledger-fraction"),
        (["--ledger", "sample", "--ledger-fraction", "1.5"], "--ledger-fraction"),
        (["--ledger", "sample", "--ledger-fraction", "nan"], "--ledger-fraction"),
        (["--ledger", "sample", "--ledger-fraction", "x"], "--ledger-fraction"),
        (["--ledger-fraction", "0.5"], "--ledger-fraction needs --ledger sample"),
    ],
)
def test_bad_ledger_options_exit_2_naming_them(
    options: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(small_dict()))
    out = tmp_path / "run"
    assert main(["run", str(f), "--out", str(out), "-q", *options]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_run_ledger_sample_through_the_command_line(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(small_dict(horizon_months=1)))
    out = tmp_path / "run"
    code = main(
        ["run", str(f), "--out", str(out), "-q", "--ledger", "sample", "--ledger-fraction", "0.5"]
    )
    assert code == 0
    entry = read_manifest(out)[KEY_LEDGER]
    assert entry[KEY_MODE] == LEDGER_SAMPLE
    assert entry[KEY_SAMPLE_FRACTION] == 0.5
    assert 0 < entry[KEY_ROWS] < entry[KEY_ROWS_SIMULATED]
    assert len(pq.read_table(out / LEDGER)) == entry[KEY_ROWS]


def test_write_ledger_with_no_rows_writes_nothing(tmp_path: Path):
    entry = write_ledger(pd.DataFrame(), tmp_path / LEDGER, LedgerPolicy(), SEED)
    assert entry[KEY_MODE] == LEDGER_NONE
    assert entry[KEY_ROWS] == 0
    assert not (tmp_path / LEDGER).exists()
