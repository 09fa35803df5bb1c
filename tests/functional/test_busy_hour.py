"""Busy-hour tables and goodput against the requests they summarise.

The run folder's busy-hour and by-hour latency tables are read from the engine's per-request
histograms; ``tokensim run --export-requests`` writes the same requests one by one. These tests
recompute the busy hour (ITU-T E.500: the hour of day with the most offered slot-seconds over a
month's days), the latency percentiles and the goodput from the exported requests and compare.
A histogram quantile is the centre of the bin holding the order statistic of rank ceil(q n).
sim.engine.resolution states the largest relative error of a bin's centre,
HIST_RELATIVE_ERROR (1.6%); :func:`test_histogram_bins_are_within_the_stated_resolution`
checks that statement on its own, and the table comparisons allow the bins' actual worst case
(see TABLE_TOLERANCE) so that they test the tables, not the statement.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.engine.accounting import _bin
from sim.engine.metrics import N_BINS, bin_value
from sim.engine.outcomes import DOWNGRADED, REFUSED_NO_CAPACITY, SERVED, THROTTLED
from sim.engine.resolution import HIST_MIN_S, HIST_RELATIVE_ERROR
from sim.experiments.runner import run_scenario
from sim.results import run_folder
from sim.results.busy_hour import ALL_CLASSES, QUANTILES
from sim.results.busy_hour import THROTTLED as THROTTLED_CLASS
from sim.scenario.loading import validate_data
from sim.units import SECONDS_PER_HOUR

STATED_RESOLUTION = 1.0 + HIST_RELATIVE_ERROR
"""Factor within which sim.engine.resolution says a histogram quantile is of the sample's."""
TABLE_TOLERANCE = 1.0156
"""Factor the table comparisons allow: the bins are the float's exponent and top 5 mantissa
bits, i.e. 32 equal-width bins per octave (each spanning a factor 1 + 1/32 at the bottom of an
octave), reported at the geometric centre, which is within sqrt(1 + 2^-5) = 1.0155 of any
value in the bin."""
METRICS = ("wait", "ttft", "tpot", "e2e")
MONTHS = 2
DAYS = 30


def congested(d: dict[str, Any]) -> dict[str, Any]:
    """One-slot replicas decoding at 40 tokens/s: queues form, waits are not all zero."""
    for m in d["catalog"]["models"]:
        m["serving"][0]["batch_slots_per_replica"] = 1
        m["serving"][0]["decode_tokens_per_s_per_gpu"] = 40
    return d


VARIANTS = {"as_given": lambda d: d, "congested": congested}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-month run of the small scenario with every request exported (one replication)."""
    tmp = tmp_path_factory.mktemp(f"busy-{request.param}")
    d = VARIANTS[request.param](small_dict(horizon_months=MONTHS, days_per_month=DAYS))
    path = write_yaml(tmp / "small.yaml", d)
    out = tmp / "run"
    argv = ["run", str(path), "--export-requests", f"0:{MONTHS * DAYS}", "-r", "1"]
    assert run_cli([*argv, "--no-plots", "-q", "--out", str(out)]) == 0
    return out


def read_requests(d: Path) -> pd.DataFrame:
    req = pd.read_parquet(d / run_folder.REQUESTS_DETAIL)
    req["month"] = req["day"] // DAYS
    for col in ("pool", "sla_class"):
        req[col] = req[col].astype(str)
    return req


def reached_pool(req: pd.DataFrame) -> pd.Series:
    """Requests whose work reached their pool: admitted, or refused for want of a slot."""
    return (req["outcome"] <= DOWNGRADED) | (req["outcome"] == REFUSED_NO_CAPACITY)


def in_class(req: pd.DataFrame) -> pd.Series:
    """Requests served in their SLA class (the population of the percentile columns)."""
    return (req["outcome"] == SERVED) & (req["sla_class"] != THROTTLED_CLASS)


def assert_histogram_quantile(value: float, sample: np.ndarray, q: float, what: str) -> None:
    """``value`` is the histogram quantile q of ``sample``, within the bins' resolution.

    The rank is ceil(q n); one rank either side absorbs the rounding of q n.
    """
    x = np.sort(sample)
    n = len(x)
    assert n > 0, what
    k = math.ceil(q * n) - 1  # 0-based index of the order statistic
    lo, hi = x[max(k - 1, 0)], x[min(k + 1, n - 1)]
    below = value >= lo / TABLE_TOLERANCE or (value == 0.0 and lo < HIST_MIN_S)
    assert below, (what, value, lo, x[k], hi)
    assert value <= hi * TABLE_TOLERANCE, (what, value, lo, x[k], hi)


def assert_row_matches(row: pd.Series, sample: pd.DataFrame, what: str) -> None:
    """Every percentile column of a table row against the exported requests it covers."""
    assert row["requests"] == len(sample), what
    for m in METRICS:
        for q in QUANTILES:
            col = f"{m}_p{round(q * 100)}_s"
            assert_histogram_quantile(
                float(row[col]), sample[f"{m}_s"].to_numpy(), q, f"{what} {col}"
            )


# ------------------------------------------------------------------- 1. percentiles


def test_histogram_bins_are_within_the_stated_resolution():
    """Every latency, binned as the engine bins it, is read back within STATED_RESOLUTION."""
    buf = np.empty(1, dtype=np.float64)
    bits = buf.view(np.int64)
    x = np.geomspace(HIST_MIN_S * 1.001, 1e4, 20_000)
    centre = bin_value(np.array([_bin(v, buf, bits, N_BINS) for v in x]))
    ratio = np.maximum(centre / x, x / centre)
    worst = int(ratio.argmax())
    assert ratio[worst] <= STATED_RESOLUTION, (x[worst], centre[worst], ratio[worst])


def test_busy_hour_and_its_percentiles_match_the_exported_requests(run_dir: Path):
    req = read_requests(run_dir)
    table = pd.read_csv(run_dir / run_folder.BUSY_HOUR)
    assert set(table["month"]) == set(range(MONTHS))
    reached = req[reached_pool(req)]
    served = req[in_class(req)]
    checked = 0
    for (month, pool), rows in table.groupby(["month", "pool"]):
        # the busy hour: most offered slot-seconds by hour of day over the month's days
        mine = reached[(reached["month"] == month) & (reached["pool"] == pool)]
        load = mine.groupby("hour_of_day")["service_s"].sum().reindex(range(24), fill_value=0)
        busy = int(load.to_numpy().argmax())
        assert set(rows["busy_hour"]) == {busy}, (month, pool, load.sort_values().tail(3))
        assert rows["offered_load_erlangs"].iloc[0] == pytest.approx(
            load[busy] / (DAYS * SECONDS_PER_HOUR), rel=1e-9
        )
        at = req[(req["month"] == month) & (req["pool"] == pool) & (req["hour_of_day"] == busy)]
        row = rows.set_index("sla_class").loc[ALL_CLASSES]
        assert row["offered"] == len(at)  # refused and throttled requests are offered too
        sample = served[
            (served["month"] == month) & (served["pool"] == pool) & (served["hour_of_day"] == busy)
        ]
        assert_row_matches(row, sample, f"busy hour {month}/{pool}")
        checked += 1
    assert checked == MONTHS * 2


def test_latency_by_hour_rows_match_the_exported_requests(run_dir: Path):
    req = read_requests(run_dir)
    served = req[in_class(req)]
    table = pd.read_csv(run_dir / run_folder.LATENCY_BY_HOUR)
    rows = table[table["sla_class"] == ALL_CLASSES]
    groups = dict(iter(served.groupby(["month", "hour_of_day", "pool"])))
    assert len(rows) == MONTHS * 24 * 2
    for _, row in rows.iterrows():
        key = (row["month"], row["hour_of_day"], row["pool"])
        assert_row_matches(row, groups[key], f"hour {key}")


# ------------------------------------------------------------------- 2. goodput


def throttling(d: dict[str, Any]) -> dict[str, Any]:
    """``lite`` cuts off at its quota; ``pro``, with a smaller quota, throttles to a slow lane."""
    d["plans"][1]["quota"]["amount"] = 600_000
    d["plans"][1]["on_exhaustion"] = {"rule": "throttle", "mode": "slow_lane", "min_gap_s": 30.0}
    return d


def slo_met(req: pd.DataFrame, ttft_s: float, tpot_s: float) -> pd.Series:
    """Served in class and within the small scenario's only SLA class targets."""
    return in_class(req) & (req["ttft_s"] <= ttft_s) & (req["tpot_s"] <= tpot_s)


def test_goodput_counts_refused_and_throttled_requests_as_misses():
    d = throttling(small_dict(horizon_months=1, days_per_month=DAYS))
    (cls,) = d["cluster"]["sla_classes"]
    r = run_scenario(validate_data(d), seed=7, replications=1, export_days=(0, DAYS))
    req = r.replications[0].requests_export.copy()
    req["pool"] = req["pool"].astype(str)
    req["sla_class"] = req["sla_class"].astype(str)
    outcome = req["outcome"]
    assert (outcome > DOWNGRADED).any(), "the cut-off plan refuses nothing: no test"
    assert (outcome == THROTTLED).any(), "the throttle plan throttles nothing: no test"
    met = slo_met(req, cls["slo"]["ttft_s"], cls["slo"]["tpot_s"])

    k = r.kpis().iloc[0]
    assert k["requests"] == len(req)
    assert k["goodput_share"] == pytest.approx(met.sum() / len(req), rel=1e-12)
    assert k["slo_attainment_served"] == pytest.approx(met.sum() / in_class(req).sum(), rel=1e-12)
    assert k["goodput_share"] < k["slo_attainment_served"]
    monthly = r.replications[0].acc.monthly
    assert k["goodput_share"] == pytest.approx(
        monthly["slo_met"].sum() / monthly["requests"].sum(), rel=1e-12
    )
    month = r.months().iloc[0]
    assert month["goodput_share"] == pytest.approx(k["goodput_share"], rel=1e-12)

    lat = r.latency()
    for pool, mine in req.groupby("pool"):
        row = lat[(lat["pool"] == pool) & (lat["sla_class"] == ALL_CLASSES)].iloc[0]
        assert row["offered"] == len(mine)
        assert row["slo_met"] == met[mine.index].sum()
        assert row["goodput_share"] == pytest.approx(row["slo_met"] / len(mine), rel=1e-12)
        assert (mine["outcome"] != SERVED).any()  # refused or throttled requests
        assert row["goodput_share"] < row["slo_attainment_served"]
        assert row["slo_attainment_served"] == pytest.approx(
            row["slo_met"] / in_class(mine).sum(), rel=1e-12
        )
        throttled = lat[(lat["pool"] == pool) & (lat["sla_class"] == THROTTLED_CLASS)].iloc[0]
        assert throttled["requests"] == ((mine["outcome"] == THROTTLED).sum())
        assert throttled["slo_met"] == 0


# ------------------------------------------------------------------- 3. zero capacity


def test_a_pool_without_cards_refuses_everything_and_reports_no_attainment(tmp_path: Path):
    d = small_dict(horizon_months=1, days_per_month=DAYS)
    d["cluster"]["pools"][1]["gpus"] = 0  # pool 'small' switched off; its model still chosen
    path = write_yaml(tmp_path / "off.yaml", d)
    out = tmp_path / "run"
    argv = ["run", str(path), "--export-requests", f"0:{DAYS}", "-r", "1", "--no-plots", "-q"]
    assert run_cli([*argv, "--out", str(out)]) == 0
    req = read_requests(out)
    off = req[req["pool"] == "small"]
    assert len(off) > 0
    assert (off["outcome"] > DOWNGRADED).all()  # nothing served
    assert (off["outcome"] == REFUSED_NO_CAPACITY).mean() > 0.9  # quota refusals come first
    assert (req.loc[req["pool"] != "small", "outcome"] != REFUSED_NO_CAPACITY).all()
    monthly = pd.read_csv(out / run_folder.MONTHLY_BY_PLAN_SEGMENT)
    assert monthly["refused_capacity"].sum() == (off["outcome"] == REFUSED_NO_CAPACITY).sum()

    for name in (run_folder.LATENCY, run_folder.BUSY_HOUR, run_folder.LATENCY_BY_HOUR):
        table = pd.read_csv(out / name)
        rows = table[table["pool"] == "small"]
        assert len(rows) > 0, name
        assert (rows["offered"] > 0).all(), name
        assert (rows["requests"] == 0).all(), name
        assert (rows["goodput_share"] == 0).all(), name
        assert rows["slo_attainment_served"].isna().all(), name  # not 1: nothing was served
        assert rows[[f"ttft_p{round(q * 100)}_s" for q in QUANTILES]].isna().all().all(), name
    busy = pd.read_csv(out / run_folder.BUSY_HOUR)
    busy = busy[busy["pool"] == "small"]
    assert (busy["slots"] == 0).all()
    assert busy["utilisation"].isna().all()
    assert (busy["offered_load_erlangs"] > 0).all()  # the work refused for want of a slot

    kpis = pd.read_csv(out / run_folder.KPIS_BY_REPLICATION).iloc[0]
    served_share = (req["outcome"] <= DOWNGRADED).mean()
    assert kpis["goodput_share"] <= served_share < 1
    assert kpis["goodput_share"] < kpis["slo_attainment_served"]


def test_validate_refuses_a_pool_smaller_than_one_replica(tmp_path: Path, capsys):
    d = small_dict()
    d["catalog"]["models"][0]["serving"][0]["gpus_per_replica"] = 8
    d["cluster"]["pools"][0]["gpus"] = 4
    path = write_yaml(tmp_path / "bad.yaml", d)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cluster.pools[0].gpus" in err
    assert "4 GPUs" in err
    assert "(8 GPUs)" in err
    d["cluster"]["pools"][0]["gpus"] = 0  # no cards at all stays allowed
    assert main(["validate", str(write_yaml(tmp_path / "off.yaml", d))]) == 0
    d["cluster"]["pools"][0]["gpus"] = 8
    d["cluster"]["pools"][0]["schedule"] = [{"month": 1, "gpus": 12}]  # 1.5 replicas: allowed
    assert main(["validate", str(write_yaml(tmp_path / "ok.yaml", d))]) == 0
    d["cluster"]["pools"][0]["schedule"] = [{"month": 1, "gpus": 3}]
    assert main(["validate", str(write_yaml(tmp_path / "step.yaml", d))]) == 2
    assert "cluster.pools[0].schedule[0].gpus" in capsys.readouterr().err


# ------------------------------------------------------------------- 4. utilisation


def test_busy_hour_utilisation_lies_between_the_daily_mean_and_the_peak_hour(run_dir: Path):
    hourly = pd.read_parquet(run_dir / run_folder.HOURLY_CLUSTER)
    hourly["pool"] = hourly["pool"].astype(str)
    hourly["month"] = hourly["day"] // DAYS
    table = pd.read_csv(run_dir / run_folder.BUSY_HOUR)
    pools = table.drop_duplicates(["month", "pool"])
    assert len(pools) == MONTHS * 2
    for _, row in pools.iterrows():
        h = hourly[(hourly["month"] == row["month"]) & (hourly["pool"] == row["pool"])]
        assert len(h) == DAYS * 24
        mean = h["busy_slot_s"].sum() / (h["slots"].sum() * SECONDS_PER_HOUR)
        at = h[h["hour_of_day"] == row["busy_hour"]]
        util, peak = row["utilisation"], row["peak_hour_utilisation"]
        assert util == pytest.approx(
            at["busy_slot_s"].sum() / (at["slots"].sum() * SECONDS_PER_HOUR), rel=1e-9
        )
        assert peak == pytest.approx(h["utilisation"].max(), rel=1e-9)
        assert 0 <= mean <= util <= peak <= 1, (row["month"], row["pool"], mean, util, peak)
        assert mean < util  # a strictly busier hour exists in these profiles
