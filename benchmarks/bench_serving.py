#!/usr/bin/env python3
"""Speed of the batched serving model beside the slot model, on TPD-sized demand.

The TPD workload (``scenarios/tpd-10k-30d.yaml``: 10,000 subscribers, 30 days, one pool of 30
single-request slots at 50 output tokens/s) runs as it is (``slots``) and with its pool
declared ``serving: batched`` in two shapes that keep its 50 tokens/s per request at low load:

* ``batched-1x30``: one replica running up to 30 requests, 20 ms steps (1 / 50 tokens/s),
  1 us more per request decoding and 1e-9 s per context token held;
* ``batched-30x1``: 30 replicas of one request each (the router looks at all 30 per arrival),
  ``least_loaded`` or ``round_robin``.

Each variant runs ``--repeats`` times, alternating, in this process after one untimed warm-up
run of each (numba compilation). The report gives each variant's median engine time, simulated
requests per second, utilisation and mean wait, and its median time ratio to ``slots``.

    .venv/bin/python benchmarks/bench_serving.py --repeats 5

This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paired import alternate, medians

from sim.engine.replication import run_replication
from sim.results.kpis import replication_kpis
from sim.scenario.loading import load_scenario
from sim.scenario.overrides import apply_overrides
from sim.scenario.schema import Scenario
from sim.world.build import build

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "tpd-10k-30d.yaml"
STEP = "catalog.models.tpd-llm.serving.0"
TPD_STEP_S = 1.0 / 50.0
"""TPD's decode speed per request (50 tokens/s) as a step time at low batch (s)."""


def variants(base: Scenario) -> dict[str, Scenario]:
    """The slot scenario and its batched shapes (same demand, same seed)."""
    step = {
        "base_s": TPD_STEP_S,
        "per_request_s": 1e-6,
        "per_context_token_s": 1e-9,
        "kv_cache_tokens_per_replica": 10_000_000,
    }

    def batched(per_replica: int, router: str) -> Scenario:
        return apply_overrides(
            base,
            {
                f"{STEP}.batch_slots_per_replica": per_replica,
                f"{STEP}.gpus_per_replica": per_replica,
                f"{STEP}.step_time": step,
                "cluster.pools.main.serving": "batched",
                "cluster.pools.main.router": router,
            },
        )

    return {
        "slots": base,
        "batched-1x30": batched(30, "least_loaded"),
        "batched-30x1 least_loaded": batched(1, "least_loaded"),
        "batched-30x1 round_robin": batched(1, "round_robin"),
    }


def one_run(s: Scenario) -> dict[str, Any]:
    """Engine seconds, requests and two KPIs of one replication."""
    r = run_replication(build(s), seed=s.seed)
    k = replication_kpis(r)
    return {
        "engine_s": r.engine_s,
        "requests": r.requests,
        "utilisation": float(k["gpu_utilisation"]),
        "wait_mean_s": float(k["wait_mean_s"]),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    runs = variants(load_scenario(SCENARIO))
    for s in runs.values():  # warm-up: compile every kernel path
        one_run(apply_overrides(s, {"horizon_months": 1, "days_per_month": 2}))
    times = alternate(runs, args.repeats, one_run)
    print(f"{'variant':28s} {'engine s':>9s} {'M req/s':>8s} {'x slots':>8s} {'util':>6s} wait s")
    for name, rs in times.items():
        eng, ratio = medians(rs, times["slots"])
        print(
            f"{name:28s} {eng:9.3f} {rs[0]['requests'] / eng / 1e6:8.2f} {ratio:8.2f}"
            f" {rs[0]['utilisation']:6.3f} {rs[0]['wait_mean_s']:.4f}"
        )


if __name__ == "__main__":
    main()
