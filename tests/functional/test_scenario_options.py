"""Scenario options on the commands: --set, --demand-scale, --horizon-months; pool capacity."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main, parser
from sim.scenario.adjust import adjust_scenario
from sim.scenario.loading import load_scenario, validate_data

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ("--set", "--demand-scale", "--horizon-months")
PRICE = "plans.lite.price_per_month"


def _scenario_file(d: Path, **top) -> Path:
    s = small_dict(horizon_months=2, **top)
    s["outputs"] = {"ledger": False, "plots": False}
    f = d / "small.yaml"
    f.write_text(yaml.safe_dump(s, sort_keys=False))
    return f


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _run(f: Path, out: Path, *options: str) -> dict:
    assert main(["run", str(f), "--out", str(out), "-q", "--no-plots", *options]) == 0
    return json.loads((out / "manifest.json").read_text())


def test_run_records_the_adjusted_scenario_and_demand_doubles(tmp_path: Path):
    f = _scenario_file(tmp_path)
    common = ["--horizon-months", "1", "--set", f"{PRICE}=12.5"]
    one = _run(f, tmp_path / "one", *common)
    two = _run(f, tmp_path / "two", "--demand-scale", "2", *common)
    rec = yaml.safe_load((tmp_path / "two" / "scenario.yaml").read_text())
    assert rec["horizon_months"] == 1
    assert rec["plans"][0]["price_per_month"] == 12.5
    chat, coder = rec["segments"]
    assert (chat["initial_subscribers"], chat["acquisition"]["market_size"]) == (600, 1200)
    assert (coder["initial_subscribers"], coder["acquisition"]["per_month"]) == (120, 20)
    # the manifest identifies the adjusted scenario, not the file's
    assert two["scenario_sha256"] == validate_data(rec).digest()
    assert one["scenario_sha256"] != two["scenario_sha256"]
    assert len(pd.read_csv(tmp_path / "two" / "monthly.csv")["month"].unique()) == 1
    ratio = two["requests_simulated"] / one["requests_simulated"]
    assert 1.8 < ratio < 2.2


def test_demand_scale_of_one_segment_leaves_the_other(tmp_path: Path):
    f = _scenario_file(tmp_path)
    _run(f, tmp_path / "o", "--horizon-months", "1", "--demand-scale", "coder=3")
    chat, coder = yaml.safe_load((tmp_path / "o" / "scenario.yaml").read_text())["segments"]
    assert (chat["initial_subscribers"], chat["acquisition"]["market_size"]) == (300, 600)
    assert (coder["initial_subscribers"], coder["acquisition"]["per_month"]) == (180, 30)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--demand-scale", "0"], "--demand-scale"),
        (["--demand-scale", "-1"], "--demand-scale"),
        (["--demand-scale", "nan"], "--demand-scale"),
        (["--demand-scale", "inf"], "--demand-scale"),
        (["--demand-scale", "abc"], "--demand-scale"),
        (["--demand-scale", "nosuchsegment=2"], "--demand-scale"),
        (["--horizon-months", "0"], "--horizon-months"),
        (["--horizon-months", "abc"], "--horizon-months"),
        (["--set", "nosuch.path=1"], "--set"),
        (["--set", f"{PRICE}=-1"], "--set"),
    ],
)
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_options_exit_2_naming_the_option_and_write_nothing(
    command: str, options: list[str], named: str, tmp_path: Path, monkeypatch, capsys
):
    f = _scenario_file(tmp_path, sweep={"parameters": {PRICE: [9.9, 19.9]}})
    monkeypatch.chdir(tmp_path)  # the default output folder would land here
    before = _listing(tmp_path)
    assert main([command, str(f), "-q", *options]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert options[1].split("=")[0] in err
    assert _listing(tmp_path) == before


def test_sweep_applies_a_single_value_set_to_every_point(tmp_path: Path):
    f = _scenario_file(tmp_path)
    out = tmp_path / "sweep"
    argv = ["sweep", str(f), "--out", str(out), "-q", "-r", "1", "--workers", "1"]
    argv += ["--set", f"{PRICE}=12.5", "--set", "plans.pro.price_per_month=29.9,49.9"]
    argv += ["--horizon-months", "1", "--demand-scale", "chat=2"]
    assert main(argv) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert [p["path"] for p in manifest["parameters"]] == ["plans.pro.price_per_month"]
    base = adjust_scenario(
        load_scenario(f), sets={PRICE: 12.5}, demand_scale={"chat": 2.0}, horizon_months=1
    )
    assert manifest["scenario_sha256"] == base.digest()
    assert len(manifest["points"]) == 2
    pros = []
    for p in manifest["points"]:
        rec = yaml.safe_load((out / "points" / p["point"] / "scenario.yaml").read_text())
        assert rec["plans"][0]["price_per_month"] == 12.5
        assert rec["horizon_months"] == 1
        assert rec["segments"][0]["initial_subscribers"] == 600
        assert rec["segments"][1]["initial_subscribers"] == 60
        pros.append(rec["plans"][1]["price_per_month"])
    assert pros == [29.9, 49.9]
    assert list(pd.read_csv(out / "points.csv")["point"]) == ["p000", "p001"]


def test_validate_refuses_a_pool_under_one_replica_and_accepts_zero(tmp_path: Path, capsys):
    d = small_dict()
    d["catalog"]["models"][0]["serving"][0]["gpus_per_replica"] = 8
    d["cluster"]["pools"][0].update(gpus=4, schedule=[{"month": 1, "gpus": 2}])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(d))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cluster.pools[0].gpus: 4 GPUs is less than one replica of big on h800 (8 GPUs)" in err
    assert "cluster.pools[0].schedule[0].gpus: 2 GPUs" in err
    d["cluster"]["pools"][0].update(gpus=0, schedule=[{"month": 1, "gpus": 8}])
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(d))
    assert main(["validate", str(ok)]) == 0


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_run_and_sweep_take_the_scenario_options_and_the_docs_name_them(command: str):
    sub = next(a for a in parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices[command]._actions for s in a.option_strings}
    assert set(OPTIONS) <= flags
    for doc in ("README.md", "docs/experiments.md"):
        text = (ROOT / doc).read_text()
        assert all(o in text for o in OPTIONS), doc
