#!/usr/bin/env python3
"""Sweep benchmark: 16 points x 4 replications on dask, 1 worker against all cores.

The workload is TPD (``scenarios/tpd-10k-30d.yaml``) scaled in code to ``--n`` subscribers
(default 3,000: about a second per replication on one core), swept over the chat plan's
price (4 values) and the pool's GPUs (4 values): 16 points, each run ``--reps`` times with
the sweep's common seed, through ``sim.experiments.sweep.run_sweep`` exactly as ``tokensim
sweep`` does (point folders written as they finish).

Configurations, each timed in a fresh Python subprocess, in alternating order per repeat:

* ``dask-1``: the product's local cluster with one worker;
* ``dask-all``: the product's local cluster with one worker per core;
* ``dask-default-all``: a ``LocalCluster`` with dask's default worker environment (the nanny
  sets ``MALLOC_TRIM_THRESHOLD_``), one worker per core: what the product would get without
  its allocator setting (``sim.experiments.distributed``), to show the regression it avoids;
* ``pool-1`` / ``pool-all``: the same replications in a plain ``ProcessPoolExecutor``
  (results returned, nothing written): the ceiling a pool of processes reaches here.

The sweep time excludes cluster start-up (reported apart). The report gives each
configuration's median wall time, simulated requests per second, and the scaling ratios.

    .venv/bin/python benchmarks/bench_sweep.py --repeats 2 --json results/bench_sweep.json

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "tpd-10k-30d.yaml"
TPD_N = 10_000
"""Initial subscribers of the scenario file."""
PRICES = [15, 20, 25, 30]
"""Chat plan prices swept (the scenario's currency per month)."""
GPU_FACTORS = [0.9, 1.0, 1.1, 1.25]
"""Pool sizes swept, as multiples of the scaled pool (TPD sizes it for 72% utilisation)."""
CONFIGS = ("dask-1", "dask-all", "dask-default-all", "pool-1", "pool-all")


def scaled_base(n: int) -> Any:
    """TPD scaled to n initial subscribers (sign-ups and GPUs in proportion)."""
    from sim.scenario.loading import load_scenario
    from sim.scenario.overrides import apply_overrides

    s = load_scenario(SCENARIO)
    f = n / TPD_N
    sets: dict[str, Any] = {}
    for g in s.segments:
        sets[f"segments.{g.name}.initial_subscribers"] = round(g.initial_subscribers * f)
        sets[f"segments.{g.name}.acquisition.per_month"] = g.acquisition.per_month * f  # type: ignore[union-attr]
    sets["cluster.pools.main.gpus"] = max(1, round(s.cluster.pools[0].gpus * f))
    sets["outputs.ledger"] = False
    sets["outputs.plots"] = False
    return apply_overrides(s, sets).model_copy(update={"name": f"tpd-{n}-30d"})


def spec_for(base: Any) -> Any:
    """The 4 x 4 factorial sweep."""
    from sim.scenario.schema import Sweep

    g = base.cluster.pools[0].gpus
    return Sweep(
        parameters={
            "plans.chat.price_per_month": PRICES,
            "cluster.pools.main.gpus": [max(1, round(g * x)) for x in GPU_FACTORS],
        }
    )


def measure(config: str, n: int, reps: int) -> dict[str, Any]:
    """One configuration, in this (fresh) process."""
    from sim.experiments.sweep import points, run_sweep

    base = scaled_base(n)
    spec = spec_for(base)
    workers = 1 if config.endswith("-1") else os.cpu_count() or 1
    t0 = time.perf_counter()
    if config.startswith("pool"):
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        from sim.experiments.runner import replicate

        pts = points(base, spec)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
            list(ex.map(_noop, range(workers)))  # start the processes
            t1 = time.perf_counter()
            futs = [
                ex.submit(replicate, p.scenario, base.seed, r) for p in pts for r in range(reps)
            ]
            res = [f.result() for f in futs]
            wall = time.perf_counter() - t1
        requests = sum(r.requests for r in res)
        return {
            "config": config,
            "workers": workers,
            "start_s": t1 - t0,
            "wall_s": wall,
            "tasks": len(res),
            "requests": requests,
        }
    if config == "dask-default-all":
        from distributed import Client, LocalCluster

        cm: Any = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=40,
            scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
        )
        cluster = cm.__enter__()
        client = Client(cluster, set_as_default=False)
    else:
        from sim.experiments.distributed import open_client

        cm = open_client(workers=workers)
        client = cm.__enter__()
    env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    try:
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            res = run_sweep(base, spec, Path(d) / "sweep", client, replications=reps)
            wall = time.perf_counter() - t1
    finally:
        if config == "dask-default-all":
            client.close()
        cm.__exit__(None, None, None)
    return {
        "config": config,
        "workers": workers,
        "start_s": t1 - t0,
        "wall_s": wall,
        "tasks": len(res.table),
        "requests": float(res.table["requests"].sum()),
        "worker_malloc_trim_threshold": sorted(set(map(str, env.values()))),
    }


def _noop(i: int) -> int:
    return i


def run_config(config: str, n: int, reps: int) -> dict[str, Any]:
    """Measure one configuration in a fresh interpreter (no state leaks between them)."""
    cmd = [sys.executable, __file__, "--worker", config, "--n", str(n), "--reps", str(reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Warm up, measure every configuration ``--repeats`` times, print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="initial subscribers (default 3000)")
    ap.add_argument("--reps", type=int, default=4, help="replications per point (default 4)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per configuration")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--json", help="write every measurement to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(measure(a.worker, a.n, a.reps)))
        return
    print(f"warm-up (numba cache): {run_config('pool-1', 200, 1)['wall_s']:.1f} s", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for rep in range(a.repeats):
        order = a.configs if rep % 2 == 0 else a.configs[::-1]
        for c in order:
            r = run_config(c, a.n, a.reps)
            r["repeat"] = rep
            rows.append(r)
            print(f"  {c:18s} repeat {rep}: {r['wall_s']:.1f} s", file=sys.stderr)
    med = {c: statistics.median(r["wall_s"] for r in rows if r["config"] == c) for c in a.configs}
    req = {c: statistics.median(r["requests"] for r in rows if r["config"] == c) for c in a.configs}
    start = {
        c: statistics.median(r["start_s"] for r in rows if r["config"] == c) for c in a.configs
    }
    ncpu = os.cpu_count()
    print(
        f"TPD at {a.n:,} subscribers, 30 days; 16 points x {a.reps} replications; "
        f"{ncpu} cores; medians of {a.repeats} runs"
    )
    print(
        f"{'config':18s} {'workers':>7} {'start s':>8} {'sweep s':>8} {'req/s':>12} {'x vs 1':>7}"
    )
    for c in a.configs:
        one = med.get("dask-1") if c.startswith("dask") else med.get("pool-1")
        ratio = f"{one / med[c]:.2f}" if one else "-"
        w = 1 if c.endswith("-1") else ncpu
        print(
            f"{c:18s} {w:>7} {start[c]:>8.1f} {med[c]:>8.1f} {req[c] / med[c]:>12,.0f} {ratio:>7}"
        )
    if "dask-1" in med and "dask-default-all" in med:
        print(
            f"dask default environment: {med['dask-1'] / med['dask-default-all']:.2f}x on all cores"
        )
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "median_wall_s": med}, indent=2) + "\n")


if __name__ == "__main__":
    main()
