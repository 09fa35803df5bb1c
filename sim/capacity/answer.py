"""The sizing answer as tables.

Per cell the count and its evidence, the evaluations, the procurement schedule, and where the
analytic estimate and the simulation disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.capacity.cells import MEETS, Cell, Evaluation, count_of, judge
from sim.capacity.pools import PoolSpec, working_replicas
from sim.capacity.queueing import SloTarget, metric_quantile


def evaluation_table(
    evals: dict[Any, Evaluation], cells: list[Cell], targets: list[SloTarget]
) -> pd.DataFrame:
    """One row per evaluated count vector x cell: the figures and the verdict."""
    rows = []
    for i, ev in enumerate(e for e in evals.values() if e.judged):
        kpis = {
            k: float(np.mean([m.kpis[k] for m in ev.measurements])) for k in ev.measurements[0].kpis
        }
        for c in cells:
            n = count_of(c, ev.counts)
            verdict, row = judge(ev.measurements, c, targets)
            rows.append(
                {
                    "evaluation": i,
                    "pool": c.pool.name,
                    "month": -1 if c.month is None else c.month,
                    "replicas": n,
                    "gpus": n * c.pool.gpus_per_replica,
                    "replications": len(ev.measurements),
                    "verdict": verdict,
                    **row,
                    **_analytic_curve(c, n, targets),
                    **kpis,
                }
            )
    return pd.DataFrame(rows)


def _analytic_curve(c: Cell, n: int, targets: list[SloTarget]) -> dict[str, float]:
    """The analytic estimate's value of each target at ``n`` paid replicas (NaN if none)."""
    out = {}
    for t in targets:
        v = None
        if c.load is not None:
            w = working_replicas(n, c.pool.gpus_per_replica, c.pool.unavailable_share)
            v = metric_quantile(c.load, t, w) if w > 0 else math.inf
        out[f"{t.label} analytic"] = np.nan if v is None else float(v)
    return out


def answer_table(
    cells: list[Cell],
    evals: dict[Any, Evaluation],
    final: dict[str, tuple[int, ...]],
    targets: list[SloTarget],
) -> tuple[pd.DataFrame, list[str]]:
    """Per cell: the chosen count, the evidence one replica below, the analytic guess, why."""
    final_ev = evals[tuple(sorted(final.items()))]
    rows, notes = [], []
    for c in cells:
        n = count_of(c, final)
        verdict, row = judge(final_ev.measurements, c, targets)
        below = c.fails_at
        confidence = "high" if not (c.unsure_at & {n, below}) and verdict == MEETS else "low"
        guess = c.first_guess
        rows.append(
            {
                "pool": c.pool.name,
                "month": -1 if c.month is None else c.month,
                "replicas": n,
                "gpus": n * c.pool.gpus_per_replica,
                "fails_at_replicas": below,
                "verdict_at_answer": verdict,
                "confidence": confidence,
                "analytic_replicas": guess,
                "analytic_offered_load_erlangs": c.guess.offered_load_erlangs
                if c.guess
                else np.nan,
                **row,
            }
        )
        if guess is not None and guess != n:
            notes.append(_disagreement(c, n, guess))
    return pd.DataFrame(rows), notes


def _disagreement(c: Cell, simulated: int, analytic: int) -> str:
    """Say by how much the analytic guess and the simulation differ, and the likely reasons."""
    d = simulated - analytic
    busy, peak = c.pilot_figures
    seen = (
        f" (in the pilot the busy hour ran at {busy:.0%} utilisation on average over the"
        f" month's days, its busiest hour at {peak:.0%})"
        if math.isfinite(busy) and math.isfinite(peak)
        else ""
    )
    why = (
        "the estimate treats each day's busy hour as a steady M/G/c queue at that day's mean"
        " load, while within the hour arrivals ramp and come in bursts (sessions, activity"
        f" spells){seen}, and queues that form at those peaks carry over; the service times'"
        " long tail also makes waits longer than the M/G/c approximation"
        if d > 0
        else "churn and refusals in the simulation remove demand the pilot still had at its"
        f" size, and the pool's slots pool bursts better than the approximation assumes{seen}"
    )
    return (
        f"{c.label}: the simulation needs {simulated} replicas, the analytic estimate said"
        f" {analytic} ({d:+d}); {why}."
    )


def procurement(
    final: dict[str, tuple[int, ...]], specs: list[PoolSpec], lead_months: int
) -> tuple[dict[str, list[dict[str, int]]], pd.DataFrame]:
    """The scenario ``schedule:`` block per pool and the orders placed ``lead_months`` ahead."""
    by_name = {p.name: p for p in specs}
    schedule: dict[str, list[dict[str, int]]] = {}
    orders = []
    for pool, v in final.items():
        g = by_name[pool].gpus_per_replica
        steps = [{"month": m, "gpus": n * g} for m, n in enumerate(v) if m == 0 or n != v[m - 1]]
        schedule[pool] = steps
        prev = 0
        for st in steps:
            if st["gpus"] > prev:
                orders.append(
                    {
                        "pool": pool,
                        "serving_month": st["month"],
                        "order_month": st["month"] - lead_months,
                        "gpus_added": st["gpus"] - prev,
                        "gpus_total": st["gpus"],
                    }
                )
            prev = st["gpus"]
    return schedule, pd.DataFrame(orders)
