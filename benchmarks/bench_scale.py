#!/usr/bin/env python3
"""Scale benchmark: the TPD workload at 100,000 subscribers for one and for twelve months.

The issue's targets on this class of machine (2 cores, the product uses one): 100,000
subscribers for one month in under a minute, for 12 months in under 15 minutes, with peak
memory under 4 GB. Each configuration runs in a fresh subprocess (after one untimed warm-up
that fills numba's cache) and reports engine time, whole-process time, simulated requests per
second, subscriber-months per second and peak resident memory.

    .venv/bin/python benchmarks/bench_scale.py                    # 100k x 1 month and 12 months
    .venv/bin/python benchmarks/bench_scale.py --n 100000 --months 1 --repeats 3

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIO = HERE.parent / "scenarios" / "tpd-10k-30d.yaml"
BASE_N = 10_000
BASE_SLOTS = 30  # TPD sizes the cluster proportionally: 30 slots per 10,000 subscribers


def worker(n: int, months: int, seed: int) -> dict[str, float]:
    """Run TPD scaled to n subscribers for ``months`` months; return the measurements."""
    t0 = time.perf_counter()
    from sim.engine.replication import run_replication
    from sim.scenario.loading import load_scenario
    from sim.world.build import build

    s = load_scenario(SCENARIO)
    k = n / BASE_N
    s.name = f"tpd-{n}-{months}m"
    s.horizon_months = months
    for seg in s.segments:
        seg.initial_subscribers = round(seg.initial_subscribers * k)
        seg.acquisition.per_month = seg.acquisition.per_month * k  # type: ignore[union-attr]
    s.cluster.pools[0].gpus = round(BASE_SLOTS * k)
    r = run_replication(build(s), seed)
    whole = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "months": months,
        "seed": seed,
        "engine_s": r.engine_s,
        "whole_s": whole,
        "requests": r.requests,
        "subscriber_months": r.subscriber_months,
        "req_per_s": r.requests / r.engine_s,
        "submonths_per_s": r.subscriber_months / r.engine_s,
        "peak_rss_mb": peak_mb,
    }


def run(n: int, months: int, seed: int) -> dict[str, float]:
    """One measurement in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--worker", str(n), str(months), str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, warm up, measure and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--months", type=int, nargs="+", default=[1, 12])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(*a.worker)))
        return
    run(1000, 1, 0)  # warm numba's cache
    print(f"TPD scaled to {a.n:,} subscribers (warm numba cache; one core per run)")
    print(
        f"{'months':>6} {'engine s':>9} {'whole s':>8} {'requests':>13} {'req/s':>11} "
        f"{'sub-months/s':>13} {'peak MB':>8}"
    )
    for months in a.months:
        rows = [run(a.n, months, seed) for seed in range(1, a.repeats + 1)]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"{months:>6} {med['engine_s']:>9.1f} {med['whole_s']:>8.1f} "
            f"{med['requests']:>13,.0f} {med['req_per_s']:>11,.0f} "
            f"{med['submonths_per_s']:>13,.0f} {med['peak_rss_mb']:>8,.0f}"
        )


if __name__ == "__main__":
    main()
