"""Sweeps and replications on a dask LocalCluster: same numbers as in-process, resumable."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.experiments import distributed
from sim.experiments.distributed import QUIET_CLUSTER, WORKER_ENV_UNSET, map_unordered, open_client
from sim.experiments.runner import run_scenario
from sim.results.kpis import KPIS
from sim.scenario.loading import validate_data

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests


@pytest.fixture(scope="module")
def client():
    with open_client(workers=2) as c:
        yield c


def _scenario_file(d: Path, **sweep) -> Path:
    s = small_dict(horizon_months=1, replications=2)
    s["outputs"] = {"ledger": False, "plots": False}
    if sweep:
        s["sweep"] = sweep
    f = d / "s.yaml"
    f.write_text(yaml.safe_dump(s))
    return f


def test_workers_run_without_the_nannys_malloc_trim_setting(client):
    env = client.run(lambda: {k: os.environ.get(k) for k in WORKER_ENV_UNSET})
    assert len(env) == 2
    assert all(v is None for w in env.values() for v in w.values())


def test_workers_start_with_the_quiet_loop_settings(client):
    import dask

    got = client.run(lambda: {k: dask.config.get(k) for k in QUIET_CLUSTER})
    assert len(got) == 2
    assert all(cfg == QUIET_CLUSTER for cfg in got.values())


def _die_once(marker_dir: str, i: int) -> int:
    d = Path(marker_dir)
    with open(d / f"count-{i}", "a") as f:
        f.write("x")
    if i == 0 and not (d / "died").exists():
        (d / "died").touch()
        os._exit(1)  # the worker process dies mid-task
    time.sleep(0.05)
    return i * i


def test_a_lost_worker_costs_only_its_own_task(tmp_path: Path):
    with open_client(workers=2) as c:
        got = dict(map_unordered(c, _die_once, [(str(tmp_path), i) for i in range(8)]))
    assert got == {i: i * i for i in range(8)}
    assert (tmp_path / "died").exists()
    runs = {i: len((tmp_path / f"count-{i}").read_text()) for i in range(8)}
    assert runs[0] == 2  # the killed task ran again elsewhere
    assert all(runs[i] == 1 for i in range(1, 8))  # nothing else was recomputed


def test_replications_on_the_cluster_equal_in_process_ones(client):
    s = validate_data(small_dict(horizon_months=1, replications=3))
    local = run_scenario(s).kpis()
    remote = run_scenario(s, client=client).kpis()
    pd.testing.assert_frame_equal(local, remote)


def test_run_uses_every_core_by_default_with_the_same_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Without --workers a run of several replications opens a local cluster (workers as
    run_workers chooses); its tables equal the in-process ones."""
    f = _scenario_file(tmp_path)
    assert main(["run", str(f), "--out", str(tmp_path / "a"), "-q", "--workers", "1"]) == 0
    monkeypatch.delenv(distributed.WORKERS_ENV, raising=False)
    monkeypatch.setattr(distributed, "default_workers", lambda: 8)
    opened: list[int | None] = []
    real = distributed.open_client

    def spy(scheduler: str | None = None, workers: int | None = None) -> Any:
        opened.append(workers)
        return real(scheduler, min(workers or 2, 2))

    monkeypatch.setattr(distributed, "open_client", spy)
    assert main(["run", str(f), "--out", str(tmp_path / "b"), "-q"]) == 0
    reps = json.loads((tmp_path / "b" / "manifest.json").read_text())["replications"]
    assert opened == [distributed.run_workers(reps)]
    for name in ("kpis_by_replication.csv", "monthly.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "a" / name), pd.read_csv(tmp_path / "b" / name)
        )


def test_stopping_rule_stops_when_precise_enough_and_at_the_cap(tmp_path: Path):
    f = _scenario_file(tmp_path)
    loose, tight = tmp_path / "loose", tmp_path / "tight"
    args = ["run", str(f), "-q", "--ci-kpi", "revenue_total", "--max-replications", "5"]
    assert main([*args, "--out", str(loose), "--ci-halfwidth", "0.5"]) == 0
    assert main([*args, "--out", str(tight), "--ci-halfwidth", "1e-9"]) == 0
    assert json.loads((loose / "manifest.json").read_text())["replications"] == 2
    assert json.loads((tight / "manifest.json").read_text())["replications"] == 5
    s = json.loads((loose / "summary.json").read_text())["revenue_total"]
    assert (s["ci95_high"] - s["ci95_low"]) / 2 <= 0.5 * abs(s["mean"])
    bad = main([*args, "--out", str(tmp_path / "x"), "--ci-halfwidth", "0.1", "--ci-kpi", "nope"])
    assert bad == 2
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory, client) -> Path:
    d = tmp_path_factory.mktemp("sweep")
    f = _scenario_file(d, parameters={"plans.lite.price_per_month": [9.9, 29.9]})
    code = main(
        [
            "sweep",
            str(f),
            "--set",
            "cluster.pools.big.gpus=1,2",
            "--out",
            str(d / "out"),
            "--scheduler",
            client.scheduler.address,
            "-q",
        ]
    )
    assert code == 0
    return d


def test_sweep_writes_a_tidy_table_and_a_run_folder_per_point(sweep_dir: Path):
    out = sweep_dir / "out"
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["status"] == "complete"
    assert meta["design"] == "factorial"
    assert [p["point"] for p in meta["points"]] == ["p000", "p001", "p002", "p003"]
    t = pd.read_csv(out / "points.csv")
    assert len(t) == 4 * 2
    paths = ["plans.lite.price_per_month", "cluster.pools.big.gpus"]
    assert list(t.columns[:4]) == ["point", *paths, "replication"]
    assert set(KPIS) <= set(t.columns)
    for p in meta["points"]:
        rows = t[t["point"] == p["point"]]
        for path, v in p["params"].items():
            assert (rows[path] == v).all()
        k = pd.read_csv(out / "points" / p["point"] / "kpis_by_replication.csv")
        pd.testing.assert_frame_equal(
            rows[list(KPIS)].reset_index(drop=True), k[list(KPIS)], check_dtype=False
        )


def test_a_sweep_point_equals_a_direct_run_of_its_scenario(sweep_dir: Path):
    base = small_dict(horizon_months=1, replications=2)
    base["outputs"] = {"ledger": False, "plots": False}
    base["plans"][0]["price_per_month"] = 29.9
    base["cluster"]["pools"][0]["gpus"] = 2
    direct = run_scenario(validate_data(base)).kpis()
    t = pd.read_csv(sweep_dir / "out" / "points.csv")
    p = t[(t["plans.lite.price_per_month"] == 29.9) & (t["cluster.pools.big.gpus"] == 2)]
    got = p[list(KPIS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, direct[list(KPIS)], check_dtype=False)
    # and the swept price moved revenue the right way on the same demand
    fees = t.groupby("plans.lite.price_per_month")["revenue_fees"].mean()
    assert fees[29.9] > fees[9.9]


def test_resume_reruns_only_unfinished_points(sweep_dir: Path, client):
    from sim.experiments.sweep import run_sweep, sweep_spec
    from sim.scenario.loading import load_scenario

    out = sweep_dir / "copy"
    import shutil

    shutil.copytree(sweep_dir / "out", out)
    shutil.rmtree(out / "points" / "p002")  # as if interrupted before p002 finished
    (out / "points.csv").unlink()
    before = {
        p: (out / "points" / p / "manifest.json").stat().st_mtime_ns
        for p in ("p000", "p001", "p003")
    }
    s = load_scenario(sweep_dir / "s.yaml")
    spec = sweep_spec(s, ["cluster.pools.big.gpus=1,2"])
    res = run_sweep(s, spec, out, client, resume=True)
    assert res.ran == ["p002"]
    assert res.reused == ["p000", "p001", "p003"]
    for p, t in before.items():
        assert (out / "points" / p / "manifest.json").stat().st_mtime_ns == t
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "points.csv"), pd.read_csv(sweep_dir / "out" / "points.csv")
    )


def test_sweep_refuses_bad_input_and_writes_nothing(sweep_dir: Path, tmp_path: Path):
    f = sweep_dir / "s.yaml"
    out = tmp_path / "o"
    assert main(["sweep", str(f), "--set", "plans.lite.price_per_month=-1", "--out", str(out)]) == 2
    assert main(["sweep", str(f), "--set", "plans.nope.price=1", "--out", str(out)]) == 2
    assert not out.exists()
    # an existing sweep needs --resume; a different sweep cannot be resumed into it
    existing = str(sweep_dir / "out")
    assert main(["sweep", str(f), "--out", existing, "-q"]) == 2
    assert main(["sweep", str(f), "--out", existing, "--resume", "-q"]) == 2


def test_a_bad_workers_variable_exits_2_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    f = _scenario_file(tmp_path)
    monkeypatch.setenv(distributed.WORKERS_ENV, "zero")
    out = tmp_path / "o"
    assert main(["run", str(f), "--out", str(out), "-q"]) == 2
    assert not out.exists()


def test_default_workers_are_one_per_core_and_at_most_one_per_replication(
    monkeypatch: pytest.MonkeyPatch,
):
    """One replication in-process, never more workers than cores or replications; the
    environment variable wins."""
    monkeypatch.delenv(distributed.WORKERS_ENV, raising=False)
    monkeypatch.setattr(distributed, "default_workers", lambda: 2)
    assert [distributed.run_workers(r) for r in range(1, 6)] == [1, 2, 2, 2, 2]
    monkeypatch.setattr(distributed, "default_workers", lambda: 4)
    assert distributed.run_workers(3) == 3
    assert distributed.run_workers(30) == 4
    monkeypatch.setattr(distributed, "default_workers", lambda: 1)
    assert distributed.run_workers(30) == 1
    monkeypatch.setenv(distributed.WORKERS_ENV, "2")
    assert distributed.run_workers(30) == 2
