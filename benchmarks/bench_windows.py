#!/usr/bin/env python3
"""Speed of usage windows: TPD with every coder on a windowed plan, beside TPD as it is.

The TPD workload (``scenarios/tpd-10k-30d.yaml``: 10,000 subscribers, 30 days; 2,500 coders
at 40 requests a day on average) runs as it is (``monthly``) and with the coder plan carrying
what a coding plan sells, in two sizes:

* ``market``: the market's coding plan (MODEL.md: 1,200 / 9,000 requests per 5 hours / week
  for users of about 31 requests a day) scaled to TPD's 40 requests a day: a rolling 5-hour
  window of 1,550 requests whose users wait for it to roll (half of them, for at most 5 hours),
  a weekly calendar cap of 11,600 that cuts off, and 2x peak weights on weekday afternoons;
  the windows are kept for every request and bind for almost nobody;
* ``windowed``: the same with 60 requests per 5 hours and 400 a week: the windows bind for
  the heavier coders (the weekly cap refuses about a fifth of the coders' requests);
* ``tight``: the same with 15 requests per 5 hours and 220 a week: they bind for most coders
  at their busy hours, so deferrals, re-sends and lock-out accounting run all the time.

Each variant runs ``--repeats`` times, alternating, in this process after one untimed warm-up
run of each (numba compilation). The report gives each variant's median engine time,
simulated requests per second, the window outcomes, and the median paired time ratio to
``monthly`` (issue 18 asks for at most 1.2).

    .venv/bin/python benchmarks/bench_windows.py --repeats 5

This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paired import alternate, medians

from sim.engine.replication import run_replication
from sim.scenario.loading import load_scenario, validate_data
from sim.scenario.overrides import apply_overrides
from sim.scenario.schema import Scenario
from sim.world.build import build

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "tpd-10k-30d.yaml"

PEAKS = [{"days": "weekdays", "from_hour": 13, "to_hour": 17, "weight": 2.0}]
"""2x on weekday afternoons."""
AT_LIMIT = {"wait_share": 0.5, "max_wait_hours": 5}
"""Half the coders wait for a full 5-hour window, at most 5 hours."""


def windowed(base: Scenario, per_5h: float, per_week: float) -> Scenario:
    """TPD with the coder plan carrying 5-hour and weekly windows and PEAKS (same demand)."""
    d = base.model_dump(mode="json")
    plan = next(p for p in d["plans"] if p["name"] == "coder")
    plan["windows"] = [
        {"name": "5h", "kind": "rolling", "hours": 5, "allowance": per_5h, "on_limit": "wait"},
        {"name": "week", "kind": "calendar", "hours": 168, "allowance": per_week,
         "on_limit": "cutoff"},
    ]  # fmt: skip
    plan["peak_weights"] = PEAKS
    next(g for g in d["segments"] if g["name"] == "coder")["at_window_limit"] = AT_LIMIT
    return validate_data(d)


def one_run(s: Scenario) -> dict[str, Any]:
    """Engine seconds, requests and the window outcomes of one replication."""
    r = run_replication(build(s), seed=s.seed)
    m = r.acc.monthly
    return {
        "engine_s": r.engine_s,
        "requests": r.requests,
        "deferred": float(m["deferred"].sum()),
        "refused_window": float(m["refused_window"].sum()),
        "limit_hits": float(r.acc.window[:, 0].sum()),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    base = load_scenario(SCENARIO)
    runs = {
        "monthly": base,
        "market": windowed(base, 1550, 11600),
        "windowed": windowed(base, 60, 400),
        "tight": windowed(base, 15, 220),
    }
    for s in runs.values():  # warm-up: compile every kernel path
        one_run(apply_overrides(s, {"horizon_months": 1, "days_per_month": 2}))
    times = alternate(runs, args.repeats, one_run)
    print(
        f"{'variant':10s} {'engine s':>9s} {'M req/s':>8s} {'ratio':>6s} {'hits':>9s}"
        f" {'deferred':>9s} {'refused':>9s}"
    )
    for name, rs in times.items():
        eng, ratio = medians(rs, times["monthly"])
        print(
            f"{name:10s} {eng:9.3f} {rs[0]['requests'] / eng / 1e6:8.2f} {ratio:6.3f}"
            f" {rs[0]['limit_hits']:9.0f} {rs[0]['deferred']:9.0f} {rs[0]['refused_window']:9.0f}"
        )


if __name__ == "__main__":
    main()
