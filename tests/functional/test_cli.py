"""The ``tokensim`` command end to end: validate, run (the run folder), schema, exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim import __version__
from sim.cli import main
from sim.results import run_folder
from sim.results.kpis import KPIS
from sim.scenario.loading import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
PLOTS = {
    "subscribers_churn.png",
    "revenue_cost_margin.png",
    "cluster_day.png",
    "latency_quality.png",
    "token_mix.png",
}
RUN_FILES = {
    "manifest.json",
    "scenario.yaml",
    "monthly.csv",
    "monthly_by_plan_segment.csv",
    "hourly_cluster.parquet",
    "latency.csv",
    "ledger.parquet",
    "kpis_by_replication.csv",
    "summary.json",
}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def listing(d: Path) -> set[str]:
    """Every path under d, relative, hidden ones included."""
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def quiet_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, out.getvalue()


# --------------------------------------------------------------------------- validate


def test_the_shipped_scenarios_exist():
    assert {p.name for p in SCENARIOS} >= {"baseline.yaml", "tpd-10k-30d.yaml"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_validate_accepts_every_shipped_scenario(path: Path, capsys: pytest.CaptureFixture):
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok:")
    assert load_scenario(path).digest()[:12] in out


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a nested key given as 'a.0.b'."""

    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = d
        for k in parents:
            node = node[int(k)] if k.isdigit() else node[k]
        node[int(last) if last.isdigit() else last] = value

    return mutate


# name -> (mutation of the small scenario, text every report must contain)
BAD: dict[str, tuple[Callable[[dict[str, Any]], None], list[str]]] = {
    "unknown_key": (_set("plans.1.quotaa", 5), ["plans[1].quotaa", "unknown key"]),
    "negative_quota": (_set("plans.1.quota.amount", -5), ["plans[1].quota.amount"]),
    "unknown_model_in_plan": (_set("plans.0.models.nope", 1.0), ["plans[0].models.nope", "nope"]),
    "preference_not_summing_to_1": (
        _set("segments.0.model_preference", {"big": 0.6, "small": 0.6}),
        ["segments[0]", "model_preference", "sum to 1"],
    ),
    "segment_with_unknown_plan": (
        _set("segments.1.plans", ["pro", "gold"]),
        ["segments[1].plans[1]", "gold"],
    ),
    "horizon_zero": (_set("horizon_months", 0), ["horizon_months"]),
}


def _bad_file(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    if case == "malformed_yaml":
        lines = yaml.safe_dump(small_dict(), sort_keys=False).splitlines()
        assert lines[3].startswith("days_per_month:")
        lines[3] = "days_per_month: 30: 31"
        p = tmp_path / "bad.yaml"
        p.write_text("\n".join(lines) + "\n")
        return p, ["line 4", "malformed YAML"]
    if case == "missing_file":
        return tmp_path / "nowhere.yaml", ["nowhere.yaml", "cannot read"]
    mutate, expected = BAD[case]
    d = small_dict()
    mutate(d)
    return write_yaml(tmp_path / "bad.yaml", d), expected


BAD_CASES = [*BAD, "malformed_yaml", "missing_file"]


@pytest.mark.parametrize("case", BAD_CASES)
@pytest.mark.parametrize("command", ["validate", "run", "run --out"])
def test_a_bad_scenario_exits_2_names_the_field_and_writes_nothing(
    case: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the default run folder would go to ./results
    path, expected = _bad_file(tmp_path, case)
    before = listing(tmp_path)
    argv = [command.split()[0], str(path)]
    if command == "run --out":
        argv += ["--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, f"{text!r} missing from stderr:\n{err}"
    assert "is not a valid scenario" in err
    assert listing(tmp_path) == before  # no results/, no --out, no staging folder


def test_bad_arguments_exit_2(tmp_path: Path, capsys):
    s = write_yaml(tmp_path / "s.yaml", small_dict())
    assert main(["run", str(s), "--replications", "0", "--out", str(tmp_path / "o")]) == 2
    assert main(["frobnicate"]) == 2
    assert not (tmp_path / "o").exists()
    capsys.readouterr()


def test_a_file_that_is_not_utf8_exits_2(tmp_path: Path, capsys):
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"name: caf\xe9\n")
    assert main(["validate", str(p)]) == 2
    assert "latin1.yaml" in capsys.readouterr().err


def test_a_negative_seed_exits_2(tmp_path: Path, capsys):
    s = write_yaml(tmp_path / "s.yaml", small_dict(horizon_months=1))
    out = tmp_path / "o"
    assert main(["run", str(s), "--seed", "-1", "--out", str(out), "--quiet"]) == 2
    assert not out.exists()


# --------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The small scenario, plots on, run with --replications 2 --seed 3 into tmp/x."""
    tmp = tmp_path_factory.mktemp("cli")
    d = small_dict()
    d["outputs"]["plots"] = True
    scenario = write_yaml(tmp / "small.yaml", d)
    out = tmp / "x"
    rc, stdout = quiet_main(["run", str(scenario), "--out", str(out), "-r", "2", "--seed", "3"])
    assert rc == 0
    return out, scenario, stdout


def test_run_prints_where_it_wrote_and_the_headline_kpis(run_dir):
    out, _, stdout = run_dir
    assert f"wrote {out}" in stdout
    assert "revenue_total" in stdout
    assert "gpu_utilisation" in stdout


def test_run_writes_every_file_and_no_staging_folder(run_dir):
    out, _, _ = run_dir
    files = listing(out)
    assert files >= RUN_FILES
    assert files >= {f"plots/{p}" for p in PLOTS}
    # nothing but the run folder beside it: staging and old folders are gone
    assert sorted(p.name for p in out.parent.iterdir()) == ["small.yaml", "x"]


def test_manifest_identifies_the_run(run_dir):
    out, scenario, _ = run_dir
    man = json.loads((out / "manifest.json").read_text())
    s = load_scenario(scenario)
    assert man["scenario"] == "small"
    assert man["scenario_sha256"] == s.digest()
    assert len(man["scenario_sha256"]) == 64
    assert man["seed"] == 3
    assert man["replications"] == 2
    assert man["version"] == __version__
    assert man["status"] == "complete"
    assert isinstance(man["wall_s"], float)
    assert man["wall_s"] > 0
    assert len(man["engine_s"]) == 2
    assert man["requests_simulated"] > 0
    assert set(man["files"]) == {p for p in listing(out) if (out / p).is_file()} - {"manifest.json"}
    # the copy of the scenario in the folder is the scenario that ran
    assert load_scenario(out / "scenario.yaml").digest() == man["scenario_sha256"]


def test_tables_hold_both_replications(run_dir):
    out, _, _ = run_dir
    months = pd.read_csv(out / "monthly.csv")
    assert sorted(set(zip(months["replication"], months["month"], strict=True))) == [
        (r, m) for r in (0, 1) for m in (0, 1)
    ]
    by_ps = pd.read_csv(out / "monthly_by_plan_segment.csv")
    assert set(by_ps["plan"]) == {"lite", "pro"}
    assert set(by_ps["segment"]) == {"chat", "coder"}
    # the two grains agree
    tot = by_ps.groupby(["replication", "month"])["requests"].sum().to_numpy()
    assert np.allclose(tot, months.sort_values(["replication", "month"])["requests"])
    hourly = pd.read_parquet(out / "hourly_cluster.parquet")
    assert len(hourly) == 2 * 60 * 24 * 2  # replications x hours x pools
    assert hourly["utilisation"].between(0, 1).all()
    latency = pd.read_csv(out / "latency.csv")
    assert len(latency) > 0
    assert set(latency["replication"]) == {0, 1}
    ledger = pd.read_parquet(out / "ledger.parquet")
    assert set(ledger["replication"]) == {0, 1}
    assert np.isclose(
        ledger.groupby("replication")["fee"].sum().to_numpy(),
        months.groupby("replication")["revenue_fees"].sum().to_numpy(),
    ).all()
    kpis = pd.read_csv(out / "kpis_by_replication.csv")
    assert kpis["replication"].tolist() == [0, 1]
    assert set(KPIS) <= set(kpis.columns)


def test_summary_gives_every_kpi_with_a_confidence_interval(run_dir):
    out, _, _ = run_dir
    summary = json.loads((out / "summary.json").read_text())
    kpis = pd.read_csv(out / "kpis_by_replication.csv")
    assert set(summary) == set(KPIS)
    for name, v in summary.items():
        assert v["replications"] == 2, name
        assert None not in (v["mean"], v["ci95_low"], v["ci95_high"]), name
        assert v["ci95_low"] <= v["mean"] <= v["ci95_high"], name
        assert np.isclose(v["mean"], kpis[name].mean()), name
    # two replications of one scenario differ, so some intervals have width
    assert summary["requests"]["ci95_high"] > summary["requests"]["ci95_low"]


def test_plots_are_real_pngs(run_dir):
    out, _, _ = run_dir
    for name in PLOTS:
        data = (out / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 10_000, f"{name} is only {len(data)} bytes"


def test_same_seed_same_tables_other_seed_other_tables(run_dir, tmp_path: Path):
    out, scenario, _ = run_dir
    again, other = tmp_path / "again", tmp_path / "other"
    args = ["--no-plots", "--quiet", "-r", "2"]
    assert main(["run", str(scenario), "--out", str(again), "--seed", "3", *args]) == 0
    assert main(["run", str(scenario), "--out", str(other), "--seed", "4", *args]) == 0
    assert not (again / "plots").exists()
    for f in (
        "monthly.csv",
        "kpis_by_replication.csv",
        "monthly_by_plan_segment.csv",
        "latency.csv",
    ):
        assert (again / f).read_bytes() == (out / f).read_bytes(), f
    assert (other / "monthly.csv").read_bytes() != (out / "monthly.csv").read_bytes()
    assert (other / "kpis_by_replication.csv").read_bytes() != (
        out / "kpis_by_replication.csv"
    ).read_bytes()
    assert json.loads((other / "manifest.json").read_text())["seed"] == 4


def test_running_again_replaces_the_folder(tmp_path: Path):
    scenario = write_yaml(tmp_path / "s.yaml", small_dict(horizon_months=1))
    out = tmp_path / "x"
    argv = ["run", str(scenario), "--out", str(out), "--quiet", "--no-plots"]
    assert main([*argv, "--seed", "1"]) == 0
    assert (out / "ledger.parquet").exists()  # the earlier run's, which the next one omits
    first = (out / "monthly.csv").read_bytes()
    assert main([*argv, "--seed", "2", "--ledger", "none"]) == 0
    assert not (out / "ledger.parquet").exists()  # replaced, not merged into
    assert (out / "monthly.csv").read_bytes() != first
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "x"]


def test_a_run_that_fails_while_writing_leaves_the_old_folder_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    scenario = write_yaml(tmp_path / "s.yaml", small_dict(horizon_months=1))
    out = tmp_path / "x"
    argv = ["run", str(scenario), "--out", str(out), "--quiet", "--no-plots"]
    assert main(argv) == 0
    before = {p: (out / p).read_bytes() for p in listing(out) if (out / p).is_file()}
    real = run_folder._write_contents

    def half_written(result, d, seed, plots, *rest):
        real(result, d, seed, plots, *rest)
        (d / "manifest.json").unlink()
        raise OSError("disk full")

    monkeypatch.setattr(run_folder, "_write_contents", half_written)
    with pytest.raises(OSError, match="disk full"):
        main([*argv, "--seed", "99"])
    after = {p: (out / p).read_bytes() for p in listing(out) if (out / p).is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "x"]  # no staging left


# --------------------------------------------------------------------------- schema


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_schema_prints_a_json_schema_of_scenarios(capsys, tmp_path: Path):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object"
    assert "plans" in schema["properties"]
    assert "plans" in schema["required"]
    assert schema["additionalProperties"] is False  # unknown keys are errors
    refs = _refs(schema)
    assert refs
    assert all(r.startswith("#/$defs/") for r in refs)
    assert all(r.removeprefix("#/$defs/") in schema["$defs"] for r in refs)
    assert {"Plan", "Segment", "Pool"} <= set(schema["$defs"])
    # --out writes the same text to a file
    assert main(["schema", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == schema


# --------------------------------------------------------------------------- python -m sim


def test_python_dash_m_sim_exit_codes(tmp_path: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(ROOT / "scenarios" / "baseline.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:")
    d = small_dict()
    d["plans"][1]["quota"]["amount"] = -1
    bad = write_yaml(tmp_path / "bad.yaml", d)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 2
    assert "plans[1].quota.amount" in r.stderr
    assert not out.exists()
    assert not (tmp_path / "results").exists()


def test_run_refuses_to_replace_a_folder_that_is_not_a_run(tmp_path: Path, capsys):
    s = write_yaml(tmp_path / "s.yaml", small_dict(horizon_months=1))
    keep = tmp_path / "important"
    keep.mkdir()
    (keep / "notes.txt").write_text("x")
    assert main(["run", str(s), "--out", str(keep), "-q"]) == 2
    assert (keep / "notes.txt").read_text() == "x"
    assert "not a tokensim run folder" in capsys.readouterr().err


def test_run_rejects_too_many_replications(tmp_path: Path, capsys):
    s = write_yaml(tmp_path / "s.yaml", small_dict(horizon_months=1))
    assert main(["run", str(s), "--replications", "1001", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
