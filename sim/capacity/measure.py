"""What one simulated replication tells the sizing search, reduced on the worker.

A replication's accumulators hold tens of megabytes of histograms; the search needs, per month
and pool, only each SLO metric's quantile at the busy hour, the busy-hour goodput and
utilisation, and a few headline KPIs. :func:`measure` runs one replication and returns that
(a :class:`Measurement`, a few kilobytes), so the dask workers send little back.

A *pilot* measurement also keeps a sample of the requests each pool served in the last days of
the horizon (``PILOT_SAMPLE_DAYS``): their service times (slot-seconds) and prefill times, from
which :mod:`sim.capacity.queueing`'s analytic estimate takes the service-time moments and the
prefill distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.capacity.queueing import SloTarget
from sim.engine.metrics import LATENCY, hist_quantiles
from sim.engine.outcomes import DOWNGRADED
from sim.engine.replication import ReplicationResult
from sim.experiments.runner import replicate
from sim.results.busy_hour import busy_hours, month_hours, pool_busy_hour, take_hour
from sim.results.kpis import replication_kpis
from sim.scenario.schema import Scenario
from sim.units import SECONDS_PER_HOUR

PILOT_SAMPLE_DAYS = 2
"""Days at the end of the horizon whose requests the pilot keeps for the analytic estimate."""
PREFILL_POINTS = 200
"""Quantile points that summarise a pool's prefill-time distribution for the analytic estimate."""
KPIS_KEPT = (
    "gpu_cost",
    "gross_margin",
    "revenue_total",
    "churn_rate_monthly",
    "goodput_share",
    "subscribers_end",
)
"""Headline KPIs (sim.results.kpis.KPIS) each measurement keeps for the sizing table."""


@dataclass(frozen=True)
class ServiceSample:
    """A pool's served requests in the pilot's sample window.

    ``mean_service_s`` and ``scv_service``: mean and squared coefficient of variation of the
    slot-seconds a request holds; ``prefill_values_s``: quantile points of the prefill time
    (equal weights).
    """

    requests: int
    mean_service_s: float
    scv_service: float
    prefill_values_s: NDArray[np.float64]


@dataclass(frozen=True)
class Measurement:
    """One replication, reduced: month x pool arrays (NaN where a pool had no traffic).

    ``metric_values``: target x month x pool, each target's quantile (s) over the requests in
    an SLA class arriving at the busy hour; ``goodput``: met / offered at the busy hour;
    ``utilisation`` and ``offered_load_erlangs`` at the busy hour; ``peak_utilisation``: the
    month's single busiest hour; ``day_load_erlangs``: month x day x pool, the offered load at
    the month's busy hour on each of its days; ``kpis``: KPIS_KEPT.
    """

    replication: int
    metric_values: NDArray[np.float64]
    goodput: NDArray[np.float64]
    utilisation: NDArray[np.float64]
    peak_utilisation: NDArray[np.float64]
    offered_load_erlangs: NDArray[np.float64]
    day_load_erlangs: NDArray[np.float64]
    kpis: dict[str, float]
    samples: dict[str, ServiceSample] | None = None


def _samples(export: pd.DataFrame, pools: Sequence[str]) -> dict[str, ServiceSample]:
    """Service and prefill samples per pool from a replication's exported requests."""
    served = export[export["outcome"] <= DOWNGRADED]
    out: dict[str, ServiceSample] = {}
    probs = (np.arange(PREFILL_POINTS) + 0.5) / PREFILL_POINTS
    for pool in pools:
        g = served[served["pool"] == pool]
        if len(g) < 2:
            continue
        svc = g["service_s"].to_numpy(dtype=float)
        prefill = (g["ttft_s"] - g["wait_s"]).to_numpy(dtype=float)
        mean = float(svc.mean())
        out[pool] = ServiceSample(
            requests=len(g),
            mean_service_s=mean,
            scv_service=float(svc.var() / mean**2) if mean > 0 else 1.0,
            prefill_values_s=np.quantile(np.maximum(prefill, 0.0), probs),
        )
    return out


def _day_loads(r: ReplicationResult, hours: NDArray[np.int64]) -> NDArray[np.float64]:
    """Month x day x pool: offered load (Erlangs) in the month's busy hour on each day."""
    by_day = month_hours(r, "offered_slot_s")  # month x day x hour x pool
    idx = hours[:, None, None, :]
    return np.take_along_axis(by_day, idx, axis=2)[:, :, 0, :] / SECONDS_PER_HOUR


def measure(
    scenario: Scenario, seed: int, replication: int, targets: Sequence[SloTarget], pilot: bool
) -> Measurement:
    """Run one replication of ``scenario`` and reduce it for the search (a dask task)."""
    days = scenario.horizon_months * scenario.days_per_month
    window = (max(days - PILOT_SAMPLE_DAYS, 0), min(PILOT_SAMPLE_DAYS, days)) if pilot else None
    r = replicate(scenario, seed, replication, window)
    hours = busy_hours(r)
    hist = take_hour(r.acc.hist, hours)  # month x pool x class x metric x bin
    in_class = hist[..., :-1, :, :].sum(axis=-3, dtype=np.int64)  # month x pool x metric x bin
    values = np.stack(
        [
            hist_quantiles(in_class[..., LATENCY.index(f"{t.metric}_s"), :], t.quantile)
            for t in targets
        ]
    )
    load = pool_busy_hour(r)
    goodput = np.where(load["offered"] > 0, load["met"] / np.maximum(load["offered"], 1), np.nan)
    kpis = replication_kpis(r)
    samples = None
    if pilot and r.requests_export is not None:
        samples = _samples(r.requests_export, r.world.pool.names)
    return Measurement(
        replication=replication,
        metric_values=values,
        goodput=goodput,
        utilisation=load["utilisation"],
        peak_utilisation=load["peak_hour_utilisation"],
        offered_load_erlangs=load["offered_load_erlangs"],
        day_load_erlangs=_day_loads(r, hours),
        kpis={k: float(kpis[k]) for k in KPIS_KEPT},
        samples=samples,
    )
