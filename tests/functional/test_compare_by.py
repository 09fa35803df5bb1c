"""`tokensim compare --by plan|segment`: per-plan and per-segment figures with paired CIs.

Three small runs with the same seed (common random numbers): the base, the same market with
the lite plan's price doubled, and one with an extra plan on sale to chat users.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from support.scenarios import small_dict

from sim.cli import main
from sim.results import run_folder
from sim.results.compare import compare_runs, open_runs
from sim.results.compare_groups import ADDITIVE, GROUP_KPIS, compare_by, group_values

REPS = 3
PRICE = "lite.price_per_month"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cmp-by")
    base = small_dict(horizon_months=2, replications=REPS)
    base["outputs"] = {"ledger": False, "plots": False}
    dear = copy.deepcopy(base)
    dear["plans"][0]["price_per_month"] = 19.9
    extra = copy.deepcopy(base)
    extra["plans"].append({**copy.deepcopy(base["plans"][1]), "name": "max"})
    extra["segments"][0]["plans"] = ["lite", "pro", "max"]
    out = {}
    for name, s in (("base", base), ("dear", dear), ("extra", extra)):
        f = d / f"{name}.yaml"
        f.write_text(yaml.safe_dump(s))
        assert main(["run", str(f), "--out", str(d / name), "-q"]) == 0
        out[name] = d / name
    return out


def _cells(t: pd.DataFrame, by: str, group: str, run: str, kpi: str) -> pd.Series:
    hit = t[(t[by] == group) & (t["run"] == run) & (t["kpi"] == kpi)]
    assert len(hit) == 1, (by, group, run, kpi)
    return hit.iloc[0]


@pytest.mark.parametrize("by", ["plan", "segment"])
def test_figures_per_group_add_up_to_the_market_per_replication(runs, by):
    """Conservation: over all plans (segments), the counts and money are the market's."""
    for path in runs.values():
        (run,) = open_runs([path])
        per = group_values(run, by).groupby(level="replication").sum()
        kpis = pd.read_csv(path / run_folder.KPIS_BY_REPLICATION).set_index("replication")
        months = pd.read_csv(path / run_folder.MONTHLY).groupby("replication").sum()
        assert len(per) == REPS
        for kpi in ADDITIVE:
            market = kpis[kpi] if kpi in kpis else months.get(kpi)
            if market is None:
                continue  # subscriber_months: not a market KPI
            np.testing.assert_allclose(per[kpi], market.loc[per.index], rtol=1e-9, err_msg=kpi)
        assert (per["subscribers_end"] > 0).all()


def test_the_table_means_and_differences_add_up_to_the_market_table(runs):
    paths = [runs["base"], runs["dear"]]
    market = compare_runs(paths).set_index(["run", "kpi"])
    t = compare_by(paths, "plan")
    for kpi in ("subscribers_end", "revenue_total", "revenue_fees", "tokens_served"):
        rows = t[(t["kpi"] == kpi) & (t["run"] == "dear")]
        assert list(rows["plan"]) == ["lite", "pro"]
        m = market.loc[("dear", kpi)]
        assert rows["mean"].sum() == pytest.approx(m["mean"], rel=1e-9)
        assert rows["diff_vs_first"].sum() == pytest.approx(m["diff_vs_first"], rel=1e-9)


def test_paired_difference_is_the_mean_of_per_replication_differences(runs):
    """Recomputed here from monthly_by_plan_segment.csv, with scipy's t quantile."""
    t = compare_by([runs["base"], runs["dear"]], "plan")
    row = _cells(t, "plan", "lite", "dear", "revenue_fees")

    def fees(path: Path) -> pd.Series:
        m = pd.read_csv(path / run_folder.MONTHLY_BY_PLAN_SEGMENT)
        return m[m["plan"] == "lite"].groupby("replication")["revenue_fees"].sum()

    d = (fees(runs["dear"]) - fees(runs["base"])).to_numpy()
    assert len(d) == REPS
    assert row["pairs"] == REPS
    assert bool(row["paired"])
    assert row["diff_vs_first"] == pytest.approx(d.mean())
    half = stats.t.ppf(0.975, REPS - 1) * d.std(ddof=1) / np.sqrt(REPS)
    assert row["diff_ci95_low"] == pytest.approx(d.mean() - half)
    assert row["diff_ci95_high"] == pytest.approx(d.mean() + half)
    own = fees(runs["dear"]).to_numpy()
    assert row["mean"] == pytest.approx(own.mean())
    # common random numbers: the paired interval is narrower than the run's own
    assert row["diff_ci95_high"] - row["diff_ci95_low"] < row["ci95_high"] - row["ci95_low"]
    # the churn rate per plan: mean over months of churned / renewals, as the market KPI
    m = pd.read_csv(runs["dear"] / run_folder.MONTHLY_BY_PLAN_SEGMENT)
    lite = m[m["plan"] == "lite"].groupby(["replication", "month"])[["churned", "renewals"]].sum()
    rate = (lite["churned"] / lite["renewals"]).groupby(level="replication").mean()
    churn = _cells(t, "plan", "lite", "dear", "churn_rate_monthly")
    assert churn["mean"] == pytest.approx(rate.mean())


def test_a_dearer_plan_earns_more_per_subscriber_on_that_plan(runs):
    t = compare_by([runs["base"], runs["dear"]], "plan")
    lite = _cells(t, "plan", "lite", "dear", "fees_per_subscriber_month")
    pro = _cells(t, "plan", "pro", "dear", "fees_per_subscriber_month")
    assert lite["diff_ci95_low"] > 0  # lite's price doubled
    assert lite["diff_vs_first"] > abs(pro["diff_vs_first"])  # pro's price did not change
    base_lite = _cells(t, "plan", "lite", "base", "fees_per_subscriber_month")
    assert base_lite["diff_vs_first"] == 0
    assert base_lite["diff_ci95_low"] == 0


def test_cli_by_plan_prints_labels_and_writes_the_tidy_table(runs, tmp_path: Path, capsys):
    out = tmp_path / "by-plan.csv"
    args = ["compare", str(runs["base"]), str(runs["dear"]), "--by", "plan", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{PRICE}=19.9" in text
    assert f"{PRICE}=9.9" in text
    assert "plans.lite.price_per_month=19.9" in text  # every change in --set form
    assert "plan lite" in text
    assert "plan pro" in text
    assert "dear" not in text.split("plan lite")[1]  # rows are labelled, not by folder
    assert "CNY" in text
    assert "%" in text
    t = pd.read_csv(out)
    assert set(t["label"]) == {f"{PRICE}=9.9", f"{PRICE}=19.9"}
    assert set(t["kpi"]) == set(GROUP_KPIS)
    assert len(t) == 2 * 2 * len(GROUP_KPIS)  # plans x runs x figures
    assert t.loc[t["run"] == "dear", "changes"].eq("plans.lite.price_per_month=19.9").all()
    # thousands separators in the text: tokens served per plan run to the millions
    assert any("," in line for line in text.splitlines() if line.startswith("tokens_served"))


def test_cli_by_segment_writes_parquet(runs, tmp_path: Path):
    out = tmp_path / "by-segment.parquet"
    args = ["compare", str(runs["base"]), str(runs["dear"]), "--by", "segment", "--out", str(out)]
    assert main(args) == 0
    t = pd.read_parquet(out)
    assert list(dict.fromkeys(t["segment"])) == ["chat", "coder"]
    assert "switched_in" not in set(t["kpi"])  # a plan figure


def test_a_plan_only_one_run_has(runs, capsys, tmp_path: Path):
    t = compare_by([runs["base"], runs["extra"]], "plan")
    assert list(dict.fromkeys(t["plan"])) == ["lite", "pro", "max"]
    base_max = _cells(t, "plan", "max", "base", "subscribers_end")
    assert not base_max["present"]
    assert np.isnan(base_max["mean"])
    extra_max = _cells(t, "plan", "max", "extra", "subscribers_end")
    assert extra_max["present"]
    assert extra_max["pairs"] == 0
    assert np.isnan(extra_max["diff_vs_first"])
    out = tmp_path / "x.csv"
    args = ["compare", str(runs["base"]), str(runs["extra"]), "--by", "plan", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "plans.max=added" in text
    assert "plan max is not in the scenario of" in text


def test_bad_input_exits_2_and_writes_nothing(runs, tmp_path: Path, capsys):
    out = tmp_path / "never.csv"
    base, dear = str(runs["base"]), str(runs["dear"])
    assert main(["compare", base, dear, "--by", "model", "--out", str(out)]) == 2
    assert "invalid choice" in capsys.readouterr().err
    # a run folder without its per-plan table
    broken = tmp_path / "broken"
    shutil.copytree(runs["dear"], broken)
    (broken / run_folder.MONTHLY_BY_PLAN_SEGMENT).unlink()
    assert main(["compare", base, str(broken), "--by", "plan", "--out", str(out)]) == 2
    assert run_folder.MONTHLY_BY_PLAN_SEGMENT in capsys.readouterr().err
    # a per-plan table without the plan figures
    m = pd.read_csv(runs["dear"] / run_folder.MONTHLY_BY_PLAN_SEGMENT)
    m.drop(columns=["revenue_fees"]).to_csv(broken / run_folder.MONTHLY_BY_PLAN_SEGMENT)
    assert main(["compare", base, str(broken), "--by", "plan", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no per-plan figures" in err
    assert "revenue_fees" in err
    assert main(["compare", base, dear, "--by", "plan", "--out", str(tmp_path)]) == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [broken]


def test_the_comparison_report_shows_plans_and_segments_with_labels(runs, monkeypatch):
    from sim.report.writer import build_report

    monkeypatch.setattr("sim.report.figures.svg_data_uri", lambda fig: "data:,")  # text only
    page = build_report([runs["base"], runs["dear"]]).replace("<wbr>", "")  # heading breaks
    assert f"{PRICE}=19.9 − {PRICE}=9.9" in page
    by_plan = page[page.index('id="by-plan"') : page.index('id="by-segment"')]
    lite = by_plan[by_plan.index("<td>lite</td>") : by_plan.index("<td>pro</td>")]
    fees = lite[lite.index("fees_per_subscriber_month") :].split("</tr>")[0]
    assert 'class="up"' in fees  # the paired difference's interval lies above 0
    assert "<td>coder</td>" in page[page.index('id="by-segment"') :]


def test_a_per_plan_table_of_an_earlier_version_leaves_its_new_figures_blank(runs, tmp_path):
    older = tmp_path / "older"
    shutil.copytree(runs["dear"], older)
    m = pd.read_csv(older / run_folder.MONTHLY_BY_PLAN_SEGMENT)
    m.drop(columns=["abandoned", "api_list_value"]).to_csv(
        older / run_folder.MONTHLY_BY_PLAN_SEGMENT, index=False
    )
    t = compare_by([runs["base"], older], "plan")
    for kpi in ("abandoned_share", "refused_share", "api_list_value"):
        assert np.isnan(_cells(t, "plan", "lite", "older", kpi)["mean"]), kpi
    now = compare_by([runs["base"], runs["dear"]], "plan").set_index(["plan", "run", "kpi"])
    fees = _cells(t, "plan", "lite", "older", "revenue_fees")
    assert fees["diff_vs_first"] == now.loc[("lite", "dear", "revenue_fees"), "diff_vs_first"]
