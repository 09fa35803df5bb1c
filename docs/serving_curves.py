#!/usr/bin/env python3
"""Latency against offered load for each catalog model, slot and batched serving (docs/model.md).

One replica of each model of ``scenarios/baseline.yaml``'s catalog serves a flat day of
Poisson requests with DeepSeek's published mix (``scenarios/deepseek-day.yaml``: input
lognormal median 2,200 tokens, output median 608, sigma 1, 56.3% cache hits; mean context about
4,600 tokens), at offered loads from 10% to 100% of the replica's catalog capacity (the slot
model's: requests/s that keep its prefill and decode rates fully busy). For each load and
service model it records TTFT and TPOT p50/p95 of the day's requests and writes
``docs/serving_curves.png`` and ``docs/serving_curves.csv``.

    .venv/bin/python docs/serving_curves.py

About two minutes on one core.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sim.engine.replication import run_replication
from sim.scenario.loading import load_scenario
from sim.scenario.overrides import apply_overrides
from sim.units import SECONDS_PER_DAY
from sim.world.build import build

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE.parent / "scenarios"
LOADS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
"""Offered load as a share of one replica's catalog capacity."""


def _capacity_rps(day, serving) -> float:
    """Requests/s one replica serves with its prefill and decode rates fully busy (slot model)."""
    seg = day.segments[0]
    mean_in = seg.input_tokens.median * math.exp(seg.input_tokens.sigma**2 / 2)
    mean_out = seg.output_tokens.median * math.exp(seg.output_tokens.sigma**2 / 2)
    g = serving.gpus_per_replica
    work = mean_in * (1 - seg.cache_hit_share) / (serving.prefill_tokens_per_s_per_gpu * g)
    work += mean_out / (serving.decode_tokens_per_s_per_gpu * g)
    return 1.0 / work


def curves() -> pd.DataFrame:
    """One row per model, service model and load: offered load and latency quantiles."""
    base = load_scenario(SCENARIOS / "baseline.yaml")
    day = load_scenario(SCENARIOS / "deepseek-day.yaml")
    users = day.segments[0].initial_subscribers
    rows = []
    for llm in base.catalog.models:
        sv = llm.serving[0]
        cap = _capacity_rps(day, sv)
        entry = "catalog.models.deepseek-r1.serving.0"
        for serving in ("slots", "batched"):
            for load in LOADS:
                s = apply_overrides(
                    day,
                    {
                        f"{entry}.prefill_tokens_per_s_per_gpu": sv.prefill_tokens_per_s_per_gpu,
                        f"{entry}.decode_tokens_per_s_per_gpu": sv.decode_tokens_per_s_per_gpu,
                        f"{entry}.batch_slots_per_replica": sv.batch_slots_per_replica,
                        f"{entry}.gpus_per_replica": sv.gpus_per_replica,
                        **{
                            f"{entry}.step_time.{k}": v
                            for k, v in sv.step_time.model_dump().items()  # type: ignore[union-attr]
                        },
                        "cluster.pools.r1.gpus": sv.gpus_per_replica,
                        "cluster.pools.r1.serving": serving,
                        "segments.deepseek_users.sessions_per_day": load
                        * cap
                        * SECONDS_PER_DAY
                        / users,
                        "replications": 1,
                    },
                )
                r = run_replication(build(s), seed=s.seed, export_days=(0, 1))
                x = r.requests_export
                assert x is not None
                x = x[x["ttft_s"].notna()]
                rows.append(
                    {
                        "model": llm.name,
                        "serving": serving,
                        "load": load,
                        "requests_per_s": load * cap,
                        "output_tokens_per_s_per_gpu": x["output_tokens"].sum()
                        / SECONDS_PER_DAY
                        / sv.gpus_per_replica,
                        "ttft_p50_s": x["ttft_s"].quantile(0.5),
                        "ttft_p95_s": x["ttft_s"].quantile(0.95),
                        "tpot_p50_s": x["tpot_s"].quantile(0.5),
                        "tpot_p95_s": x["tpot_s"].quantile(0.95),
                    }
                )
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> None:
    """TTFT p95 and TPOT p95 against offered load, one column per model."""
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 6.4), squeeze=False)
    for col, m in enumerate(models):
        for serving, style in (("slots", "--o"), ("batched", "-s")):
            d = df[(df["model"] == m) & (df["serving"] == serving)]
            for row, metric in enumerate(("ttft", "tpot")):
                ax = axes[row, col]
                ax.plot(d["load"] * 100, d[f"{metric}_p95_s"], style, label=f"{serving} p95")
                ax.plot(d["load"] * 100, d[f"{metric}_p50_s"], style, alpha=0.4,
                        label=f"{serving} p50")  # fmt: skip
                ax.set_yscale("log")
                ax.grid(True, which="both", alpha=0.3)
                ax.set_xlabel("offered load (% of the replica's catalog capacity)")
                ax.set_ylabel(f"{metric.upper()} (s)")
        axes[0, col].set_title(m)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("One replica, DeepSeek's published request mix: latency against offered load")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Simulate every point, write the CSV and the PNG, print the table."""
    df = curves()
    df.to_csv(HERE / "serving_curves.csv", index=False, float_format="%.4g")
    plot(df, HERE / "serving_curves.png")
    with pd.option_context("display.width", 160):
        print(df.round(4).to_string(index=False))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
