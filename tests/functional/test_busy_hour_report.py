"""The busy hour in the run folder's PNG plots and in the HTML run report.

The fixture is one fresh run of the small scenario with two SLA classes (the pro plan in a
``priority`` class with its own TTFT target), two replications and plots on. The numbers the
report and the plots show are checked against busy_hour.csv and hourly_cluster.parquet read
back independently; older run folders (written before busy_hour.csv) are made from a copy.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from support.report_html import rows as _rows
from support.report_html import section as _section
from support.scenarios import small_dict

from sim.cli import main
from sim.report.data import (
    busy_hour_series,
    busy_hour_table,
    day_peak,
    latency_table,
    ttft_targets,
)
from sim.report.folders import ReportError, RunFolder
from sim.report.writer import build_report
from sim.results import plots
from sim.results.run_folder import (
    BUSY_HOUR,
    HOURLY_CLUSTER,
    KEY_FILES,
    KPIS_BY_REPLICATION,
    LATENCY,
    LATENCY_BY_HOUR,
    MANIFEST,
    MONTHLY,
    MONTHLY_BY_PLAN_SEGMENT,
)

TARGETS = {"standard": 2.0, "priority": 1.0}
"""TTFT targets (s) of the fixture's SLA classes."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("busy")
    s = small_dict(replications=2)
    s["outputs"] = {"ledger": False, "plots": True}
    s["cluster"]["sla_classes"] = [
        {"name": "standard", "priority": 1, "slo": {"ttft_s": TARGETS["standard"], "tpot_s": 0.2}},
        {"name": "priority", "priority": 0, "slo": {"ttft_s": TARGETS["priority"]}},
    ]
    s["plans"][1]["sla_class"] = "priority"
    f = tmp / "small.yaml"
    f.write_text(yaml.safe_dump(s))
    out = tmp / "run"
    assert main(["run", str(f), "--out", str(out), "-q"]) == 0
    return out


def _busy(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / BUSY_HOUR)


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


# ---------------------------------------------------------------------- the numbers


def test_busy_hour_table_means_over_replications(run: Path):
    busy = _busy(run)
    t = busy_hour_table(busy, ["big", "small"])
    assert list(t["pool"]) == ["big", "big", "small", "small"]
    assert list(t["month"]) == [0, 1, 0, 1]
    all_rows = busy[busy["sla_class"] == "all"]
    for r in t.itertuples():
        g = all_rows[(all_rows["pool"] == r.pool) & (all_rows["month"] == r.month)]
        assert r.replications == len(g) == 2
        for col in ("utilisation", "peak_hour_utilisation", "ttft_p95_s", "goodput_share"):
            assert getattr(r, col) == pytest.approx(g[col].mean()), col
        assert r.busy_hour_low == g["busy_hour"].min()
        assert r.busy_hour_high == g["busy_hour"].max()
        assert r.busy_hour in set(g["busy_hour"])
        # the busy hour's utilisation averages the month's days: never above its peak hour
        assert r.utilisation <= r.peak_hour_utilisation + 1e-12
    # one SLA class on its own
    p = busy_hour_table(busy, ["big", "small"], sla_class="priority")
    g = busy[(busy["sla_class"] == "priority") & (busy["pool"] == "big") & (busy["month"] == 0)]
    assert p.iloc[0]["ttft_p95_s"] == pytest.approx(g["ttft_p95_s"].mean())


def test_busy_hour_of_disagreeing_replications_is_their_most_frequent_earliest_first():
    rows = [
        {"replication": i, "month": 0, "pool": "a", "sla_class": "all", "busy_hour": h}
        for i, h in enumerate([14, 9, 14, 9, 20])
    ]
    busy = pd.DataFrame(rows).assign(
        offered_load_ratio=0.5,
        utilisation=[0.1, 0.2, 0.3, 0.4, 0.5],
        peak_hour_utilisation=0.9,
        ttft_p95_s=1.0,
        tpot_p95_s=0.1,
        goodput_share=0.9,
        slo_attainment_served=0.95,
    )
    t = busy_hour_table(busy).iloc[0]
    assert (t["busy_hour"], t["busy_hour_low"], t["busy_hour_high"]) == (9, 9, 20)
    assert t["utilisation"] == pytest.approx(0.3)
    assert busy_hour_table(busy, sla_class="standard").empty


def test_busy_hour_series_per_class_with_intervals(run: Path):
    busy = _busy(run)
    util, ttft = busy_hour_series(busy, ["big", "small"])
    assert list(util) == ["big", "small"]
    assert set(ttft["big"]) == {"standard", "priority"}  # the classes, not throttled or all
    big = busy[(busy["pool"] == "big") & (busy["sla_class"] == "priority")]
    s = ttft["big"]["priority"]
    assert list(s.index) == [0, 1]
    for m in (0, 1):
        x = big.loc[big["month"] == m, "ttft_p95_s"]
        assert s.loc[m, "mean"] == pytest.approx(x.mean())
        assert s.loc[m, "ci95_low"] < s.loc[m, "mean"] < s.loc[m, "ci95_high"]
    u = util["big"]["peak_hour_utilisation"]
    pk = busy[busy["pool"] == "big"].drop_duplicates(["replication", "month"])
    assert u["mean"].to_numpy() == pytest.approx(
        pk.groupby("month")["peak_hour_utilisation"].mean().to_numpy()
    )
    assert ttft_targets(yaml.safe_load((run / "scenario.yaml").read_text())) == TARGETS


def test_day_peak_is_the_busiest_day_and_agrees_with_the_peak_hour(run: Path):
    hourly = pd.read_parquet(run / HOURLY_CLUSTER)
    peak = day_peak(hourly, ["big", "small"])
    busy = _busy(run)
    for pool, s in peak.items():
        h = hourly[hourly["pool"] == pool]
        u = h["busy_slot_s"] / (h["slots"] * 3600)
        by = u.groupby([h["replication"], h["hour_of_day"]]).max().groupby(level=1).mean()
        assert s["mean"].to_numpy() == pytest.approx(by.to_numpy())
        # the highest hour of the peak day is the highest peak hour of any month
        per_rep = u.groupby(h["replication"]).max()
        bh = busy[busy["pool"] == pool].groupby("replication")["peak_hour_utilisation"].max()
        assert per_rep.to_numpy() == pytest.approx(bh.to_numpy())
        mean_day = u.groupby([h["replication"], h["hour_of_day"]]).mean().groupby(level=1).mean()
        assert (s["mean"].to_numpy() >= mean_day.to_numpy() - 1e-12).all()
        assert s["mean"].max() > 1.5 * mean_day.max()  # the peak is not the mean


def test_day_peak_of_two_days():
    hourly = pd.DataFrame(
        {
            "replication": 0,
            "hour": [5, 29],
            "hour_of_day": [5, 5],
            "pool": "p",
            "slots": [10, 10],
            "busy_slot_s": [0.2 * 36000, 0.8 * 36000],
        }
    )
    assert day_peak(hourly)["p"].loc[5, "mean"] == pytest.approx(0.8)


def test_latency_table_weights_each_share_by_its_denominator():
    lat = pd.DataFrame(
        {
            "replication": 0,
            "month": [0, 1],
            "pool": "p",
            "sla_class": "all",
            "offered": [100.0, 100.0],
            "requests": [95.0, 50.0],
            "slo_counted": [95.0, 50.0],
            "slo_met": [90.0, 40.0],
            "wait_mean_s": [1.0, 2.0],
        }
    )
    lat["goodput_share"] = lat["slo_met"] / lat["offered"]
    lat["slo_attainment_served"] = lat["slo_met"] / lat["slo_counted"]
    for w in ("ttft", "e2e"):
        for q in (50, 95, 99):
            lat[f"{w}_p{q}_s"] = 1.0
    r = latency_table(lat).iloc[0]
    assert r["goodput_share"] == pytest.approx(130 / 200)  # met / offered over both months
    assert r["slo_attainment_served"] == pytest.approx(130 / 145)
    assert r["wait_mean_s"] == pytest.approx((95 * 1 + 50 * 2) / 145)


# ---------------------------------------------------------------------- the PNG plots


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_busy_hour_png_is_written_and_real(run: Path):
    data = (run / "plots" / "busy_hour.png").read_bytes()
    w, h = _png_size(data)
    assert len(data) > 20_000
    assert h > 0.6 * w  # one row of panels per pool: two pools
    assert "plots/busy_hour.png" in json.loads((run / MANIFEST).read_text())[KEY_FILES]


@pytest.fixture(scope="module")
def drawn(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, plt.Figure]]:
    """The plots of the run's tables, read back from its files, kept open to inspect."""
    figs: dict[str, plt.Figure] = {}

    def keep(fig: plt.Figure, path: Path) -> Path:
        figs[path.name] = fig
        return path

    mp = pytest.MonkeyPatch()
    mp.setattr(plots, "_save", keep)
    try:
        paths = plots.write_plots(
            "CNY",
            pd.read_csv(run / MONTHLY),
            pd.read_csv(run / MONTHLY_BY_PLAN_SEGMENT),
            pd.read_parquet(run / HOURLY_CLUSTER),
            2,
            tmp_path_factory.mktemp("plots"),
            busy=_busy(run),
            ttft_targets=TARGETS,
        )
    finally:
        mp.undo()
    assert [p.name for p in paths][-1] == "busy_hour.png"
    yield figs
    for f in figs.values():
        plt.close(f)


def _line(ax: plt.Axes, label: str) -> np.ndarray:
    """The values of the series ``label``: a line's y data, or its bars' heights (the months
    of a short horizon are drawn as bars)."""
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    if not found:
        bars = [c for c in ax.containers if c.get_label() == label]
        assert len(bars) == 1, f"{label!r} not among {[ln.get_label() for ln in ax.get_lines()]}"
        return np.asarray([r.get_height() for r in bars[0].patches], dtype=float)
    assert len(found) == 1, f"{label!r} not among {[ln.get_label() for ln in ax.get_lines()]}"
    return np.asarray(found[0].get_ydata(), dtype=float)


def test_busy_hour_png_shows_the_busy_hour_table(run: Path, drawn):
    busy = _busy(run)
    fig = drawn["busy_hour.png"]
    axes = fig.get_axes()
    assert len(axes) == 4  # 2 pools x (utilisation, TTFT)
    for k, pool in enumerate(("big", "small")):
        util_ax, ttft_ax = axes[2 * k], axes[2 * k + 1]
        assert pool in util_ax.get_title()
        assert pool in ttft_ax.get_title()
        assert util_ax.get_xlabel() == ttft_ax.get_xlabel() == "month"
        assert ttft_ax.get_ylabel() == "seconds"
        b = busy[busy["pool"] == pool]
        per_pool = b.drop_duplicates(["replication", "month"]).groupby("month")
        assert _line(util_ax, "busy hour (mean over the month's days)") == pytest.approx(
            per_pool["utilisation"].mean().to_numpy()
        )
        assert _line(util_ax, "peak hour (the month's single busiest hour)") == pytest.approx(
            per_pool["peak_hour_utilisation"].mean().to_numpy()
        )
        for cls, target in TARGETS.items():
            c = b[b["sla_class"] == cls].groupby("month")["ttft_p95_s"].mean()
            assert _line(ttft_ax, f"{cls}: TTFT p95") == pytest.approx(c.to_numpy())
            assert _line(ttft_ax, f"{cls}: TTFT target {target:g} s") == pytest.approx(target)
        assert ttft_ax.get_legend() is not None
        assert util_ax.get_legend() is not None


def test_cluster_day_png_shows_mean_peak_and_busy_hours(run: Path, drawn):
    hourly = pd.read_parquet(run / HOURLY_CLUSTER)
    busy = _busy(run)
    ax = drawn["cluster_day.png"].get_axes()[0]
    for pool in ("big", "small"):
        g = hourly[hourly["pool"] == pool].groupby(["replication", "hour_of_day"])["utilisation"]
        mean = g.mean().groupby(level=1).mean().to_numpy()
        peak = g.max().groupby(level=1).mean().to_numpy()
        assert _line(ax, f"{pool}: mean over days") == pytest.approx(mean)
        assert _line(ax, f"{pool}: peak (max over days)") == pytest.approx(peak)
        assert peak.max() > mean.max()
        marks = [c for c in ax.collections if c.get_label() == f"{pool}: busy hour by month"]
        assert len(marks) == 1
        xy = marks[0].get_offsets()
        b = busy[busy["pool"] == pool].drop_duplicates(["replication", "month"])
        assert len(xy) == b["month"].nunique()
        for (hour, util), (_, g2) in zip(xy, b.groupby("month"), strict=True):
            assert hour in set(g2["busy_hour"])
            assert util == pytest.approx(g2["utilisation"].mean())


def _series_count(ax: plt.Axes) -> int:
    """Labelled data series of a panel: lines, bar groups, bands with a label."""
    labels = {
        a.get_label()
        for a in [*ax.get_lines(), *ax.containers, *ax.collections]
        if not str(a.get_label()).startswith("_")
    }
    return len(labels)


def test_every_png_panel_has_units_and_a_legend_when_it_has_several_series(drawn):
    for name, fig in drawn.items():
        for k, ax in enumerate(fig.get_axes()):
            where = f"{name} panel {k}"
            assert ax.get_xlabel(), where
            assert ax.get_ylabel(), where
            assert ax.has_data(), where
            if _series_count(ax) > 1:
                assert ax.get_legend() is not None, where


def test_png_ratio_and_latency_axes_start_at_zero(drawn):
    ttft, quality = drawn["latency_quality.png"].get_axes()
    churn = drawn["subscribers_churn.png"].get_axes()[1]
    for ax in (ttft, quality, churn):
        assert ax.get_ylim()[0] == 0, ax.get_title()


def test_png_latency_shows_the_busy_hour_and_the_targets(run: Path, drawn):
    ttft = drawn["latency_quality.png"].get_axes()[0]
    labels = [t.get_text() for t in ttft.get_legend().get_texts()]
    assert "busy hour (worst pool, SLA classes pooled)" in labels
    assert "all requests of the month" in labels
    assert any("target 1 s" in t for t in labels)
    assert any("target 2 s" in t for t in labels)
    months = pd.read_csv(run / MONTHLY)
    busy = [
        c for c in ttft.containers if c.get_label() == "busy hour (worst pool, SLA classes pooled)"
    ]
    assert len(busy) == 1  # two months: bars, not a two-point line
    heights = [r.get_height() for r in busy[0].patches]
    assert heights == pytest.approx(months.groupby("month")["busy_hour_ttft_p95_s"].mean().tolist())


def test_png_short_horizon_series_are_bars(drawn):
    for name, k in (("latency_quality.png", 0), ("subscribers_churn.png", 1)):
        ax = drawn[name].get_axes()[k]
        assert ax.containers, f"{name} panel {k}: no bars"
        assert all(len(ln.get_xdata()) != 1 for ln in ax.get_lines()), "a lone dot"


def test_png_revenue_has_no_offset_and_names_every_source(run: Path, drawn):
    ax = drawn["revenue_cost_margin.png"].get_axes()[0]
    ax.figure.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert not any("e" in t for t in ticks), ticks
    months = pd.read_csv(run / MONTHLY)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    topups = months.groupby("month")["revenue_topups"].mean().sum()
    assert f"top-up packs: {topups:,.0f} CNY" in labels  # visible even when its bar is not
    assert ax.get_ylabel() == "CNY per month"


def test_plots_without_the_busy_hour_table_write_no_busy_hour_png(run: Path, tmp_path: Path):
    paths = plots.write_plots(
        "CNY",
        pd.read_csv(run / MONTHLY),
        pd.read_csv(run / MONTHLY_BY_PLAN_SEGMENT),
        pd.read_parquet(run / HOURLY_CLUSTER),
        2,
        tmp_path,
    )
    assert "busy_hour.png" not in {p.name for p in paths}
    assert (tmp_path / "cluster_day.png").is_file()
    assert not (tmp_path / "busy_hour.png").exists()


# ---------------------------------------------------------------------- the HTML report


@pytest.fixture(scope="module")
def page(run: Path) -> str:
    return build_report([run])


def test_report_has_a_busy_hour_section_before_latency(page: str):
    assert '<a href="#busy-hour">Busy hour</a>' in page
    assert '<section id="busy-hour"><h2>Busy hour</h2>' in page
    assert page.index('id="busy-hour"') < page.index('id="latency"')
    sec = _section(page, "busy-hour")
    assert sec.count("<figure>") == 1
    assert 'src="data:image/svg+xml;base64,' in sec
    assert "ITU-T E.500" in sec


def test_report_busy_hour_table_shows_busy_hour_csv(run: Path, page: str):
    busy = _busy(run)
    rows = _rows(_section(page, "busy-hour"))
    assert [r[:2] for r in rows] == [["big", "0"], ["big", "1"], ["small", "0"], ["small", "1"]]
    a = busy[busy["sla_class"] == "all"]
    for r in rows:
        g = a[(a["pool"] == r[0]) & (a["month"] == int(r[1]))]
        hours = set(g["busy_hour"])
        assert int(r[2].split(":")[0]) in hours
        if len(hours) > 1:
            assert f"({min(hours)}:00–{max(hours)}:00)" in r[2]
        assert r[3:6] == [
            _pct(g["offered_load_ratio"].mean()),
            _pct(g["utilisation"].mean()),
            _pct(g["peak_hour_utilisation"].mean()),
        ]
        assert r[6] == f"{g['ttft_p95_s'].mean():.3g} s"
        assert r[7] == f"{g['tpot_p95_s'].mean():.3g} s"
        assert r[8] == _pct(g["goodput_share"].mean())
        assert r[9] == _pct(g["slo_attainment_served"].mean())


def test_report_latency_section_shows_goodput_and_the_peak_day(run: Path, page: str):
    sec = _section(page, "latency")
    assert "SLO attainment (served)</th><th>goodput share</th>" in sec
    assert "peak utilisation (busiest day)" in sec
    lat = pd.read_csv(run / LATENCY)
    rows = {r[0]: r for r in _rows(sec) if " / " in r[0]}
    g = lat[(lat["pool"] == "big") & (lat["sla_class"] == "all")]
    assert rows["big / all"][-1] == _pct(g["slo_met"].sum() / g["offered"].sum())
    assert rows["big / all"][-2] == _pct(g["slo_met"].sum() / g["slo_counted"].sum())
    hourly = pd.read_parquet(run / HOURLY_CLUSTER)
    day = {r[0]: r for r in _rows(sec) if r[0] in ("big", "small")}
    for pool, r in day.items():
        h = hourly[hourly["pool"] == pool]
        pk = h.groupby(["replication", "hour_of_day"])["utilisation"].max().groupby(level=1).mean()
        assert r[4] == _pct(pk.max())
        assert r[5] == f"{pk.idxmax()}:00"


# ---------------------------------------------------------------------- older run folders


def _older(run: Path, dest: Path) -> Path:
    """A copy of ``run`` as written before the busy-hour tables: no busy_hour.csv or
    latency_by_hour.csv (nor in the manifest), slo_attainment not yet renamed, no goodput."""
    shutil.copytree(run, dest)
    for f in (BUSY_HOUR, LATENCY_BY_HOUR):
        (dest / f).unlink()
    m = json.loads((dest / MANIFEST).read_text())
    m[KEY_FILES] = [f for f in m[KEY_FILES] if f not in (BUSY_HOUR, LATENCY_BY_HOUR)]
    (dest / MANIFEST).write_text(json.dumps(m))
    new = ["goodput_share", "busy_hour_utilisation", "busy_hour_ttft_p95_s"]
    k = pd.read_csv(dest / KPIS_BY_REPLICATION).drop(columns=new)
    k.rename(columns={"slo_attainment_served": "slo_attainment"}).to_csv(
        dest / KPIS_BY_REPLICATION, index=False
    )
    lat = pd.read_csv(dest / LATENCY).drop(columns=["goodput_share", "offered", "slo_met"])
    lat.rename(columns={"slo_attainment_served": "slo_attainment"}).to_csv(
        dest / LATENCY, index=False
    )
    return dest


def test_an_older_run_folder_renders_without_the_busy_hour(run: Path, tmp_path: Path, capsys):
    old = _older(run, tmp_path / "old")
    folder = RunFolder.open(old)
    assert folder.older
    assert folder.busy_hour is None
    assert folder.latency["goodput_share"].isna().all()
    assert main(["report", str(old)]) == 0
    text = (old / "report.html").read_text()
    sec = _section(text, "busy-hour")
    assert "written before busy-hour tables" in sec
    assert "<figure>" not in sec
    assert "<table>" not in sec
    assert text.count("<figure>") == 4  # no ledger, no busy hour
    assert "Latency and utilisation" in text
    lat_rows = {r[0]: r for r in _rows(_section(text, "latency")) if " / " in r[0]}
    assert lat_rows["big / all"][-1] == "–"  # goodput share unknown in an older folder
    assert lat_rows["big / all"][-2].endswith("%")  # served-only attainment still shown


def test_a_damaged_run_folder_is_not_taken_for_an_older_one(run: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / BUSY_HOUR).unlink()  # the manifest still lists it
    with pytest.raises(ReportError, match=r"lacks busy_hour\.csv"):
        RunFolder.open(broken)
    shutil.copy(run / BUSY_HOUR, broken / BUSY_HOUR)
    _busy(run).drop(columns=["peak_hour_utilisation"]).to_csv(broken / BUSY_HOUR, index=False)
    with pytest.raises(ReportError, match=r"busy_hour\.csv: missing column\(s\) peak_hour"):
        build_report([broken])
    old = _older(run, tmp_path / "old")
    (old / "monthly.csv").unlink()
    with pytest.raises(ReportError, match=r"lacks monthly\.csv"):
        RunFolder.open(old)
