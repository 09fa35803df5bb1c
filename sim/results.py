"""The exit seam: tidy tables, headline KPIs with confidence intervals, the run folder.

Tables are long/tidy (one row per replication x month x plan x segment, per
replication x hour x pool, ...), so they open in pandas and compare across
runs. ``summary.json`` gives each headline KPI's mean over replications and
its 95% confidence interval (Student t). A run folder is built in a staging
folder beside its target and moved into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from sim import __version__
from sim.defaults import HOURS_PER_DAY, SECONDS_PER_HOUR, TOKENS_PER_MTOK
from sim.engine import ReplicationResult
from sim.metrics import HOURLY, LATENCY, MONTHLY, hist_quantile
from sim.scenario import Scenario

# headline KPI -> (unit, description); every one is computed per replication
KPIS: dict[str, tuple[str, str]] = {
    "subscribers_end": ("subscribers", "active subscribers at the end of the horizon"),
    "churn_rate_monthly": ("share", "mean over months of churned / renewal decisions"),
    "revenue_fees": ("currency", "monthly fees billed over the horizon"),
    "revenue_overage": ("currency", "pay-as-you-go overage billed"),
    "revenue_topups": ("currency", "top-up packs sold"),
    "revenue_total": ("currency", "fees + overage + top-ups"),
    "gpu_cost": ("currency", "GPU-hours paid for times their price"),
    "gross_margin": ("currency", "revenue_total - gpu_cost"),
    "gross_margin_share": ("share", "gross_margin / revenue_total"),
    "requests": ("requests", "requests made"),
    "tokens_served": ("tokens", "input + output tokens served"),
    "refused_share": ("share", "requests refused / requests made"),
    "throttled_share": ("share", "requests throttled / requests made"),
    "wait_mean_s": ("s", "mean queue wait of served requests"),
    "wait_p95_s": ("s", "95th percentile queue wait of served requests"),
    "ttft_p95_s": ("s", "95th percentile time to first token, requests in their SLA class"),
    "slo_attainment": ("share", "requests meeting every SLO target / requests with an SLO"),
    "gpu_utilisation": ("share", "busy slot-seconds / working slot-seconds, whole horizon"),
    "exhausted_share": ("share", "subscriber-months that crossed their quota / all started"),
    "effective_price_per_mtok": ("currency/1M tokens", "revenue_total per 1M tokens served"),
    "api_list_value": ("currency", "served tokens valued at API list prices"),
}


@dataclass
class RunResult:
    """All replications of one scenario, with the tables built from them."""

    scenario: Scenario
    replications: list[ReplicationResult]
    wall_s: float

    # ------------------------------------------------------------------ tables

    def monthly(self) -> pd.DataFrame:
        """Replication x month x plan x segment, every metric of sim.metrics.MONTHLY."""
        frames = []
        for r in self.replications:
            w = r.world
            months = w.horizon_months
            idx = pd.MultiIndex.from_product(
                [range(months), w.plan.names, w.seg.names], names=["month", "plan", "segment"]
            )
            df = pd.DataFrame({k: r.acc.monthly[k].reshape(-1) for k in MONTHLY}, index=idx)
            df = df.reset_index()
            df.insert(0, "replication", r.replication)
            elig = w.seg.eligible.T.reshape(-1)  # plan-major like the index
            keep = np.tile(elig, months) | (df[list(MONTHLY)].abs().sum(axis=1) > 0).to_numpy()
            frames.append(df[keep])
        return pd.concat(frames, ignore_index=True)

    def months(self) -> pd.DataFrame:
        """Replication x month totals a person reads first (subscribers, churn, money, latency)."""
        rows = []
        for r in self.replications:
            w, a = r.world, r.acc
            hpm = w.days_per_month * HOURS_PER_DAY
            for m in range(w.horizon_months):
                mo = {k: float(a.monthly[k][m].sum()) for k in MONTHLY}
                hrs = slice(m * hpm, (m + 1) * hpm)
                cost = float(a.hourly["gpu_cost"][hrs].sum())
                rev = mo["revenue_fees"] + mo["revenue_overage"] + mo["revenue_topups"]
                busy = float(a.hourly["busy_slot_s"][hrs].sum())
                cap = float(a.hourly["slots"][hrs].sum()) * SECONDS_PER_HOUR
                h_ttft = a.hist[m, :, :-1, 1].sum(axis=(0, 1))
                rows.append(
                    {
                        "replication": r.replication,
                        "month": m,
                        "subscribers_start": mo["subscribers_start"],
                        "subscribers_end": mo["subscribers_end"],
                        "new": mo["new"],
                        "churned": mo["churned"],
                        "churn_rate": _ratio(mo["churned"], mo["renewals"]),
                        "revenue_fees": mo["revenue_fees"],
                        "revenue_overage": mo["revenue_overage"],
                        "revenue_topups": mo["revenue_topups"],
                        "revenue_total": rev,
                        "gpu_cost": cost,
                        "gross_margin": rev - cost,
                        "requests": mo["requests"],
                        "tokens_served": mo["tokens_served"],
                        "refused_share": _ratio(mo["requests"] - mo["served"], mo["requests"]),
                        "exhausted_share": _ratio(mo["exhausted"], mo["submonths"]),
                        "ttft_p95_s": hist_quantile(h_ttft, 0.95),
                        "slo_attainment": _ratio(mo["slo_met"], mo["slo_counted"]),
                        "gpu_utilisation": _ratio(busy, cap),
                    }
                )
        return pd.DataFrame(rows)

    def hourly(self) -> pd.DataFrame:
        """Replication x hour x pool: cluster load, waits, SLO, utilisation and cost."""
        frames = []
        for r in self.replications:
            w = r.world
            hours = w.horizon_days * HOURS_PER_DAY
            n_pool = len(w.pool.names)
            df = pd.DataFrame(
                {k: r.acc.hourly[k][:hours].reshape(-1) for k in HOURLY},
            )
            df.insert(0, "pool", np.tile(w.pool.names, hours))
            hour = np.repeat(np.arange(hours), n_pool)
            df.insert(0, "hour_of_day", hour % HOURS_PER_DAY)
            df.insert(0, "day", hour // HOURS_PER_DAY)
            df.insert(0, "hour", hour)
            df.insert(0, "replication", r.replication)
            cap = df["slots"] * SECONDS_PER_HOUR
            df["utilisation"] = np.where(cap > 0, df["busy_slot_s"] / cap.where(cap > 0, 1), np.nan)
            df["wait_mean_s"] = df["wait_sum_s"] / df["started"].where(df["started"] > 0)
            frames.append(df)
        out = pd.concat(frames, ignore_index=True)
        out["pool"] = out["pool"].astype("category")
        return out

    def latency(self) -> pd.DataFrame:
        """Replication x month x pool x class: requests, waits, latency percentiles, SLO.

        Class ``throttled`` holds the slow-lane and downgraded requests (no SLO).
        """
        rows = []
        for r in self.replications:
            w, a = r.world, r.acc
            classes = [*w.cls.names, "throttled"]
            for m in range(w.horizon_months):
                for j, pool in enumerate(w.pool.names):
                    for c, cname in enumerate(classes):
                        h = a.hist[m, j, c]
                        n = int(h[0].sum())
                        if n == 0:
                            continue
                        row: dict[str, Any] = {
                            "replication": r.replication, "month": m, "pool": pool,
                            "sla_class": cname, "requests": n,
                            "wait_mean_s": a.wait_sum[m, j, c] / n,
                            "tpot_s": float(w.pool.tpot_s[j]),
                            "slo_attainment": _ratio(*a.slo_pool[m, j, c]),
                        }  # fmt: skip
                        for k, name in enumerate(LATENCY):
                            for q in (0.5, 0.95, 0.99):
                                row[f"{name.removesuffix('_s')}_p{int(q * 100)}_s"] = hist_quantile(
                                    h[k], q
                                )
                        rows.append(row)
        return pd.DataFrame(rows)

    def ledger(self) -> pd.DataFrame:
        """Every subscriber-month of every replication (empty when disabled)."""
        frames = []
        for r in self.replications:
            if len(r.ledger):
                f = r.ledger.copy()
                f.insert(0, "replication", r.replication)
                frames.append(f)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # ------------------------------------------------------------------ KPIs

    def kpis(self) -> pd.DataFrame:
        """One row per replication, one column per headline KPI."""
        return pd.DataFrame([replication_kpis(r) for r in self.replications])

    def summary(self) -> dict[str, Any]:
        """Mean and 95% confidence interval of every KPI over replications."""
        k = self.kpis()
        out: dict[str, Any] = {}
        for name, (unit, desc) in KPIS.items():
            mean, lo, hi = mean_ci(k[name].to_numpy(dtype=float))
            out[name] = {
                "mean": mean,
                "ci95_low": lo,
                "ci95_high": hi,
                "unit": unit,
                "description": desc,
                "replications": int(k[name].notna().sum()),
            }
        return out


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (NaN bounds with fewer than two values)."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def replication_kpis(r: ReplicationResult) -> dict[str, float]:
    """Headline KPIs of one replication (see KPIS)."""
    w, a = r.world, r.acc
    tot = {k: float(v.sum()) for k, v in a.monthly.items()}
    hours = w.horizon_days * HOURS_PER_DAY
    rev = tot["revenue_fees"] + tot["revenue_overage"] + tot["revenue_topups"]
    cost = float(a.hourly["gpu_cost"][:hours].sum())
    churn = a.monthly["churned"].sum(axis=(1, 2))
    ren = a.monthly["renewals"].sum(axis=(1, 2))
    rates = churn[ren > 0] / ren[ren > 0]
    served = tot["served"]
    all_wait = a.hist[:, :, :, 0].sum(axis=(0, 1, 2))
    ttft = a.hist[:, :, :-1, 1].sum(axis=(0, 1, 2))
    cap = float(a.hourly["slots"][:hours].sum()) * SECONDS_PER_HOUR
    return {
        "replication": r.replication,
        "subscribers_end": float(a.monthly["subscribers_end"][-1].sum()),
        "churn_rate_monthly": float(rates.mean()) if len(rates) else float("nan"),
        "revenue_fees": tot["revenue_fees"],
        "revenue_overage": tot["revenue_overage"],
        "revenue_topups": tot["revenue_topups"],
        "revenue_total": rev,
        "gpu_cost": cost,
        "gross_margin": rev - cost,
        "gross_margin_share": _ratio(rev - cost, rev),
        "requests": tot["requests"],
        "tokens_served": tot["tokens_served"],
        "refused_share": _ratio(tot["requests"] - served, tot["requests"]),
        "throttled_share": _ratio(tot["throttled"], tot["requests"]),
        "wait_mean_s": _ratio(float(a.wait_sum.sum()), served),
        "wait_p95_s": hist_quantile(all_wait, 0.95),
        "ttft_p95_s": hist_quantile(ttft, 0.95),
        "slo_attainment": _ratio(tot["slo_met"], tot["slo_counted"]),
        "gpu_utilisation": _ratio(float(a.hourly["busy_slot_s"][:hours].sum()), cap),
        "exhausted_share": _ratio(tot["exhausted"], tot["submonths"]),
        "effective_price_per_mtok": _ratio(rev * TOKENS_PER_MTOK, tot["tokens_served"]),
        "api_list_value": tot["api_list_value"],
    }


# ---------------------------------------------------------------------- the run folder


def write_run(result: RunResult, out_dir: Path, seed: int, plots: bool = True) -> Path:
    """Write the run folder atomically: build it beside ``out_dir``, then move it into place."""
    return _atomic_folder(Path(out_dir), lambda stage: _write_contents(result, stage, seed, plots))


def render_run(result: RunResult, seed: int, plots: bool = True) -> dict[str, bytes]:
    """Every file of the run folder, by relative path, built in memory.

    For cluster workers: the tables and plots are computed where the replications
    are, and only these bytes travel to the process that writes the folder
    (:func:`write_files`).
    """
    with tempfile.TemporaryDirectory(prefix="tokensim-render-") as tmp:
        d = Path(tmp)
        _write_contents(result, d, seed, plots)
        return {
            f.relative_to(d).as_posix(): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()
        }


def write_files(files: dict[str, bytes], out_dir: Path) -> Path:
    """Write a rendered run folder (:func:`render_run`) atomically to ``out_dir``."""

    def fill(stage: Path) -> None:
        for rel, data in files.items():
            f = stage / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)

    return _atomic_folder(Path(out_dir), fill)


def _atomic_folder(out_dir: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a staging folder beside ``out_dir``, then move it into place (replacing it)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        fill(stage)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(stage, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out_dir


def _write_contents(result: RunResult, d: Path, seed: int, plots: bool) -> None:
    s = result.scenario
    t0 = time.perf_counter()
    (d / "scenario.yaml").write_text(
        yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    )
    by_plan = result.monthly()
    by_plan.to_csv(d / "monthly_by_plan_segment.csv", index=False)
    months = result.months()
    months.to_csv(d / "monthly.csv", index=False)
    hourly = result.hourly()
    hourly.to_parquet(d / "hourly_cluster.parquet", index=False)
    result.latency().to_csv(d / "latency.csv", index=False)
    led = result.ledger()
    if len(led):
        led.to_parquet(d / "ledger.parquet", index=False)
    export = result.replications[0].requests_export
    if export is not None:
        write_request_traces(export, d)
    kp = result.kpis()
    kp.to_csv(d / "kpis_by_replication.csv", index=False)
    summary = result.summary()
    (d / "summary.json").write_text(json.dumps(_finite(summary), indent=2) + "\n")
    if plots:
        from sim.plots import write_plots

        write_plots(s.currency, months, by_plan, hourly, len(result.replications), d / "plots")
    reps = result.replications
    manifest = {
        "scenario": s.name,
        "scenario_sha256": s.digest(),
        "seed": seed,
        "replications": len(reps),
        "package": "tokensim",
        "version": __version__,
        "status": "complete",
        "wall_s": round(result.wall_s + time.perf_counter() - t0, 3),
        "engine_s": [round(r.engine_s, 3) for r in reps],
        "requests_simulated": int(sum(r.requests for r in reps)),
        "subscriber_months_simulated": int(sum(r.subscriber_months for r in reps)),
        "currency": s.currency,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()),
    }
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_request_traces(requests: pd.DataFrame, d: Path) -> None:
    """Write exported requests as an Azure LLM trace CSV and a Mooncake trace JSONL.

    ``requests_azure.csv``: TIMESTAMP (s from midnight of the window's first day),
    ContextTokens, GeneratedTokens. ``requests_mooncake.jsonl``: timestamp (ms),
    input_length, output_length. Both read directly with the calibration folder's stats.py.
    Every request is written, refused ones too (they were requested).
    """
    pd.DataFrame(
        {
            "TIMESTAMP": requests["timestamp_s"].round(6),
            "ContextTokens": requests["input_tokens"],
            "GeneratedTokens": requests["output_tokens"],
        }
    ).to_csv(d / "requests_azure.csv", index=False)
    pd.DataFrame(
        {
            "timestamp": (requests["timestamp_s"] * 1000).round().astype(np.int64),
            "input_length": requests["input_tokens"],
            "output_length": requests["output_tokens"],
        }
    ).to_json(d / "requests_mooncake.jsonl", orient="records", lines=True)


def _finite(x: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
