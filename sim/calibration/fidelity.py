"""The validation report: each preset simulated through the engine vs its real trace.

For each preset, a one-segment scenario (one model, an unlimited plan, ample GPUs, no churn,
no sign-ups) runs ``VALIDATION_DAYS`` days from a Monday with the preset merged into its
segment; every request is exported (``run_replication(export_days=...)``) and measured with
:mod:`sim.traces.stats` (the definitions of the calibration folder's ``stats.py``):

* token statistics over all simulated requests;
* arrival statistics (inter-arrival CV, CV and index of dispersion of counts per 60 s) in the
  real trace's window of the day (its clock; Mooncake: ``MOONCAKE_WINDOW_START_S``), averaged
  over the simulated days' windows; the number of subscribers is set so that the simulated
  rate in the window equals the trace's. The run flattens the preset's weekday profile so that
  every day's window has that rate (count CVs depend on the rate); neither the token
  statistics nor the hour-of-day shape depend on the weekday weights;
* peak/mean hour of the hour-of-day shape over all simulated days;
* API presets: the expected share of the largest 1, 5 and 10 customers among as many
  customers as the trace has, for the preset's intensity spread (``intensity_shape``); and the
  10-minute rate's CV (raw and after the hour-of-day shape) and autocorrelation at 1 h and
  6 h, and its customers' inter-arrival CV within a window (request-weighted median), averaged
  over ``RATE_REPLICATIONS`` weeks of as many customers as the trace has with
  the preset's own intensity spread (:func:`simulate_rate`): with activity spells, how the
  rate splits among customers decides how bursty the aggregate is.

The other runs draw every subscriber's intensity near 1 (``HARNESS_INTENSITY_SHAPE``) so that
the aggregate rate is the planned one; token statistics and the hour shape do not depend on
how the rate splits among subscribers, and API presets spread it over
``API_SIMULATED_CUSTOMERS`` customers so that their activity spells average out.

Each row has a tolerance (``TOLERANCE``) that the committed report must meet; rows the model
cannot reproduce by construction say so instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.calibration.fit import top_shares
from sim.calibration.presets import Preset
from sim.engine.replication import run_replication
from sim.scenario.loading import validate_data
from sim.traces.stats import (
    RATE_WINDOW_S,
    arrival_stats,
    client_window_iat_cv,
    dist,
    rate_10min_cv,
    rate_modulation_stats,
)
from sim.units import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.world.build import build

VALIDATION_DAYS = 7
"""Simulated days per preset (a week: every weekday weight enters the hour shape)."""
VALIDATION_SEED = 1
"""Seed of the validation runs."""
API_SIMULATED_RPS = 3.0
"""Mean simulated request rate of API presets (requests/s): shapes and token statistics do not
depend on the rate; ~1,800 requests per 10-min window keep Poisson noise under 2.5% of the
rate."""
API_SIMULATED_CUSTOMERS = 2000
"""Customers of an API preset's main validation run (token statistics, hour shape): many, so
that their independent activity spells average out of the hour-of-day shape (the aggregate
10-min rate then wanders by sqrt((exp(sigma^2) - 1) / 2000), about 2.5%, at the fitted sigma).
The rate statistics come from other runs, with the trace's number of customers
(:func:`simulate_rate`)."""
RATE_REPLICATIONS = 24
"""Simulated weeks averaged for the rate rows of API presets: one week's 10-min rate CV varies
by about 20% (sd) from seed to seed, because a new draw of intensities changes how much the
largest customers weigh; the mean of 24 weeks varies by about 4%."""
HARNESS_INTENSITY_SHAPE = 1e4
"""Gamma shape of the subscribers' intensities in the validation runs: all near 1, so that the
aggregate rate is the planned one even with a few subscribers (API presets); the preset's own
intensity spread is validated by the customer shares instead."""
INTENSITY_DRAWS = 2000
"""Populations drawn to estimate the expected top-k customer shares of an intensity shape."""
TOLERANCE: dict[str, float] = {
    "mean": 0.05,
    "p50": 0.05,
    "p90": 0.05,
    "p99": 0.10,
    "out_in_ratio": 0.05,
    "iat_cv": 0.20,
    "count_cv_60s": 0.20,
    "idc_60s": 0.35,
    "peak_to_mean_hour": 0.05,
    "top1_share": 0.40,
    "top5_share": 0.25,
    "top10_share": 0.20,
    "rate_cv": 0.15,
    "acf_1h": 0.25,
    "window_iat_cv": 0.10,
}
"""Largest accepted |simulated / real - 1| per statistic (see docs/validation.md)."""

HARNESS: dict[str, Any] = {
    "name": "validation",
    "horizon_months": 1,
    "days_per_month": VALIDATION_DAYS,
    "start_weekday": 0,
    "seed": VALIDATION_SEED,
    "outputs": {"ledger": False, "plots": False},
    "catalog": {
        "gpus": [{"name": "gpu", "cost_per_hour": 1.0}],
        "models": [
            {
                "name": "m",
                "price_input_miss_per_mtok": 1.0,
                "price_input_hit_per_mtok": 1.0,
                "price_output_per_mtok": 1.0,
                "serving": [
                    {
                        "gpu": "gpu",
                        "prefill_tokens_per_s_per_gpu": 1e9,
                        "decode_tokens_per_s_per_gpu": 1e9,
                        "batch_slots_per_replica": 4096,
                        "gpus_per_replica": 1,
                    }
                ],
            }
        ],
    },
    "plans": [
        {"name": "unlimited", "price_per_month": 0, "quota": {"amount": 1e18}, "models": {"m": 1.0}}
    ],
    "cluster": {"pools": [{"name": "m", "model": "m", "gpu": "gpu", "gpus": 16}]},
}


@dataclass
class Row:
    """One line of the report."""

    preset: str
    statistic: str
    real: float
    simulated: float
    tol_key: str | None  # key of TOLERANCE, or None when not expected to match
    lognormal: float | None = None  # the lognormal fit's value (token rows)
    note: str = ""

    @property
    def diff(self) -> float:
        """Relative difference simulated / real - 1."""
        return self.simulated / self.real - 1.0 if self.real else float("nan")

    @property
    def ok(self) -> bool:
        """Within tolerance (True for rows without one)."""
        return self.tol_key is None or abs(self.diff) <= TOLERANCE[self.tol_key]


def harness(
    p: Preset, subscribers: int, total_rps: float | None = None, own_intensity: bool = False
) -> dict[str, Any]:
    """A one-segment scenario holding preset ``p`` (as a dict to validate).

    ``total_rps``: scale the sessions per subscriber so that all of them together send this
    many requests per second on average. ``own_intensity``: keep the preset's intensity
    spread instead of ``HARNESS_INTENSITY_SHAPE``.
    """
    seg = dict(p.segment)
    if total_rps is not None:
        per_session = seg.get("requests_per_session", 1.0)
        seg["sessions_per_day"] = total_rps * SECONDS_PER_DAY / subscribers / per_session
    seg.update(
        weekday_profile=[1.0] * 7,  # every day's window at the trace's rate (see module doc)
        intensity_shape=p.segment.get("intensity_shape", HARNESS_INTENSITY_SHAPE)
        if own_intensity
        else HARNESS_INTENSITY_SHAPE,  # aggregate rate as planned (see module doc)
        name=p.name,
        plans=["unlimited"],
        initial_subscribers=subscribers,
        model_preference={"m": 1.0},
        value_per_mtok=1.0,
        churn_intercept=-30.0,
    )
    d = dict(HARNESS)
    d["segments"] = [seg]
    return d


def _rate_at(p: Preset, start_s: float) -> float:
    """Requests/s one subscriber sends at time of day ``start_s`` on the validation weekday."""
    s = p.segment
    hours = np.asarray(s["hour_profile"], dtype=float)
    per_day = s["sessions_per_day"] * s.get("requests_per_session", 1.0)
    h = int(start_s // SECONDS_PER_HOUR) % HOURS_PER_DAY
    return float(per_day * hours[h] / hours.mean() / SECONDS_PER_DAY)


def simulate(p: Preset) -> pd.DataFrame:
    """Every request of the preset's validation run (timestamp_s from day 0, tokens)."""
    if p.window is not None:
        n = max(1, round(p.real["mean_rps"] / _rate_at(p, p.window[0])))
        return _run(harness(p, n))
    return _run(harness(p, API_SIMULATED_CUSTOMERS, API_SIMULATED_RPS))


def simulate_rate(p: Preset, replication: int) -> pd.DataFrame:
    """Every request (times, tokens, subscriber) of one week of an API preset as a user runs it.

    As many customers as the trace has, with the preset's own intensity spread (so the
    largest customers' activity spells dominate the aggregate as in the trace), scaled to
    ``API_SIMULATED_RPS`` in all; each replication draws new intensities.
    """
    n = int(p.real["servegen"]["active_clients"])
    return _run(harness(p, n, API_SIMULATED_RPS, own_intensity=True), replication)


def _run(d: dict[str, Any], replication: int = 0) -> pd.DataFrame:
    world = build(validate_data(d))
    r = run_replication(world, VALIDATION_SEED, replication, export_days=(0, VALIDATION_DAYS))
    assert r.requests_export is not None
    return r.requests_export


def _window_stats(t: np.ndarray, window: tuple[float, float]) -> dict[str, float]:
    """Arrival statistics in the window of each simulated day, averaged over the days."""
    keys = ("iat_cv", "count_cv_60s", "idc_60s")
    acc: dict[str, list[float]] = {k: [] for k in keys}
    for d in range(VALIDATION_DAYS):
        a, b = d * SECONDS_PER_DAY + window[0], d * SECONDS_PER_DAY + window[1]
        x = t[(t >= a) & (t <= b)]
        if len(x) < 3:
            continue
        st = arrival_stats(x)
        for k in keys:
            if k in st:
                acc[k].append(st[k])
    return {k: float(np.mean(v)) for k, v in acc.items() if v}


def _lognormal_value(mu: float, sigma: float, stat: str) -> float:
    z = {"p50": 0.0, "p90": 1.2815515655446004, "p99": 2.3263478740408408}
    if stat == "mean":
        return math.exp(mu + sigma**2 / 2)
    return math.exp(mu + sigma * z[stat])


def rows(p: Preset, req: pd.DataFrame, real_peak_hour: float | None) -> list[Row]:
    """The report rows of one preset."""
    out: list[Row] = []
    inp = req["input_tokens"].to_numpy(dtype=float)
    outp = req["output_tokens"].to_numpy(dtype=float)
    t = req["timestamp_s"].to_numpy(dtype=float)
    sim_tok = {"input_tokens": dist(inp), "output_tokens": dist(outp)}
    for fld, label in (("input_tokens", "input"), ("output_tokens", "output")):
        real = p.real[fld] if fld in p.real else p.real["servegen"][fld]
        mu, sg = p.lognormal[fld]
        for stat in ("mean", "p50", "p90", "p99"):
            out.append(
                Row(
                    p.name,
                    f"{label} tokens {stat}",
                    real[stat],
                    sim_tok[fld][stat],
                    stat,
                    _lognormal_value(mu, sg, stat),
                )
            )
    if "out_in_ratio_of_sums" in p.real:
        ratio = p.real["out_in_ratio_of_sums"]
        out.append(
            Row(
                p.name,
                "output/input (ratio of sums)",
                ratio,
                outp.sum() / inp.sum(),
                "out_in_ratio",
            )
        )
    else:
        out.append(
            Row(
                p.name,
                "output/input (ratio of means)",
                p.real["out_in_ratio_of_means"],
                outp.mean() / inp.mean(),
                "out_in_ratio",
            )
        )
    if p.window is not None:
        ra = p.real["arrivals"]
        ws = _window_stats(t, p.window)
        slotted = p.name.startswith("chat_mooncake")
        for k, label in (
            ("iat_cv", "inter-arrival CV"),
            ("count_cv_60s", "CV of counts per 60 s"),
            ("idc_60s", "dispersion (var/mean) of counts per 60 s"),
        ):
            if slotted and k == "iat_cv":
                out.append(
                    Row(
                        p.name,
                        label,
                        ra[k],
                        ws[k],
                        None,
                        note="not fitted: the trace's times sit on 3-s slots",
                    )
                )
                continue
            out.append(Row(p.name, label, ra[k], ws[k], k))
    sim_hours = arrival_stats(t).get("hour_of_day_norm")
    if real_peak_hour is not None and sim_hours is not None:
        out.append(
            Row(
                p.name, "peak/mean hour of day", real_peak_hour, max(sim_hours), "peak_to_mean_hour"
            )
        )
    if "servegen" in p.real and "intensity_shape" in p.segment:
        rs = p.real["servegen"]
        sim_shares = expected_top_shares(p.segment["intensity_shape"], rs["active_clients"])
        for top, sim_v in zip((1, 5, 10), sim_shares, strict=True):
            out.append(
                Row(
                    p.name,
                    f"top-{top} customer share of requests",
                    rs[f"top{top}_client_share"],
                    sim_v,
                    f"top{top}_share",
                    note=f"expected over {INTENSITY_DRAWS:,} draws of"
                    f" {rs['active_clients']} intensities",
                )
            )
    if "servegen" in p.real:
        out += _rate_rows(p)
    return out


def _rate_rows(p: Preset) -> list[Row]:
    """The 10-min rate's CV and autocorrelation and the customers' window CV, real vs simulated."""
    rs = p.real["servegen"]
    n = int(VALIDATION_DAYS * SECONDS_PER_DAY // RATE_WINDOW_S)
    runs = []
    for rep in range(RATE_REPLICATIONS):
        req = simulate_rate(p, rep)
        t = req["timestamp_s"].to_numpy(dtype=float)
        counts = np.bincount((t // RATE_WINDOW_S).astype(np.int64), minlength=n)[:n]
        st = rate_modulation_stats(counts, np.arange(n) * RATE_WINDOW_S)
        runs.append(
            {
                **st,
                "cv_of_10min_rate": rate_10min_cv(t),
                "client_window_iat_cv_median": client_window_iat_cv(
                    t, req["subscriber"].to_numpy()
                ),
            }
        )
    sim = pd.DataFrame(runs).mean()
    note = (
        f"mean of {RATE_REPLICATIONS} weeks of {rs['active_clients']} customers with the"
        " preset's intensity spread"
    )
    gap = "; one time scale: the model's correlation fades faster beyond 2 h"
    return [
        Row(p.name, label, rs[k], float(sim[k]), tol, note=note + extra)
        for k, label, tol, extra in (
            ("cv_of_10min_rate", "CV of the 10-min rate", "rate_cv", ""),
            ("cv_after_hour_shape", "CV of the 10-min rate after the hour shape", "rate_cv", ""),
            ("acf_1h", "autocorrelation of that rate at 1 h", "acf_1h", ""),
            ("acf_6h", "autocorrelation of that rate at 6 h", None, gap),
            (
                "client_window_iat_cv_median",
                "inter-arrival CV of a customer in a 10-min window (request-weighted median)",
                "window_iat_cv",
                "",
            ),
        )
    ]


def expected_top_shares(shape: float, customers: int) -> list[float]:
    """Expected request shares of the largest 1, 5, 10 of ``customers`` subscribers.

    Intensities are Gamma(shape, mean 1), the law of ``sim.engine.lifecycle``; requests are in
    proportion to intensity; seed ``VALIDATION_SEED``.
    """
    rng = np.random.default_rng(VALIDATION_SEED)
    draws = [top_shares(rng.gamma(shape, 1.0 / shape, customers)) for _ in range(INTENSITY_DRAWS)]
    return [float(v) for v in np.mean(draws, axis=0)]


def real_peak_hour(p: Preset) -> float | None:
    """Peak/mean of the real hour-of-day shape behind the preset's hour profile."""
    if "servegen" in p.real:
        return float(max(p.real["servegen"]["hour_of_day_norm"]))
    return p.real.get("profile_peak_to_mean")


def report(ps: list[Preset], command: str, fitted_here: bool = True) -> str:
    """The whole validation report (Markdown).

    ``fitted_here`` False: an out-of-sample check of presets fitted elsewhere against the traces
    given.
    """
    real = (
        "*real*: the trace files the presets were fitted on"
        if fitted_here
        else "*real*: the trace files given (the presets were fitted on other data: an"
        " out-of-sample check)"
    )
    lines = [
        "# Validation: presets simulated vs the real traces",
        "",
        "Generated by `" + command + "` (do not edit; regenerate when the model changes).",
        "How each number is defined and why the tolerances are what they are:",
        f"[calibration.md](calibration.md). {real},",
        "measured with `sim.traces.stats` (the definitions of the calibration folder's",
        "`stats.py`); *simulated*: the preset in a one-segment scenario run through the",
        f"engine for {VALIDATION_DAYS} days (seed {VALIDATION_SEED}), every request exported;",
        "*lognormal*: the same statistic of the lognormal fit (the alternative to the",
        "empirical table the preset ships); *diff*: simulated / real - 1; *tol*: the largest",
        "accepted |diff| (`sim.calibration.fidelity.TOLERANCE`).",
        "",
    ]
    for p in ps:
        req = simulate(p)
        rs = rows(p, req, real_peak_hour(p))
        lines += [f"## {p.name}", "", p.description + f"; {len(req):,} simulated requests.", ""]
        lines += [
            "| statistic | real | simulated | diff | tol | lognormal fit | |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in rs:
            tol = f"{TOLERANCE[r.tol_key]:.0%}" if r.tol_key else "-"
            ln = f"{r.lognormal:.4g}" if r.lognormal is not None else ""
            flag = ("ok" if r.ok else "**out of tolerance**") if r.tol_key else ""
            flag = "; ".join(x for x in (flag, r.note) if x)
            lines.append(
                f"| {r.statistic} | {r.real:.4g} | {r.simulated:.4g} | "
                f"{r.diff:+.1%} | {tol} | {ln} | {flag} |"
            )
        lines.append("")
    return "\n".join(lines)


def parse_report(text: str) -> list[dict[str, Any]]:
    """The rows of a committed report (preset, statistic, real, simulated, diff, tol)."""
    out: list[dict[str, Any]] = []
    preset = ""
    for line in text.splitlines():
        if line.startswith("## "):
            preset = line[3:].strip()
        elif line.startswith("| ") and not line.startswith("| statistic"):
            c = [x.strip() for x in line.strip("|").split("|")]
            tol = float(c[4].rstrip("%")) / 100 if c[4] != "-" else None
            out.append(
                {
                    "preset": preset,
                    "statistic": c[0],
                    "real": float(c[1]),
                    "simulated": float(c[2]),
                    "tol": tol,
                    "note": c[6],
                }
            )
    return out


def write_report(ps: list[Preset], path: Path, command: str, fitted_here: bool = True) -> str:
    """Generate the report and write it to ``path``; return its text."""
    text = report(ps, command, fitted_here)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text
