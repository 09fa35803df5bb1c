"""Trace replay as a segment's demand: exporting a replayed trace gives back the trace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.scenario.loading import load_scenario, validate_data
from sim.traces.readers import read_trace
from sim.traces.stats import request_stats
from sim.world.build import build

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "data" / "traces"
CODE = TRACES / "azure2023_code_calib.csv.gz"
MOONCAKE = TRACES / "mooncake_conversation_calib.jsonl.gz"


def _scenario(tmp_path: Path, replay: dict, subscribers: int = 50) -> Path:
    d = small_dict(horizon_months=1)
    d["outputs"] = {"ledger": False, "plots": False}
    d["segments"][1] = {
        "name": "replayed",
        "plans": ["pro"],
        "initial_subscribers": subscribers,
        "replay": replay,
        "cache_hit_share": 0.5,
        "model_preference": {"big": 0.5, "small": 0.5},
        "value_per_mtok": 4.0,
        "churn_intercept": -30.0,
    }
    d["segments"][0]["initial_subscribers"] = 1  # the synthetic chat segment: nearly silent
    d["segments"][0]["acquisition"] = {"model": "constant", "per_month": 0}
    d["segments"][0]["sessions_per_day"] = 0.0
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _export(tmp_path: Path, scenario: Path, window: str) -> pd.DataFrame:
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out), "-q", "--export-requests", window]) == 0
    return pd.read_csv(out / "requests_azure.csv")


def test_replayed_azure_trace_exports_back_with_its_statistics(tmp_path: Path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / CODE.name).write_bytes(CODE.read_bytes())
    s = _scenario(tmp_path, {"file": f"traces/{CODE.name}", "format": "azure"})  # relative
    az = _export(tmp_path, s, "2")
    tr = read_trace(CODE)
    assert len(az) == len(tr)
    np.testing.assert_allclose(az["TIMESTAMP"].to_numpy(), tr.t, atol=2e-6)  # to the us
    np.testing.assert_array_equal(np.sort(az["ContextTokens"]), np.sort(tr.input))
    real = request_stats(tr.t, tr.input, tr.output)
    sim = request_stats(az["TIMESTAMP"], az["ContextTokens"], az["GeneratedTokens"])
    for k in ("iat_cv", "count_cv_60s", "idc_60s", "peak_to_mean_1min"):
        assert sim["arrivals"][k] == pytest.approx(real["arrivals"][k], rel=1e-4), k
    for k in ("mean", "p50", "p90", "p99"):
        assert sim["input_tokens"][k] == real["input_tokens"][k]
        assert sim["output_tokens"][k] == real["output_tokens"][k]
    assert sim["out_in_ratio_of_sums"] == pytest.approx(real["out_in_ratio_of_sums"])


def test_a_relative_replay_file_survives_copies_of_the_scenario(tmp_path: Path, monkeypatch):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / CODE.name).write_bytes(CODE.read_bytes())
    s = load_scenario(_scenario(tmp_path, {"file": f"traces/{CODE.name}", "format": "azure"}))
    monkeypatch.chdir(ROOT)  # elsewhere than the scenario's folder
    copy = validate_data(s.model_dump(mode="json"))  # as sweeps and run folders copy it
    assert build(copy).seg.replay[1] is not None
    assert Path(copy.segments[1].replay.file).is_absolute()  # type: ignore[union-attr]


def test_replay_repeats_every_day_at_the_shifted_time_of_day(tmp_path: Path):
    s = _scenario(tmp_path, {"file": str(MOONCAKE), "format": "mooncake", "shift_s": 36000})
    az = _export(tmp_path, s, "0:2")
    tr = read_trace(MOONCAKE)
    assert len(az) == 2 * len(tr)
    day0 = az[az["TIMESTAMP"] < 86400]["TIMESTAMP"].to_numpy()
    day1 = az[az["TIMESTAMP"] >= 86400]["TIMESTAMP"].to_numpy()
    np.testing.assert_allclose(day0, tr.t + 36000, atol=2e-6)
    np.testing.assert_allclose(day1, tr.t + 36000 + 86400, atol=2e-6)
    out = tmp_path / "run"
    lines = (out / "requests_mooncake.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["input_length"] in set(tr.input[tr.t == tr.t[0]].tolist())


def test_replay_goes_to_the_segments_subscribers_and_counts_in_the_kpis(tmp_path: Path):
    s = _scenario(tmp_path, {"file": str(CODE), "format": "azure"}, subscribers=5)
    out = tmp_path / "run"
    assert main(["run", str(s), "--out", str(out), "-q"]) == 0
    m = pd.read_csv(out / "monthly_by_plan_segment.csv")
    rep = m[m["segment"] == "replayed"]
    # 30 days of the 7,000-request trace (a few requests of the chat subscriber aside)
    assert rep.filter(like="requests").sum().max() >= 30 * 7000


def test_unreadable_replay_file_is_a_scenario_error_naming_the_field(tmp_path: Path, capsys):
    s = _scenario(tmp_path, {"file": "no-such-trace.csv", "format": "azure"})
    assert main(["validate", str(s)]) == 2
    err = capsys.readouterr().err
    assert "segments[1].replay.file: cannot read" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,Context\n1,2\n")
    s = _scenario(tmp_path, {"file": str(bad), "format": "azure"})
    assert main(["validate", str(s)]) == 2
    assert "segments[1].replay.file: bad.csv: missing column(s) ContextTokens" in (
        capsys.readouterr().err
    )
