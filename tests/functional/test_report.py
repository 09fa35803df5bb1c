"""`tokensim report`: one self-contained HTML file per run, sweep or comparison.

The fixture is a small 2 x 2 factorial sweep folder (lite plan price x big pool GPUs,
2 replications per point) built from real run folders in the layout sim/experiments/sweep.py
writes (sweep.json, points.csv, points/<point>/); its first points double as the run
folders of the one-run and comparison reports. The pages are opened in headless
Chromium (tests/support/browser_check.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support.browser_check import PageReport, check_pages
from support.scenarios import small_dict

from sim.cli import main
from sim.report.data import plan_table, quota_use_table, sweep_points, sweep_response, token_mix
from sim.report.folders import ReportError, RunFolder
from sim.report.writer import build_report, write_report
from sim.results.kpis import KPIS, mean_ci

PRICE = "plans.lite.price_per_month"
GPUS = "cluster.pools.big.gpus"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sweep") / "lite-sweep"
    (d / "points").mkdir(parents=True)
    spec_points, rows = [], []
    grid = [(9.9, 2), (19.9, 2), (9.9, 3), (19.9, 3)]
    for i, (price, gpus) in enumerate(grid):
        point = f"p{i:03d}"
        s = small_dict(replications=2)
        s["outputs"] = {"ledger": i < 2, "plots": False}  # the last two test the no-ledger page
        s["plans"][0]["price_per_month"] = price
        s["cluster"]["pools"][0]["gpus"] = gpus
        f = d.parent / f"{point}.yaml"
        f.write_text(yaml.safe_dump(s))
        assert main(["run", str(f), "--out", str(d / "points" / point), "-q"]) == 0
        k = pd.read_csv(d / "points" / point / "kpis_by_replication.csv")
        k.insert(0, GPUS, gpus)
        k.insert(0, PRICE, price)
        k.insert(0, "point", point)
        rows.append(k)
        spec_points.append({"point": point, "params": {PRICE: price, GPUS: gpus}})
    spec = {
        "package": "tokensim",
        "kind": "sweep",
        "status": "complete",
        "scenario": "small",
        "design": "factorial",
        "parameters": [{"path": PRICE, "values": [9.9, 19.9]}, {"path": GPUS, "values": [2, 3]}],
        "points": spec_points,
        "replications": 2,
        "seed": 7,
    }
    (d / "sweep.json").write_text(json.dumps(spec, indent=2))
    pts = pd.concat(rows, ignore_index=True)
    cols = ["point", "replication", PRICE, GPUS, *KPIS]
    pts[cols].to_csv(d / "points.csv", index=False)
    return d


@pytest.fixture(scope="module")
def reports(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three kinds of report, written through the CLI with their default paths."""
    a, b = sweep_dir / "points" / "p000", sweep_dir / "points" / "p001"
    out = tmp_path_factory.mktemp("reports")
    assert main(["report", str(a)]) == 0
    assert main(["report", str(sweep_dir)]) == 0
    assert main(["report", str(a), str(b), "--out", str(out / "cmp.html")]) == 0
    return {
        "run": a / "report.html",
        "sweep": sweep_dir / "report.html",
        "compare": out / "cmp.html",
    }


# ---------------------------------------------------------------------- the numbers


def test_quota_use_table_matches_the_ledger(sweep_dir: Path):
    run = sweep_dir / "points" / "p000"
    led = pd.read_parquet(run / "ledger.parquet")
    t = quota_use_table(led, ["lite", "pro"])
    assert list(t.index) == ["lite", "pro"]
    closed = led[led["status"] != "open"]
    assert t["subscriber_months"].sum() == len(closed)
    for plan, g in closed.groupby("plan", observed=True):
        use = (g["used_units"] / g["quota_units"]).to_numpy()
        assert t.loc[plan, "mean"] == pytest.approx(use.mean())
        assert t.loc[plan, "p50"] == pytest.approx(np.median(use))
        assert t.loc[plan, "p95"] == pytest.approx(np.percentile(use, 95))
        assert t.loc[plan, "over_quota"] == pytest.approx((use >= 1).mean())
    # the lite plan cuts off at its quota, so no closed month goes beyond it by much
    assert t.loc["lite", "p99"] <= 1.05


def test_token_mix_adds_up_to_tokens_served(sweep_dir: Path):
    run = RunFolder.open(sweep_dir / "points" / "p000")
    assert run.ledger is not None
    mix, share = token_mix(run.ledger, run.plan_order)
    assert list(mix.columns) == ["input_miss", "input_hit", "output"]
    assert set(mix.index) == {"big", "small"}
    served = run.kpis["tokens_served"].mean()
    assert mix.to_numpy().sum() == pytest.approx(served, rel=1e-9)
    assert np.allclose(share.sum(axis=1), 1.0)


def test_plan_table_agrees_with_the_monthly_totals(sweep_dir: Path):
    run = RunFolder.open(sweep_dir / "points" / "p000")
    t = plan_table(run.by_plan, run.plan_order)
    last = run.months[run.months["month"] == run.months["month"].max()]
    assert t["subscribers_end"].sum() == pytest.approx(last["subscribers_end"].mean())
    assert t["revenue_total"].sum() == pytest.approx(run.kpis["revenue_total"].mean())


def test_sweep_response_means_are_the_points_group_means(sweep_dir: Path):
    pts = pd.read_csv(sweep_dir / "points.csv")
    resp = sweep_response(pts, [PRICE, GPUS])
    assert len(resp) == 4 * len(KPIS)  # 2 parameters x 2 values x every KPI
    for par in (PRICE, GPUS):
        means = pts.groupby(par)[list(KPIS)].mean()
        r = resp[resp["parameter"] == par].pivot(index="value", columns="kpi", values="mean")
        pd.testing.assert_frame_equal(
            r[list(KPIS)], means, check_names=False, check_index_type=False, atol=0
        )
        assert (resp.loc[resp["parameter"] == par, "n"] == 4).all()  # 2 points x 2 reps each
    row = resp[
        (resp["parameter"] == PRICE) & (resp["value"] == 19.9) & (resp["kpi"] == "revenue_fees")
    ].iloc[0]
    x = pts.loc[pts[PRICE] == 19.9, "revenue_fees"].to_numpy()
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(mean_ci(x)[1:])
    fees = resp[(resp["parameter"] == PRICE) & (resp["kpi"] == "revenue_fees")]
    assert fees["mean"].iloc[1] > fees["mean"].iloc[0]  # the dearer plan bills more


def test_sweep_response_takes_categorical_values_and_unbalanced_points():
    pts = pd.DataFrame(
        {
            "point": ["a", "a", "b", "c"],
            "replication": [0, 1, 0, 0],
            "rule": ["cutoff", "cutoff", "payg", "payg"],
        }
    )
    for i, k in enumerate(KPIS):
        pts[k] = np.array([1.0, 3.0, 10.0, 20.0]) * (i + 1)
    resp = sweep_response(pts, ["rule"]).set_index(["value", "kpi"])
    assert resp.loc[("cutoff", "requests"), "mean"] == pytest.approx(2.0 * 10)
    assert resp.loc[("payg", "requests"), "mean"] == pytest.approx(15.0 * 10)
    assert resp.loc[("payg", "requests"), "n"] == 2
    table = sweep_points(pts, ["rule"]).set_index("point")
    assert table.loc["a", "replications"] == 2
    assert table.loc["a", "subscribers_end"] == 2.0
    assert np.isnan(table.loc["b", "subscribers_end_lo"])  # one replication: no interval


# ---------------------------------------------------------------------- the pages


def _html(p: Path) -> str:
    """The page's text without the line-break hints (``<wbr>``) in its table headings."""
    return p.read_text(encoding="utf-8").replace("<wbr>", "")


def test_reports_are_self_contained(reports: dict[str, Path], sweep_dir: Path):
    for kind, p in reports.items():
        text = _html(p)
        assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text), kind
        assert "http://" not in text, kind
        assert "https://" not in text, kind
        assert "<script" not in text.lower(), kind
        assert str(sweep_dir.parent) not in text, f"{kind}: machine path in the page"
        assert text.count("<figure>") == text.count('src="data:image/svg+xml;base64,'), kind
    run = _html(reports["run"])
    assert run.count("<figure>") == 7
    for heading in (
        "Headline KPIs",
        "Subscribers and churn by plan",
        "Revenue, GPU cost and",
        "Token mix by model",
        "Busy hour",
        "Latency and utilisation",
        "Quota use per plan",
        "Scenario facts",
    ):
        assert heading in run
    cmp = _html(reports["compare"])
    assert "lite.price_per_month=19.9 − lite.price_per_month=9.9" in cmp  # labelled by change
    assert "By plan" in cmp
    assert "By segment" in cmp
    assert "fees_per_subscriber_month" in cmp
    assert "setting(s) differ" in cmp
    assert "<td>plans.lite</td>" in cmp  # grouped by path
    assert "price_per_month = 9.9" in cmp
    assert "price_per_month = 19.9" in cmp
    sweep = _html(reports["sweep"])
    assert f"Response to {PRICE}" in sweep
    assert f"Response to {GPUS}" in sweep
    assert sweep.count("<figure>") == 2
    assert "4 finished of 4" in sweep
    for kpi in ("busy_hour_ttft_p95_s", "busy_hour_utilisation"):
        assert f"<th>{kpi}</th>" in sweep
    assert "Best point under a latency constraint" in sweep
    assert "Highest mean gross margin" not in sweep


def test_a_run_without_ledger_says_so(sweep_dir: Path, monkeypatch):
    monkeypatch.setattr("sim.report.figures.svg_data_uri", lambda fig: "data:,")  # text only
    text = build_report([sweep_dir / "points" / "p002"])
    assert text.count("outputs.ledger: false") == 2  # token mix and quota use
    assert text.count("<figure>") == 5  # the 7 of a run page, less token mix and quota use


def test_reports_render_in_headless_chromium(
    reports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
):
    shots = tmp_path_factory.mktemp("screenshots")
    pages = check_pages(list(reports.values()), screenshots=shots)
    for kind, page in zip(reports, pages, strict=True):
        assert page.problems() == [], kind
        assert page.figures, kind
        assert page.tables, kind
        assert all(f["width"] > 100 and f["height"] > 100 for f in page.figures), kind
        # every panel of every figure draws data; no table sticks out of the page
        assert all(f["marks"] and min(f["marks"]) > 0 for f in page.figures), kind
        assert page.overflow == [0] * len(page.tables), kind
        assert page.page_overflow == 0, kind
        assert page.screenshot is not None, kind
        assert page.screenshot.stat().st_size > 10_000, kind
    # the comparison's paired differences fit a laptop screen: intervals wrap under the means
    assert pages[2].scrolled == [0] * len(pages[2].tables)


def test_the_browser_check_fails_on_the_old_layout(reports: dict[str, Path], tmp_path: Path):
    """The comparison as it was before tables wrapped or scrolled: the check must object."""
    from matplotlib.figure import Figure

    from sim.report.html import fig_html

    page = _html(reports["compare"])
    old = tmp_path / "old.html"
    empty = Figure(figsize=(4, 3))
    ax = empty.subplots()
    ax.set(title="nothing drawn", xlabel="month", ylabel="seconds")
    undo = (  # no scroll wrapper, headings and intervals on one line
        "<style>.tw { overflow-x: visible; } th { white-space: nowrap; }"
        " td .ci { display: inline; white-space: nowrap; }</style></head>"
    )
    old.write_text(
        page.replace("</head>", undo).replace(
            "</main>", fig_html(empty, "empty", "an empty figure") + "</main>"
        ),
        encoding="utf-8",
    )
    (checked,) = check_pages([old])
    problems = "\n".join(checked.problems())
    assert re.search(r"table 0: overflows its box by \d+ px without a scroll wrapper", problems)
    assert "page: scrolls sideways" in problems
    assert f"figure {len(checked.figures) - 1}: no data marks" in problems


def test_the_browser_check_catches_a_broken_page(tmp_path: Path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        "<title>bad</title></head><body>"
        "<figure><img src='missing.png' alt='x'></figure>"
        "<figure><img style='width:0' src='data:image/svg+xml;base64,"
        "PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSIxMCIgaGVpZ2h0PSIxMCIvPg=="
        "' alt='y'></figure>"
        "<table><thead><tr><th>h</th></tr></thead><tbody></tbody></table>"
        "<div style='width:300px'><table style='width:900px'><tr><td>wide</td></tr></table></div>"
        "<div style='width:300px;overflow-x:auto'><table style='width:900px'><tr><td>scrolls</td>"
        "</tr></table></div>"
        "<script>console.error('deliberate console error'); notAFunction();</script>"
        "</body></html>"
    )
    good = tmp_path / "good.html"
    good.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' "
        "href='data:,'><title>ok</title></head><body><table><tr><td>1</td></tr>"
        "</table></body></html>"
    )
    page, ok = check_pages([bad, good])
    problems = "\n".join(page.problems())
    assert "deliberate console error" in problems
    assert "notAFunction is not defined" in problems
    assert "ERR_FILE_NOT_FOUND" in problems
    assert "missing.png" in problems
    assert "figure 0: image did not decode" in problems
    assert "figure 1: rendered 0x" in problems
    assert "table 0: no rows" in problems
    assert "table 1: overflows its box by 600 px without a scroll wrapper" in problems
    assert "table 2" not in problems  # wide, but it scrolls inside its box
    assert page.scrolled[2] == pytest.approx(600, abs=20)
    assert ok.problems() == []
    assert ok.tables == [1]


def test_a_missing_chromium_fails_unless_skipped_on_purpose(monkeypatch):
    from support import browser_check

    monkeypatch.setattr(browser_check.shutil, "which", lambda name: None)
    monkeypatch.delenv(browser_check.SKIP_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        browser_check.chromium_or_fail()
    monkeypatch.setenv(browser_check.SKIP_ENV, "1")
    with pytest.raises(pytest.skip.Exception):
        browser_check.chromium_or_fail()


def test_page_report_flags_each_kind_of_problem():
    p = PageReport(
        "file:///x.html",
        errors=["e"],
        requests=["https://cdn.example/x.js"],
        figures=[
            {"graphic": False, "width": 1, "height": 1, "natural_width": 1, "complete": True},
            {
                "graphic": True,
                "width": 9,
                "height": 9,
                "natural_width": 9,
                "complete": True,
                "marks": [3, 0],
            },
            {
                "graphic": True,
                "width": 9,
                "height": 9,
                "natural_width": 9,
                "complete": True,
                "marks": [],
            },
        ],
        tables=[0, 3],
        overflow=[0.0, 40.0],
        page_overflow=12.0,
    )
    assert p.problems() == [
        "console: e",
        "request outside the page: https://cdn.example/x.js",
        "figure 0: no image",
        "figure 1: panel 1 has no data marks",
        "figure 2: no data marks",
        "table 0: no rows",
        "table 1: overflows its box by 40 px without a scroll wrapper",
        "page: scrolls sideways by 12 px",
    ]


# ---------------------------------------------------------------------- bad input


def _no_stray_files(folder: Path) -> None:
    assert not list(folder.glob("report.html"))
    assert not list(folder.glob(".*.tmp-*"))


def test_not_a_folder_or_not_a_run(tmp_path: Path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert f"{tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a tokensim run or sweep folder" in capsys.readouterr().err
    assert not out.exists()
    _no_stray_files(tmp_path / "empty")


def test_a_run_folder_missing_a_file_is_refused(sweep_dir: Path, tmp_path: Path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(sweep_dir / "points" / "p002", broken)
    (broken / "latency.csv").unlink()
    assert main(["report", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err
    assert "latency.csv" in err
    _no_stray_files(broken)
    (broken / "latency.csv").write_text("replication,month\n0,0\n")  # columns missing
    assert main(["report", str(broken)]) == 2
    assert "latency.csv: missing column(s) pool" in capsys.readouterr().err
    _no_stray_files(broken)


def test_a_failed_report_leaves_the_previous_one(sweep_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "keep.html"
    out.write_text("previous")
    bad_sweep = tmp_path / "bad-sweep"
    bad_sweep.mkdir()
    (bad_sweep / "sweep.json").write_text((sweep_dir / "sweep.json").read_text())
    pd.read_csv(sweep_dir / "points.csv").drop(columns=["gross_margin"]).to_csv(
        bad_sweep / "points.csv", index=False
    )
    assert main(["report", str(bad_sweep), "--out", str(out)]) == 2
    assert "points.csv: missing column(s) gross_margin" in capsys.readouterr().err
    assert out.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_unfinished_lhs_sweep(sweep_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("sim.report.figures.svg_data_uri", lambda fig: "data:,")  # text only
    d = tmp_path / "lhs"
    d.mkdir()
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    spec.update(design="lhs", status="running")
    spec["parameters"][0]["values"] = {"low": 5.0, "high": 25.0}
    spec["points"].append({"point": "p004", "params": {PRICE: 12.0, GPUS: 2}})
    (d / "sweep.json").write_text(json.dumps(spec))
    (d / "points.csv").write_text("")
    with pytest.raises(ReportError, match=r"points\.csv: no finished points"):
        build_report([d])
    (d / "points.csv").write_text((sweep_dir / "points.csv").read_text())
    text = build_report([d])
    assert "5 .. 25" in text
    assert "4 finished of 5" in text
    assert "running" in text


def test_a_comparison_takes_run_folders_only(sweep_dir: Path, tmp_path: Path, capsys):
    run = sweep_dir / "points" / "p000"
    assert main(["report", str(run), str(sweep_dir), "--out", str(tmp_path / "x.html")]) == 2
    assert "a comparison takes run folders only" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    with pytest.raises(ReportError, match="is a folder"):
        write_report([run], tmp_path)


# ---------------------------------------------------------------------- what a reader sees


def test_prices_are_shown_exactly_as_the_scenario_gives_them(sweep_dir: Path):
    from sim.report.html import fmt_exact
    from sim.report.pages import _facts

    assert fmt_exact(159.9, "CNY") == "159.9 CNY"
    assert fmt_exact(299.9) == "299.9"
    assert fmt_exact(199.0) == "199"
    assert fmt_exact(1234567.5, "CNY") == "1,234,567.5 CNY"
    assert fmt_exact(70_000_000) == "70,000,000"
    run = RunFolder.open(sweep_dir / "points" / "p000")
    run.scenario["plans"][0]["price_per_month"] = 159.9
    run.scenario["plans"][1]["price_per_month"] = 1299.9
    text = _facts(run)
    assert "<td>159.9 CNY</td>" in text
    assert "<td>1,299.9 CNY</td>" in text
    assert "160 CNY" not in text
    assert "currency" not in text.replace("<td>currency</td>", "")  # the scenario's own name


def test_differing_settings_are_grouped_by_path():
    from sim.report.pages import _setting_groups

    flats = [
        {"plans.a.price_per_month": "9.9", "plans.a.quota.amount": "10", "seed": "1"},
        {"plans.a.price_per_month": "19.9", "plans.a.quota.amount": "20", "seed": "2"},
    ]
    paths = sorted(flats[0])
    assert _setting_groups(flats, paths) == [
        (
            "plans.a",
            [
                "price_per_month = 9.9\nquota.amount = 10",
                "price_per_month = 19.9\nquota.amount = 20",
            ],
        ),
        ("seed", ["1", "2"]),
    ]
    many = [{f"segments.s{i}.x{j}": str(k) for i in range(12) for j in range(7)} for k in (1, 2)]
    assert len(_setting_groups(many, sorted(many[0]))) == 12  # 84 settings, 12 rows


def test_a_one_valued_sweep_parameter_is_a_setting_not_an_axis(
    sweep_dir: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr("sim.report.figures.svg_data_uri", lambda fig: "data:,")  # text only
    d = tmp_path / "sweep"
    shutil.copytree(sweep_dir, d)
    spec = json.loads((d / "sweep.json").read_text())
    fixed = "plans.pro.price_per_month"
    spec["parameters"].append({"path": fixed, "values": [159.9]})
    (d / "sweep.json").write_text(json.dumps(spec))
    pts = pd.read_csv(d / "points.csv")
    pts.insert(3, fixed, 159.9)
    pts.to_csv(d / "points.csv", index=False)
    page = build_report([d])
    assert f"Response to {fixed}" not in page
    assert page.count("<h2>Response to ") == 2
    assert page.count("<figure>") == 2
    assert f'<td>{fixed}</td><td class="l">159.9</td>' in page
    assert "not an axis" in page


def test_the_best_point_is_named_only_under_its_latency_constraint():
    from sim.report.pages import _best_point

    pts = pd.DataFrame(
        {
            "point": ["p000", "p001", "p002"],
            "gpus": [2, 3, 4],
            "gross_margin": [300.0, 200.0, 100.0],
            "busy_hour_ttft_p95_s": [5.0, 0.9, 0.5],
            "busy_hour_utilisation": [0.99, 0.7, 0.5],
        }
    )
    note = _best_point(pts, ["gpus"], {"standard": 2.0, "premium": 1.0}, "CNY")
    assert "point p001 (gpus = 3)" in note  # p000 earns more but misses the 1 s target
    assert "2 of 3 points" in note
    assert "1 s (premium)" in note
    assert "No best point" in _best_point(pts, ["gpus"], {"premium": 0.1}, "CNY")
    assert "No best point" in _best_point(pts, ["gpus"], {}, "CNY")


def test_short_horizon_comparison_series_are_bars_from_zero():
    from matplotlib.container import BarContainer

    from sim.report.figures import compare_series

    one = pd.DataFrame(
        {
            f"{c}{s}": [v]
            for c, v in (
                ("subscribers_end", 100.0),
                ("revenue_total", 5e6),
                ("gross_margin", 2e6),
                ("churn_rate", 0.09),
                ("ttft_p95_s", 0.4),
            )
            for s in ("", "_lo", "_hi")
        },
        index=pd.Index([0], name="month"),
    )
    day = pd.DataFrame({"mean": [0.5] * 24, "ci95_low": 0.4, "ci95_high": 0.6})
    fig = compare_series({"a": one, "b": one * 1.01}, {"a": day, "b": day}, "CNY")
    axes = fig.get_axes()
    for ax in axes[:5]:
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert len(bars) == 2, ax.get_title()  # a bar group per run
        series = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert all(len(ln.get_xdata()) > 1 for ln in series), "a lone dot"
        assert ax.get_legend() is not None
    for ax in (axes[3], axes[4], axes[5]):  # churn, TTFT, utilisation
        assert ax.get_ylim()[0] == 0, ax.get_title()
    fig.canvas.draw()
    assert axes[1].yaxis.get_offset_text().get_text() == ""
