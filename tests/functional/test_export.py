"""Request-trace export: Azure CSV and Mooncake JSONL of a window of simulated requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from support.scenarios import small_dict

from sim.cli import main


def _write(tmp_path: Path, **over) -> Path:
    p = tmp_path / "s.yaml"
    d = small_dict(**over)
    d["outputs"] = {"ledger": False, "plots": False}
    p.write_text(yaml.safe_dump(d))
    return p


def test_export_of_the_whole_horizon_holds_every_request(tmp_path: Path):
    s = _write(tmp_path, horizon_months=1)
    out = tmp_path / "run"
    assert main(["run", str(s), "--out", str(out), "-q", "--export-requests", "0:30"]) == 0
    az = pd.read_csv(out / "requests_azure.csv")
    assert list(az.columns) == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
    kpis = pd.read_csv(out / "kpis_by_replication.csv")
    assert len(az) == int(kpis["requests"].iloc[0])  # refused requests were requested too
    assert az["TIMESTAMP"].is_monotonic_increasing
    assert (az["ContextTokens"] >= 1).all()
    assert (az["GeneratedTokens"] >= 1).all()


def test_one_day_window_in_both_formats(tmp_path: Path):
    s = _write(tmp_path, horizon_months=1)
    out = tmp_path / "run"
    assert main(["run", str(s), "--out", str(out), "-q", "--export-requests", "3"]) == 0
    az = pd.read_csv(out / "requests_azure.csv")
    assert az["TIMESTAMP"].min() >= 0
    assert az["TIMESTAMP"].max() < 86400
    lines = (out / "requests_mooncake.jsonl").read_text().splitlines()
    mc = pd.DataFrame([json.loads(x) for x in lines])
    assert list(mc.columns) == ["timestamp", "input_length", "output_length"]
    assert len(mc) == len(az)
    np.testing.assert_allclose(mc["timestamp"], az["TIMESTAMP"] * 1000, atol=1.0)  # ms
    np.testing.assert_array_equal(mc["input_length"], az["ContextTokens"])
    # the chat segment dominates: lognormal(800, 1.0) has mean 800 e^0.5 ~ 1,319 tokens; the
    # coder segment (3,000, 1.0) pulls the mix above it
    assert 1_000 < az["ContextTokens"].mean() < 3_000


def test_export_window_past_the_horizon_is_refused(tmp_path: Path, capsys):
    s = _write(tmp_path, horizon_months=1)
    out = tmp_path / "run"
    assert main(["run", str(s), "--out", str(out), "-q", "--export-requests", "30"]) == 2
    assert not out.exists()
    assert "past the horizon" in capsys.readouterr().err
    assert main(["run", str(s), "--out", str(out), "-q", "--export-requests", "x:1"]) == 2
