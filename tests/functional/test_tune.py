"""Tuning scenario fields (sim.pricing.tune.tune and ``tokensim tune``).

The search finds what a brute-force grid over the same field finds, within the grid's own
interval; replication r of every point draws the same random streams; the answer is the
paired difference against the scenario as given on fresh replications; constraints hold at the
answer; the Pareto front holds only undominated points; a tune folder resumes from its journal
without simulating what it holds; and questions it cannot ask exit 2 naming the option,
writing nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict, small_scenario

from sim.cli import main
from sim.pricing.objectives import measure
from sim.pricing.tune import tune
from sim.results.kpis import mean_ci
from sim.scenario.overrides import apply_overrides

SEED = 7
LITE = "plans.lite.price_per_month"
"""The searched field: the lite plan's fee (CNY/month; 9.9 in the small scenario)."""
LOW, HIGH = 2.0, 200.0
"""Its range (CNY/month): revenue rises from 2 to about 80, then falls slowly."""
GRID = (2.0, 10.0, 20.0, 30.0, 45.0, 60.0, 80.0, 100.0, 130.0, 165.0, 200.0)
"""The brute-force grid over the range (CNY/month)."""
REPLICATIONS = 3
"""Replications per point, in the grid and the search (the same seeds: 0..2)."""
FINAL = 4
"""Fresh replications of the re-evaluation."""


def revenue(value: float, reps: range) -> np.ndarray:
    """Revenue of the small scenario with the lite fee at ``value``, per replication (CNY)."""
    s = apply_overrides(small_scenario(), {LITE: value})
    return np.array([measure(s, SEED, r)["revenue_total"] for r in reps])


@pytest.fixture(scope="module")
def tuned() -> Any:
    return tune(
        small_scenario(),
        [f"{LITE}={LOW}..{HIGH}"],
        objective="revenue",
        budget=12,
        replications=REPLICATIONS,
        final_replications=FINAL,
        top=2,
        batch=4,
        seed=SEED,
    )


def test_tune_finds_the_optimum_of_a_brute_force_grid_within_the_grids_ci(tuned):
    reps = range(REPLICATIONS)
    grid = {v: revenue(v, reps) for v in GRID}
    best = max(grid, key=lambda v: grid[v].mean())
    worst = min(grid, key=lambda v: grid[v].mean())
    chosen = tuned.answer["values"][LITE]
    at_choice = revenue(chosen, reps)  # on the grid's own replications (common random numbers)
    _, low, _ = mean_ci(grid[best])
    assert at_choice.mean() >= low, (chosen, at_choice.mean(), best, grid[best].mean())
    _, dlow, _ = mean_ci(grid[best] - at_choice)
    assert dlow <= 0, f"the grid's best ({best}) beats the choice ({chosen}) significantly"
    # the test can fail: the grid's worst point is significantly below its best
    assert mean_ci(grid[best] - grid[worst])[1] > 0
    assert tuned.answer["status"] == "better"  # 9.9 as given is far from the optimum


def test_replication_r_of_every_point_draws_the_same_streams(tuned):
    table = tuned.trials
    given = table[table["role"] == "incumbent"].iloc[0]
    direct = revenue(9.9, range(REPLICATIONS))
    got = [given[f"revenue_total r{r}"] for r in range(REPLICATIONS)]
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    other = table[table["role"] == "search"].iloc[0]
    again = revenue(other[LITE], range(REPLICATIONS))
    np.testing.assert_allclose(
        [other[f"revenue_total r{r}"] for r in range(REPLICATIONS)], again, rtol=1e-12
    )


def test_answer_is_a_paired_difference_on_fresh_replications(tuned):
    re = tuned.reevaluation
    assert (re["replications"] == FINAL).all()
    assert (re["first_replication"] == REPLICATIONS).all()
    assert re["chosen"].sum() == 1
    reps = tuned.replications
    fresh = reps[reps["replication"] >= REPLICATIONS]

    def values(trial: int) -> np.ndarray:
        rows = fresh[fresh["trial"] == trial].sort_values("replication")
        return rows["revenue_total"].to_numpy()

    chosen = int(re[re["chosen"]]["trial"].iloc[0])
    d, lo, hi = mean_ci(values(chosen) - values(0))
    a = tuned.answer
    assert a["pairs"] == FINAL
    assert a["difference"] == pytest.approx(d)
    assert (a["difference_ci95_low"], a["difference_ci95_high"]) == pytest.approx((lo, hi))
    # the choice is the best mean on the fresh replications, not on the search's
    means = {int(t): values(int(t)).mean() for t in re["trial"]}
    assert chosen == max(means, key=lambda t: means[t])


def write_small(path: Path) -> Path:
    path.write_text(yaml.safe_dump(small_dict(), sort_keys=False))
    return path


CHURN_BOUND = 0.3
"""Monthly churn bound of the CLI test (share): the lite fee as given (9.9) meets it; fees above
~30 do not."""


def tune_args(f: Path, out: Path, *more: str) -> list[str]:
    return [
        "tune",
        str(f),
        "--vary",
        f"{LITE}={LOW}..{HIGH}",
        "--objective",
        "revenue",
        "--constraint",
        f"churn_rate_monthly<={CHURN_BOUND}",
        "--budget",
        "8",
        "-r",
        "2",
        "--final-replications",
        "3",
        "--top",
        "2",
        "--out",
        str(out),
        "--quiet",
        *more,
    ]


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tune")
    f = write_small(d / "s.yaml")
    assert main(tune_args(f, d / "out", "--workers", "2")) == 0  # on a local dask cluster
    return d


def test_cli_writes_the_folder_and_the_answer_meets_the_constraint(cli_folder):
    out = cli_folder / "out"
    names = {p.name for p in out.iterdir()}
    assert names >= {
        "tune.json",
        "replications.csv",
        "trials.csv",
        "reevaluation.csv",
        "pareto.csv",
        "pareto.png",
        "surface.png",
        "scenario.yaml",
    }
    m = json.loads((out / "tune.json").read_text())
    assert m["status"] == "complete"
    a = m["answer"]
    assert all(c["holds"] and c["mean"] <= CHURN_BOUND for c in a["constraints"])
    chosen = yaml.safe_load((out / "scenario.yaml").read_text())
    lite = next(p for p in chosen["plans"] if p["name"] == "lite")
    assert lite["price_per_month"] == pytest.approx(a["values"][LITE])
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 9  # the scenario as given and 8 searched
    assert trials[trials["feasible"]]["churn_rate_monthly"].max() <= CHURN_BOUND
    front = pd.read_csv(out / "pareto.csv")
    m_, c_ = trials["gross_margin"].to_numpy(), trials["churn_rate_monthly"].to_numpy()
    for r in front.itertuples():
        better = (m_ >= r.gross_margin) & (c_ <= r.churn_rate_monthly)
        strictly = (m_ > r.gross_margin) | (c_ < r.churn_rate_monthly)
        assert not (better & strictly).any()
    off = trials[~trials["trial"].isin(front["trial"])]
    for r in off.itertuples():  # every point left off the front is dominated
        assert (
            (front["gross_margin"] >= r.gross_margin)
            & (front["churn_rate_monthly"] <= r.churn_rate_monthly)
        ).any()


def test_resume_takes_the_journal_and_gives_the_same_answer(cli_folder, tmp_path):
    src = cli_folder / "out"
    out = tmp_path / "out"
    shutil.copytree(src, out)
    journal = pd.read_csv(out / "replications.csv")
    kept = journal.iloc[: len(journal) // 2]  # as if cut off half way
    kept.to_csv(out / "replications.csv", index=False)
    for name in ("trials.csv", "reevaluation.csv", "pareto.csv", "pareto.png", "surface.png"):
        (out / name).unlink()
    f = cli_folder / "s.yaml"
    before = (out / "tune.json").read_text()
    assert main(tune_args(f, out, "--workers", "1")) == 2  # not without --resume
    assert (out / "tune.json").read_text() == before
    assert main(tune_args(f, out, "--workers", "1", "--resume")) == 0
    m = json.loads((out / "tune.json").read_text())
    assert m["simulations_run"] == len(journal) - len(kept)
    pd.testing.assert_frame_equal(pd.read_csv(out / "trials.csv"), pd.read_csv(src / "trials.csv"))
    assert m["answer"] == json.loads((src / "tune.json").read_text())["answer"]


BAD = [
    (["--vary", "plans.lite.price_per_month"], "--vary"),
    (["--vary", "plans.nope.price_per_month=1..9"], "--vary"),
    (["--vary", "plans.lite.on_exhaustion.rule=1..9"], "--vary"),
    (["--vary", f"{LITE}=9..2"], "--vary"),
    (["--vary", "cluster.pools.big.gpus=1.5..4"], "--vary"),
    (["--vary", f"{LITE}=2..9", "--objective", "profit"], "--objective"),
    (["--vary", f"{LITE}=2..9", "--constraint", "churn<=0.1"], "--constraint"),
    (["--vary", f"{LITE}=2..9", "--constraint", "churn_rate_monthly=0.1"], "--constraint"),
    (["--vary", f"{LITE}=2..9", "--budget", "0"], "--budget"),
    (["--vary", f"{LITE}=2..9", "--final-replications", "1"], "--final-replications"),
    (
        [
            *("--vary", f"{LITE}=2..9", "--constraint", "churn_rate_monthly<=0.1"),
            *("--horizon-months", "1"),
        ],
        "--horizon-months",
    ),
    ([], "--vary"),
]


@pytest.mark.parametrize(("args", "option"), BAD)
def test_bad_input_exits_2_naming_the_option_and_writes_nothing(tmp_path, capsys, args, option):
    f = write_small(tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert main(["tune", str(f), *args, "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert option in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_folder_that_is_not_a_tune_folder_is_never_written(tmp_path, capsys):
    f = write_small(tmp_path / "s.yaml")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for more in ([], ["--resume"]):
        assert main(tune_args(f, out, "--workers", "1", *more)) == 2
        assert "not a tokensim tune folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_refuses_a_folder_of_another_question(cli_folder, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(cli_folder / "out", out)
    args = tune_args(cli_folder / "s.yaml", out, "--workers", "1", "--resume")
    args[args.index("revenue")] = "margin"
    assert main(args) == 2
    assert "differs in objective" in capsys.readouterr().err


def test_a_fee_an_event_overrides_is_flagged_with_the_field_to_vary_instead():
    from sim.pricing.space import check_space, shadowing_notes
    from sim.scenario.loading import validate_data

    d = small_dict()
    d["events"] = [{"kind": "price_change", "month": 1, "plan": "lite", "price_per_month": 19.9}]
    s = validate_data(d)
    notes = shadowing_notes(s, check_space(s, [f"{LITE}={LOW}..{HIGH}"]))
    assert len(notes) == 1
    assert "events.0.price_per_month" in notes[0]
    assert "19.9" in notes[0]
    assert shadowing_notes(s, check_space(s, ["events.0.price_per_month=10..30"])) == []
    assert shadowing_notes(s, check_space(s, ["plans.pro.price_per_month=10..90"])) == []


def test_an_answer_at_the_end_of_its_range_is_flagged():
    from sim.pricing.space import check_space, edge_notes

    p = check_space(small_scenario(), [f"{LITE}={LOW}..{HIGH}"])
    searched = [{LITE: v} for v in (20.0, 90.0, 190.0)]
    assert "highest value searched" in edge_notes(p, searched, {LITE: 190.0}, False)[0]
    assert "lowest value searched" in edge_notes(p, [{LITE: 3.0}, *searched], {LITE: 3.0}, False)[0]
    assert edge_notes(p, searched, {LITE: 90.0}, False) == []
    assert edge_notes(p, searched, {LITE: 190.0}, True) == []  # the scenario as given is kept
