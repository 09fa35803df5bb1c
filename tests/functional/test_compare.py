"""`tokensim compare`: KPIs side by side with paired (common-random-number) differences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
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
    assert "difference vs first" in capsys.readouterr().out


def test_compare_refuses_a_folder_that_is_not_a_run(two_runs, tmp_path: Path, capsys):
    base, _ = two_runs
    assert main(["compare", str(base), str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a tokensim run folder" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
