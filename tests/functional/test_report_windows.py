"""Usage windows in the HTML run report: the section, its table and its figure.

The fixture is one fresh run of the small scenario whose ``pro`` plan carries a rolling
1-hour window of 3 requests (users wait for it to roll) and a daily calendar cap that cuts off,
with two replications; a second run of the small scenario without windows checks that such
folders render as before. The numbers the report shows are checked against usage_windows.csv,
monthly_by_plan_segment.csv and hourly_cluster.parquet read back independently.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.browser_check import check_pages
from support.report_html import rows as _rows
from support.report_html import section as _section
from support.scenarios import small_dict

from sim.cli import main
from sim.report.data import deferred_by_hour, window_table
from sim.report.folders import ReportError, RunFolder
from sim.report.writer import build_report
from sim.results.number_format import fmt
from sim.results.run_folder import HOURLY_CLUSTER, MONTHLY_BY_PLAN_SEGMENT, USAGE_WINDOWS

WINDOWS = [
    {"name": "5h", "hours": 1, "allowance": 3, "on_limit": "wait"},
    {"name": "day", "kind": "calendar", "hours": 24, "allowance": 12, "on_limit": "cutoff"},
]
"""The ``pro`` plan's windows: tight enough that both fill every day."""
SECTIONS_WITHOUT_WINDOWS = ["kpis", "plans", "money", "tokens", "busy-hour", "latency"]
"""The run report's first sections when the run has no usage windows (as before windows)."""
FIGURE_ALT = "requests deferred by usage windows by hour of day"


def _run(tmp: Path, name: str, windows: bool) -> Path:
    """Run the small scenario (two replications, no ledger), with the pro plan's windows or not."""
    s = small_dict(replications=2)
    s["outputs"] = {"ledger": False, "plots": False}
    if windows:
        s["plans"][1]["windows"] = WINDOWS
        for g in s["segments"]:
            g["at_window_limit"] = {"wait_share": 1.0}
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump(s))
    out = tmp / name
    assert main(["run", str(f), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("windows"), "windowed", windows=True)


@pytest.fixture(scope="module")
def page(run: Path) -> str:
    return build_report([run])


def _section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', page)


def _expected(run: Path) -> pd.DataFrame:
    """Per plan, segment and window, from the CSVs: sums and means per replication-month."""
    w = pd.read_csv(run / USAGE_WINDOWS)
    b = pd.read_csv(run / MONTHLY_BY_PLAN_SEGMENT)
    n = w["replication"].nunique() * w["month"].nunique()
    sums = w.groupby(["plan", "segment", "window"])[["limit_hits", "lockouts", "lockout_hours"]]
    t = sums.sum().reset_index()
    req = b.groupby(["plan", "segment"])[["deferred", "refused_window"]].sum().reset_index()
    t = t.merge(req, on=["plan", "segment"], how="left")
    for c in ("limit_hits", "lockouts", "lockout_hours", "deferred", "refused_window"):
        t[f"{c}_mean"] = t[c] / n
    return t


# ---------------------------------------------------------------------- the numbers


def test_the_run_has_windows_that_bite(run: Path):
    """The fixture is worth testing with: both windows fill, users defer and are refused."""
    w = pd.read_csv(run / USAGE_WINDOWS)
    assert set(w["plan"]) == {"pro"}  # plans with windows only
    assert set(w["window"]) == {"5h", "day"}
    assert (w.groupby("window")["limit_hits"].sum() > 0).all()
    b = pd.read_csv(run / MONTHLY_BY_PLAN_SEGMENT)
    assert b["deferred"].sum() > 0
    assert b["refused_window"].sum() > 0


def test_window_table_is_means_per_replication_month(run: Path):
    folder = RunFolder.open(run)
    assert folder.usage_windows is not None
    t = window_table(
        folder.usage_windows,
        folder.window_requests,
        ["lite", "pro"],
        ["chat", "coder"],
        {"pro": ["5h", "day"]},
    )
    # scenario order: segment chat before coder, window 5h before day (not alphabetical)
    assert list(zip(t["segment"], t["window"], strict=True)) == [
        ("chat", "5h"),
        ("chat", "day"),
        ("coder", "5h"),
        ("coder", "day"),
    ]
    exp = _expected(run).set_index(["plan", "segment", "window"])
    for r in t.itertuples():
        e = exp.loc[(r.plan, r.segment, r.window)]
        for c in ("limit_hits", "lockouts", "lockout_hours", "deferred", "refused_window"):
            assert getattr(r, c) == pytest.approx(e[f"{c}_mean"]), c
        if e["lockouts"] > 0:
            assert r.hours_per_lockout == pytest.approx(e["lockout_hours"] / e["lockouts"])
        else:
            assert pd.isna(r.hours_per_lockout)


def test_deferred_by_hour_adds_up_to_the_deferred_requests(run: Path):
    hourly = pd.read_parquet(run / HOURLY_CLUSTER)
    d = deferred_by_hour(hourly[["replication", "day", "hour_of_day", "deferred"]])
    assert list(d.index) == list(range(24))
    days = hourly.groupby("replication")["day"].nunique()
    per_rep = hourly.groupby(["replication", "hour_of_day"])["deferred"].sum() / days
    assert d["mean"].to_numpy() == pytest.approx(per_rep.groupby("hour_of_day").mean().to_numpy())
    # every deferred request counts once, in the hour it was first sent
    b = pd.read_csv(run / MONTHLY_BY_PLAN_SEGMENT)
    reps = b["replication"].nunique()
    assert d["mean"].sum() * days.mean() == pytest.approx(b["deferred"].sum() / reps)
    assert (d["ci95_low"] <= d["mean"] + 1e-12).all()


# ---------------------------------------------------------------------- the page


def test_the_section_shows_after_the_busy_hour_with_its_figure(page: str):
    ids = _section_ids(page)
    assert ids[ids.index("busy-hour") + 1] == "windows"
    assert '<a href="#windows">Usage windows</a>' in page
    sec = _section(page, "windows")
    assert "<h2>Usage windows</h2>" in sec
    assert "A usage window caps what one subscriber may use" in sec
    assert f'alt="{FIGURE_ALT}"' in sec
    assert "mean over 2 replication(s) and 2 month(s)" in html.unescape(sec)


def test_the_table_shows_the_csv_means_per_month(run: Path, page: str):
    rows = _rows(_section(page, "windows"))
    exp = _expected(run).set_index(["plan", "segment", "window"])
    assert [tuple(r[:3]) for r in rows] == [
        ("pro", "chat", "5h"),
        ("pro", "chat", "day"),
        ("pro", "coder", "5h"),
        ("pro", "coder", "day"),
    ]
    columns = {  # table column -> (CSV column, unit)
        4: ("limit_hits", "requests"),
        5: ("lockouts", ""),
        7: ("deferred", "requests"),
        8: ("refused_window", "requests"),
    }
    shown_sums = set()
    for r in rows:
        e = exp.loc[tuple(r[:3])]
        assert r[3] in (
            "rolling 1 h: 3 requests; when full: wait",
            "calendar 24 h: 12 requests; when full: cutoff",
        )
        for i, (col, unit) in columns.items():
            assert r[i] == fmt(e[f"{col}_mean"], unit), (r[:3], col)
            shown_sums.add(r[i] == fmt(e[col], unit) and e[col] > 0)
        per = e["lockout_hours"] / e["lockouts"] if e["lockouts"] > 0 else None
        assert r[6] == fmt(per), (r[:3], "hours per lock-out")
    assert shown_sums == {False}  # no nonzero cell that a sum would also give
    # the columns are told apart: each differs from the others somewhere
    for i in columns:
        for j in columns:
            if i < j:
                assert any(r[i] != r[j] for r in rows), (i, j)


def test_the_report_looks_right_in_a_browser(run: Path, page: str, tmp_path: Path):
    f = tmp_path / "report.html"
    f.write_text(page, encoding="utf-8")
    (checked,) = check_pages([f])
    assert checked.problems() == []
    assert all(f["marks"] and min(f["marks"]) > 0 for f in checked.figures)
    assert checked.page_overflow == 0


def test_without_deferrals_a_note_replaces_the_figure(run: Path, tmp_path: Path):
    copy = tmp_path / "no-deferrals"
    shutil.copytree(run, copy)
    hourly = pd.read_parquet(copy / HOURLY_CLUSTER)
    hourly.assign(deferred=0.0).to_parquet(copy / HOURLY_CLUSTER, index=False)
    sec = _section(build_report([copy]), "windows")
    assert FIGURE_ALT not in sec
    assert "No request was deferred" in sec
    assert len(_rows(sec)) == 4


def test_a_damaged_usage_windows_csv_is_refused_by_name(run: Path, tmp_path: Path):
    copy = tmp_path / "damaged"
    shutil.copytree(run, copy)
    w = pd.read_csv(copy / USAGE_WINDOWS)
    w["lockouts"] = w["lockouts"].astype(object)
    w.loc[0, "lockouts"] = "many"
    w.to_csv(copy / USAGE_WINDOWS, index=False)
    with pytest.raises(ReportError, match=r"usage_windows\.csv: column lockouts, line 2"):
        build_report([copy])


def test_a_run_without_windows_renders_as_before(tmp_path: Path):
    plain = _run(tmp_path, "plain", windows=False)
    assert not (plain / USAGE_WINDOWS).exists()
    assert RunFolder.open(plain).usage_windows is None
    page = build_report([plain])
    assert _section_ids(page)[: len(SECTIONS_WITHOUT_WINDOWS)] == SECTIONS_WITHOUT_WINDOWS
    assert 'id="windows"' not in page
    assert "Usage windows" not in page
    assert FIGURE_ALT not in page
