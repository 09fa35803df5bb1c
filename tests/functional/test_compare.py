"""`tokensim compare`: KPIs side by side with paired (common-random-number) differences."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.results import run_folder
from sim.results.compare import compare_runs
from sim.results.kpis import KPIS


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cmp")
    runs = []
    for name, price in (("base", 9.9), ("dear", 19.9)):
        s = small_dict(horizon_months=2, replications=3)
        s["outputs"] = {"ledger": False, "plots": False}
        s["plans"][0]["price_per_month"] = price
        f = d / f"{name}.yaml"
        f.write_text(yaml.safe_dump(s))
        assert main(["run", str(f), "--out", str(d / name), "-q"]) == 0
        runs.append(d / name)
    return runs[0], runs[1]


def test_a_run_against_itself_differs_by_exactly_zero(two_runs, tmp_path: Path):
    base, _ = two_runs
    out = tmp_path / "self.csv"
    assert main(["compare", str(base), str(base), "--out", str(out)]) == 0
    t = pd.read_csv(out)
    assert len(t) == 2 * len(KPIS)
    second = t.iloc[len(KPIS) :].dropna(subset=["diff_vs_first"])
    assert (second["diff_vs_first"] == 0).all()
    assert (second["diff_ci95_high"] - second["diff_ci95_low"] == 0).all()


def test_paired_difference_finds_the_price_effect(two_runs, tmp_path: Path, capsys):
    base, dear = two_runs
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(base), str(dear), "--out", str(out)]) == 0
    t = pd.read_csv(out).set_index(["run", "kpi"])
    fees = t.loc[("dear", "revenue_fees")]
    assert bool(fees["paired"])
    assert fees["pairs"] == 3
    # common random numbers: the paired interval is narrower than either run's own interval
    own = t.loc[("dear", "revenue_fees"), "ci95_high"] - t.loc[("dear", "revenue_fees"), "ci95_low"]
    assert fees["diff_ci95_high"] - fees["diff_ci95_low"] < own
    assert fees["diff_ci95_low"] > 0  # doubling the lite plan's price raises fee revenue
    text = capsys.readouterr().out
    assert "difference vs first" in text
    assert "lite.price_per_month=19.9" in text  # the run is labelled by its changed price
    assert set(t["label"]) == {"lite.price_per_month=9.9", "lite.price_per_month=19.9"}


def test_compare_refuses_a_folder_that_is_not_a_run(two_runs, tmp_path: Path, capsys):
    base, _ = two_runs
    assert main(["compare", str(base), str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a tokensim run folder" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def _as_older(run: Path, dest: Path) -> Path:
    """A copy of ``run`` as a run folder of the version before the busy-hour tables wrote it.

    No busy_hour.csv or latency_by_hour.csv (and the manifest does not list them), the KPI
    ``slo_attainment_served`` under its old name, and no KPI that version did not have.
    """
    shutil.copytree(run, dest)
    for name in run_folder.ADDED_FILES:
        (dest / name).unlink()
    manifest = json.loads((dest / run_folder.MANIFEST).read_text())
    manifest["files"] = [f for f in manifest["files"] if f not in run_folder.ADDED_FILES]
    (dest / run_folder.MANIFEST).write_text(json.dumps(manifest))
    kp = pd.read_csv(dest / run_folder.KPIS_BY_REPLICATION)
    kp = kp.rename(columns={"slo_attainment_served": "slo_attainment"})
    newer = ["goodput_share", "busy_hour_utilisation", "busy_hour_ttft_p95_s", "abandoned_share"]
    kp.drop(columns=newer).to_csv(dest / run_folder.KPIS_BY_REPLICATION, index=False)
    return dest


def test_compare_reads_a_run_folder_of_an_earlier_version(two_runs, tmp_path: Path, capsys):
    """An older run folder compares against a new one: renamed KPIs mapped, new ones blank."""
    new, _ = two_runs
    old = _as_older(new, tmp_path / "older")
    table = compare_runs([new, old]).set_index(["run", "kpi"])
    assert table.loc[("older", "slo_attainment_served"), "diff_vs_first"] == 0.0
    assert pd.isna(table.loc[("older", "goodput_share"), "mean"])
    assert table.loc[("older", "revenue_total"), "diff_vs_first"] == 0.0
    assert main(["compare", str(new), str(old), "--out", str(tmp_path / "c.csv")]) == 0
    # a new folder that lost a file its manifest lists is damaged, not older
    (tmp_path / "damaged").mkdir()
    shutil.copytree(new, tmp_path / "damaged" / "run")
    (tmp_path / "damaged" / "run" / "busy_hour.csv").unlink()
    assert main(["compare", str(new), str(tmp_path / "damaged" / "run")]) == 2
    assert "busy_hour.csv" in capsys.readouterr().err
