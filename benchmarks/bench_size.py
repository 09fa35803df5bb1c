#!/usr/bin/env python3
"""Sizing benchmark: ``tokensim size`` on a scenario, checked by a brute-force sweep of one pool.

1. **size**: ``sim.capacity.search.size`` on the scenario for the targets (default
   ``ttft_p95<=2.0``, every pool), on a local dask cluster of ``--workers`` processes, exactly
   as ``tokensim size --workers N`` runs it. Timed whole (cluster start excluded); the report
   gives the answer, replications run, simulated months and wall time.
2. **brute force**: for one pool (``--pool``, default the first), every replica count from 1 to
   the answer + ``--above`` is simulated with the other pools at their answer, with the same
   seed and replications, and judged by the same rule (the busy-hour statistic's 95% interval
   against the bound). The brute-force answer is the smallest count from which every larger
   count meets; the report says whether it equals size's.

    .venv/bin/python benchmarks/bench_size.py scenarios/baseline.yaml --workers 2 \\
        --json results/bench_size.json

A benchmark, not a test: it asserts nothing; it prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    """Run the benchmark and print (and optionally save) the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", nargs="?", default=str(REPO / "scenarios" / "baseline.yaml"))
    p.add_argument(
        "--slo",
        action="append",
        help="targets (default ttft_p95<=2.0, the baseline SLA classes' TTFT target)",
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--pool", help="pool of the brute-force check (default: the first)")
    p.add_argument("--above", type=int, default=1, help="counts above the answer to check")
    p.add_argument("--no-brute-force", action="store_true")
    p.add_argument("--json", help="write the measurements here")
    a = p.parse_args()

    from sim.capacity.cells import judge
    from sim.capacity.defaults import DEFAULT_REPLICATIONS
    from sim.capacity.measure import measure
    from sim.capacity.pools import pool_specs, with_counts
    from sim.capacity.search import size
    from sim.experiments.distributed import map_unordered, open_client
    from sim.scenario.loading import load_scenario

    s = load_scenario(a.scenario)
    slos = a.slo or ["ttft_p95<=2.0"]
    report: dict = {
        "scenario": s.name,
        "slo": slos,
        "workers": a.workers,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    with open_client(None, a.workers) as client:
        t0 = time.perf_counter()
        sz = size(s, slos, client=client, log=lambda m: print(m, file=sys.stderr, flush=True))
        wall = time.perf_counter() - t0
        answer = {r["pool"]: int(r["replicas"]) for r in sz.answer.to_dict(orient="records")}
        report["size"] = {
            "wall_s": round(wall, 1),
            "replications_run": sz.replications_run,
            "simulated_months": sz.simulated_months,
            "count_vectors": int(sz.evaluations["evaluation"].nunique()),
            "answer_replicas": answer,
            "answer_gpus": {r["pool"]: int(r["gpus"]) for r in sz.answer.to_dict(orient="records")},
            "confidence": {r["pool"]: r["confidence"] for r in sz.answer.to_dict(orient="records")},
            "notes": sz.notes,
            "answer": sz.answer.to_dict(orient="records"),
            "evaluations": sz.evaluations.to_dict(orient="records"),
        }
        shown = {k: v for k, v in report["size"].items() if k not in ("answer", "evaluations")}
        print(json.dumps(shown, indent=2))
        if not a.no_brute_force:
            specs = pool_specs(s)
            pool = a.pool or specs[0].name
            cell = _cell_for(pool, specs)
            reps = DEFAULT_REPLICATIONS
            verdicts = {}
            t1 = time.perf_counter()
            for n in range(1, answer[pool] + a.above + 1):
                counts = {k: (v,) * s.horizon_months for k, v in answer.items()}
                counts[pool] = (n,) * s.horizon_months
                sc = with_counts(s, counts, specs)
                args = [(sc, s.seed, r, sz.targets, False) for r in range(reps)]
                ms = [m for _, m in sorted(map_unordered(client, measure, args))]
                verdicts[n] = judge(ms, cell, sz.targets)[0]
                print(f"brute force {pool}={n}: {verdicts[n]}", file=sys.stderr, flush=True)
            meets = [n for n in verdicts if all(verdicts[k] == "meets" for k in verdicts if k >= n)]
            brute = min(meets) if meets else None
            report["brute_force"] = {
                "pool": pool,
                "verdicts": verdicts,
                "answer_replicas": brute,
                "agrees": brute == answer[pool],
                "wall_s": round(time.perf_counter() - t1, 1),
            }
            print(json.dumps(report["brute_force"], indent=2))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


def _cell_for(pool: str, specs: list) -> object:
    """The search's cell for a pool over every month (to judge with the same rule)."""
    from sim.capacity.cells import Cell

    return Cell(pool=next(p for p in specs if p.name == pool), month=None)


if __name__ == "__main__":
    sys.exit(main())
