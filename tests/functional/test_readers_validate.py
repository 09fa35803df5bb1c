"""Readers validate what they read (issue 14, point 4).

``report``, ``compare`` and ``sweep --resume`` check a folder's manifest (types) and tables
(numbers, finite, expected columns) and refuse a damaged folder with exit code 2 naming the
file and the problem; ``calibrate`` refuses a malformed trace the same way. Each test
damages one file of a real run (or trace) as a disk error, an editor or a truncated copy
would, and fails if a reader accepts it or fails with a traceback.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from support.run_folders import set_manifest
from support.scenarios import small_dict

from sim.cli import main
from sim.experiments import sweep
from sim.experiments.runner import run_scenario
from sim.report.folders import RunFolder
from sim.results.run_folder import (
    KPIS_BY_REPLICATION,
    LATENCY,
    MANIFEST,
    MONTHLY,
    SUMMARY,
    write_run,
)
from sim.results.table_checks import TableError, check_numbers, may_be_undefined
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import load_scenario

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "data" / "traces"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the small scenario: 2 months, 2 replications, no ledger or plots."""
    d = tmp_path_factory.mktemp("readers")
    s = small_dict(horizon_months=2, replications=2)
    s["outputs"] = {"ledger": False, "plots": False}
    f = d / "s.yaml"
    f.write_text(yaml.safe_dump(s, sort_keys=False))
    assert main(["run", str(f), "--out", str(d / "run"), "-q"]) == 0
    return d / "run"


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    """A private copy of the run, free to damage."""
    return Path(shutil.copytree(run, tmp_path / "copy"))


def set_cell(path: Path, column: str, value: str, row: int = 0) -> None:
    """Write ``value`` as text into one cell of a CSV table (as an editor would)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(path, index=False)


def refused(argv: list[str], capsys, *names: str) -> str:
    """Run the command; assert exit 2, no traceback, and every name in the message."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err
    return err


# ---------------------------------------------------------------------- manifests


@pytest.mark.parametrize(
    ("key", "value"),
    [("replications", "x"), ("replications", 0), ("seed", -1), ("seed", 1.5), ("files", "x")],
)
def test_report_and_compare_refuse_a_manifest_of_wrong_types(
    copy: Path, run: Path, tmp_path: Path, capsys, key: str, value: Any
):
    set_manifest(copy, **{key: value})
    out = tmp_path / "r.html"
    refused(["report", str(copy), "--out", str(out)], capsys, str(copy / MANIFEST), key)
    assert not out.exists()
    refused(["compare", str(run), str(copy), "--out", str(tmp_path / "c.csv")], capsys, key)


def test_a_manifest_missing_its_seed_is_refused(copy: Path, tmp_path: Path, capsys):
    m = json.loads((copy / MANIFEST).read_text())
    del m["seed"]
    (copy / MANIFEST).write_text(json.dumps(m))
    refused(["report", str(copy), "--out", str(tmp_path / "r.html")], capsys, "seed is missing")


# ---------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("revenue_total", "abc", "'abc' is not a number"),
        ("subscribers_end", "nan", "missing value"),
        ("gpu_cost", "", "missing value"),
        ("ttft_p95_s", "inf", "not a finite number"),
        ("month", "1.5", "not a whole number"),
    ],
)
def test_report_refuses_a_damaged_monthly_table(
    copy: Path, tmp_path: Path, capsys, column: str, value: str, said: str
):
    set_cell(copy / MONTHLY, column, value, row=1)
    out = tmp_path / "r.html"
    refused(["report", str(copy), "--out", str(out)], capsys, str(copy / MONTHLY), column, said)
    assert not out.exists()


def test_the_damaged_cell_is_named_by_its_line(copy: Path):
    set_cell(copy / MONTHLY, "revenue_total", "abc", row=1)
    with pytest.raises(Exception, match=r"monthly.csv: column revenue_total, line 3: 'abc'"):
        RunFolder.open(copy).load()


def test_an_undefined_ratio_is_not_damage(copy: Path):
    set_cell(copy / LATENCY, "ttft_p95_s", "")  # no request served there: undefined
    set_cell(copy / MONTHLY, "churn_rate", "")  # no renewal decision: undefined
    RunFolder.open(copy).load()


def test_a_missing_table_is_refused_naming_it(copy: Path, tmp_path: Path, capsys):
    (copy / LATENCY).unlink()
    refused(["report", str(copy), "--out", str(tmp_path / "r.html")], capsys, LATENCY)


def test_a_table_missing_a_column_is_refused(copy: Path, tmp_path: Path, capsys):
    pd.read_csv(copy / MONTHLY).drop(columns=["gpu_cost"]).to_csv(copy / MONTHLY, index=False)
    refused(["report", str(copy), "--out", str(tmp_path / "r.html")], capsys, "gpu_cost")


def test_a_damaged_summary_is_refused(copy: Path, tmp_path: Path, capsys):
    summary = json.loads((copy / SUMMARY).read_text())
    summary["revenue_total"]["mean"] = "lots"
    (copy / SUMMARY).write_text(json.dumps(summary))
    refused(
        ["report", str(copy), "--out", str(tmp_path / "r.html")],
        capsys,
        str(copy / SUMMARY),
        "revenue_total.mean",
    )


@pytest.mark.parametrize("value", ["abc", "inf", ""])
def test_compare_refuses_a_damaged_kpi_table(
    run: Path, copy: Path, tmp_path: Path, capsys, value: str
):
    set_cell(copy / KPIS_BY_REPLICATION, "revenue_total", value)
    out = tmp_path / "c.csv"
    refused(
        ["compare", str(run), str(copy), "--out", str(out)],
        capsys,
        str(copy / KPIS_BY_REPLICATION),
        "revenue_total",
    )
    assert not out.exists()


def test_compare_by_plan_refuses_a_damaged_plan_table(
    run: Path, copy: Path, tmp_path: Path, capsys
):
    set_cell(copy / "monthly_by_plan_segment.csv", "churned", "many")
    argv = ["compare", str(run), str(copy), "--by", "plan", "--out", str(tmp_path / "c.csv")]
    refused(argv, capsys, "monthly_by_plan_segment.csv", "churned", "'many'")


def test_check_numbers_rules():
    ok = pd.DataFrame({"replication": [0, 1], "pool": ["a", "b"], "x_share": [0.5, float("nan")]})
    check_numbers(Path("t.csv"), ok)
    with pytest.raises(TableError, match="column replication, line 2: -1 is not a whole number"):
        check_numbers(Path("t.csv"), ok.assign(replication=[-1, 0]))
    with pytest.raises(TableError, match="x_share, line 3: -inf"):
        check_numbers(Path("t.csv"), ok.assign(x_share=[0.1, float("-inf")]))
    assert may_be_undefined("slo_attainment_served")
    assert may_be_undefined("e2e_p99_s")
    assert not may_be_undefined("revenue_total")
    assert not may_be_undefined("migrated")


# ---------------------------------------------------------------------- sweep --resume


@pytest.fixture(scope="module")
def finished_sweep(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    """A one-point sweep folder whose point is finished (written as the sweep writes it)."""
    base = load_scenario(run.parent / "s.yaml")
    spec = sweep.sweep_spec(base, ["plans.lite.price_per_month=9.9"])
    (point,) = sweep.points(base, spec)
    out = tmp_path_factory.mktemp("sweep") / "sw"
    result = run_scenario(point.scenario, seed=base.seed, replications=base.replications)
    write_run(result, sweep.point_folder(out, point.id), base.seed, plots=False)
    manifest = sweep.sweep_manifest(base, spec, [point], base.seed, base.replications)
    (out / sweep.SWEEP_JSON).write_text(json.dumps(manifest))
    return base, spec, out


def _resume(finished_sweep: tuple[Any, ...], tmp_path: Path) -> tuple[Any, ...]:
    base, spec, out = finished_sweep
    copy = Path(shutil.copytree(out, tmp_path / "sw"))
    return base, spec, copy


def test_resume_reuses_an_intact_point(finished_sweep: tuple[Any, ...], tmp_path: Path):
    base, spec, out = _resume(finished_sweep, tmp_path)
    (point,) = sweep.points(base, spec)
    folder = sweep.point_folder(out, point.id)
    assert sweep._point_done(folder, point, base.seed, base.replications)
    assert len(sweep._reused_kpis(folder)) == base.replications


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda p: set_manifest(p, replications="x"), "replications"),
        (lambda p: set_cell(p / KPIS_BY_REPLICATION, "revenue_total", "abc"), "'abc'"),
        (lambda p: set_cell(p / KPIS_BY_REPLICATION, "requests", "inf"), "not a finite"),
        (
            lambda p: (
                pd.read_csv(p / KPIS_BY_REPLICATION)
                .drop(columns=["gpu_cost"])
                .to_csv(p / KPIS_BY_REPLICATION, index=False)
            ),
            "gpu_cost",
        ),
    ],
)
def test_resume_refuses_a_damaged_point(
    finished_sweep: tuple[Any, ...], tmp_path: Path, damage: Any, said: str
):
    base, spec, out = _resume(finished_sweep, tmp_path)
    point = sweep.point_folder(out, "p000")
    damage(point)
    with pytest.raises(ScenarioError, match=said) as e:
        sweep.run_sweep(base, spec, out, client=None, resume=True)  # type: ignore[arg-type]
    assert str(point) in str(e.value)
    assert not (out / sweep.POINTS_CSV).exists()  # nothing written from the damaged point


# ---------------------------------------------------------------------- calibrate


def _arrivals_head(tmp_path: Path, lines: int) -> list[str]:
    with gzip.open(TRACES / "servegen_arrivals_m-large.csv.gz", "rt") as fh:
        return [next(fh) for _ in range(lines)]


@pytest.mark.parametrize(
    ("last", "said"),
    [
        ("language,m-large,12,96000,1807,\n", "line 301: no value in column rate_rps"),
        ("language,m-large,12,96000,1807,abc,1.0\n", "'abc' is not a finite number >= 0"),
        ("language,m-large,12,96000,1807,1.0,-2\n", "column iat_cv"),
        ("language,m-lar", "no value in column"),
    ],
)
def test_calibrate_refuses_a_truncated_servegen_file(tmp_path: Path, capsys, last: str, said: str):
    arrivals = tmp_path / "servegen_arrivals_cut.csv"
    arrivals.write_text("".join(_arrivals_head(tmp_path, 300)) + last)
    pmf = TRACES / "servegen_token_pmf_m-large.csv.gz"
    out = tmp_path / "presets"
    argv = ["calibrate", str(arrivals), str(pmf), "--out", str(out)]
    refused(argv, capsys, arrivals.name, said)
    assert not out.exists()


def test_calibrate_refuses_a_valid_but_too_short_servegen_file(tmp_path: Path, capsys):
    """A well-formed head of the arrivals is read, but its burstiness cannot be fitted: exit 2
    naming the file, not the root-finder's traceback."""
    arrivals = tmp_path / "servegen_arrivals_head.csv"
    arrivals.write_text("".join(_arrivals_head(tmp_path, 300)))
    pmf = TRACES / "servegen_token_pmf_m-large.csv.gz"
    argv = ["calibrate", str(arrivals), str(pmf), "--out", str(tmp_path / "p")]
    refused(argv, capsys, arrivals.name, "inter-arrival CV")


def test_calibrate_refuses_a_cut_compressed_file(tmp_path: Path, capsys):
    cut = tmp_path / "servegen_arrivals_cut.csv.gz"
    cut.write_bytes((TRACES / "servegen_arrivals_m-large.csv.gz").read_bytes()[:20000])
    pmf = TRACES / "servegen_token_pmf_m-large.csv.gz"
    refused(["calibrate", str(cut), str(pmf), "--out", str(tmp_path / "p")], capsys, cut.name)
