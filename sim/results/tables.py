"""The exit seam: tidy tables, headline KPIs with confidence intervals, the run folder.

Tables are long/tidy (one row per replication x month x plan x segment, per
replication x hour x pool, ...), so they open in pandas and compare across
runs. ``summary.json`` gives each headline KPI's mean over replications and
its 95% confidence interval (Student t). A run folder is built in a staging
folder beside its target and moved into place only when complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.engine.accounting import SLO_OFFERED
from sim.engine.metrics import HOURLY, MONTHLY, hist_quantile
from sim.engine.replication import ReplicationResult
from sim.engine.windows import W_HITS, W_LOCK_S, W_LOCKOUTS
from sim.results.busy_hour import (
    busy_hour_table,
    busy_hour_ttft_p95,
    latency_by_hour,
    latency_by_month,
    pool_busy_hour,
)
from sim.results.intervals import CI_METHODS
from sim.results.kpis import KPIS, _ratio, kpi_bounds, kpi_ci, replication_kpis
from sim.scenario.schema import Scenario
from sim.units import HOURS_PER_DAY, SECONDS_PER_HOUR


def _nanmax(x: np.ndarray) -> float:
    """The largest finite value (NaN when there is none)."""
    x = x[np.isfinite(x)]
    return float(x.max()) if len(x) else float("nan")


@dataclass
class RunResult:
    """All replications of one scenario, with the tables built from them."""

    scenario: Scenario
    replications: list[ReplicationResult]
    wall_s: float

    # ------------------------------------------------------------------ tables

    def monthly(self) -> pd.DataFrame:
        """Replication x month x plan x segment, every metric of sim.engine.metrics.MONTHLY."""
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
            bh = pool_busy_hour(r)
            bh_ttft = busy_hour_ttft_p95(r)
            for m in range(w.horizon_months):
                mo = {k: float(a.monthly[k][m].sum()) for k in MONTHLY}
                hrs = slice(m * hpm, (m + 1) * hpm)
                cost = float(a.hourly["gpu_cost"][hrs].sum())
                rev = mo["revenue_fees"] + mo["revenue_overage"] + mo["revenue_topups"]
                busy = float(a.hourly["busy_slot_s"][hrs].sum())
                cap = float(a.hourly["slots"][hrs].sum()) * SECONDS_PER_HOUR
                h_ttft = a.hist[m, :, :, :-1, 1].sum(axis=(0, 1, 2), dtype=np.int64)
                offered = float(a.slo[m, ..., SLO_OFFERED].sum())
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
                        "refused_share": _ratio(
                            mo["requests"] - mo["served"] - mo["abandoned"], mo["requests"]
                        ),
                        "abandoned_share": _ratio(mo["abandoned"], mo["requests"]),
                        "deferred_share": _ratio(mo["deferred"], mo["requests"]),
                        "exhausted_share": _ratio(mo["exhausted"], mo["submonths"]),
                        "ttft_p95_s": hist_quantile(h_ttft, 0.95),
                        "slo_attainment_served": _ratio(mo["slo_met"], mo["slo_counted"]),
                        "goodput_share": _ratio(mo["slo_met"], offered),
                        "gpu_utilisation": _ratio(busy, cap),
                        "busy_hour_ttft_p95_s": _nanmax(bh_ttft[m]),
                        "busy_hour_utilisation": _nanmax(bh["utilisation"][m]),
                        "peak_hour_utilisation": _nanmax(bh["peak_hour_utilisation"][m]),
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
        """Replication x month x pool x class: offered, served, goodput, latency percentiles.

        Class ``throttled`` holds the slow-lane and downgraded requests (no SLO); class
        ``all`` pools the SLA classes. See sim.results.busy_hour for the columns.
        """
        return pd.concat([latency_by_month(r) for r in self.replications], ignore_index=True)

    def latency_by_hour(self) -> pd.DataFrame:
        """Replication x month x hour of day x pool x class: the same columns as latency()."""
        return pd.concat([latency_by_hour(r) for r in self.replications], ignore_index=True)

    def busy_hour(self) -> pd.DataFrame:
        """Replication x month x pool x class at each month's busy hour (ITU-T E.500).

        Load (offered Erlangs, offered ratio, utilisation, the peak single hour's utilisation),
        goodput and latency percentiles; see sim.results.busy_hour.
        """
        return pd.concat([busy_hour_table(r) for r in self.replications], ignore_index=True)

    def windows(self) -> pd.DataFrame:
        """Replication x month x plan x segment x usage window: limits met and lock-outs.

        Columns: limit hits, lock-outs and hours locked out (sim.engine.windows.WINDOW_METRICS);
        plans with windows only.

        A lock-out starts when a subscriber finds a window full while not already locked out
        and lasts until that window (the last of them to roll, when several are full) has
        room again; its hours count in the month it started.
        """
        rows = []
        for r in self.replications:
            w = r.world
            win = w.win
            for p, plan in enumerate(w.plan.names):
                for k, name in enumerate(win.names[p]):
                    for g, seg in enumerate(w.seg.names):
                        x = r.acc.window[:, :, p, g, k]  # month x metric
                        if not w.seg.eligible[g, p] and not x.any():
                            continue
                        for m in range(w.horizon_months):
                            rows.append(
                                {
                                    "replication": r.replication,
                                    "month": m,
                                    "plan": plan,
                                    "segment": seg,
                                    "window": name,
                                    "limit_hits": x[m, W_HITS],
                                    "lockouts": x[m, W_LOCKOUTS],
                                    "lockout_hours": x[m, W_LOCK_S] / SECONDS_PER_HOUR,
                                }
                            )
        return pd.DataFrame(
            rows,
            columns=[
                "replication", "month", "plan", "segment", "window", "limit_hits", "lockouts",
                "lockout_hours",
            ],
        )  # fmt: skip

    def events(self) -> pd.DataFrame:
        """The scenario's events in month order: month, kind, plan or segment, what changed."""
        w = self.replications[0].world
        return pd.DataFrame(
            w.timeline.events, columns=["month", "kind", "subject", "description"]
        ).astype({"month": "int64"})

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
        """Mean and 95% confidence interval of every KPI over replications, inside its range.

        ``ci_method`` names the interval (:mod:`sim.results.intervals`).
        """
        k = self.kpis()
        out: dict[str, Any] = {}
        for name, (unit, desc) in KPIS.items():
            mean, lo, hi = kpi_ci(name, k[name].to_numpy(dtype=float))
            out[name] = {
                "mean": mean,
                "ci95_low": lo,
                "ci95_high": hi,
                "ci_method": CI_METHODS[kpi_bounds(name)],
                "unit": unit,
                "description": desc,
                "replications": int(k[name].notna().sum()),
            }
        return out
