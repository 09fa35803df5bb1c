"""Workload presets fitted on real LLM traces (``tokensim calibrate``).

Each preset is the demand part of a segment (kind, sessions, think times, profiles, token
lengths, cache-hit share), written as a YAML anchor under a top-level ``x-`` key so that a
scenario can paste the file at its top and merge it into a segment with ``<<: *name``; a
second ``x-fit-NAME`` key lists, per parameter, its value, unit, source file, fitting method
and standard error. ``docs/calibration.md`` explains every step; in short:

* **token lengths**: an empirical quantile table (``dist: empirical``) at the probabilities
  ``TABLE_PROBS`` (numpy's linear percentiles of the trace; for ServeGen the first value whose
  cumulative probability reaches p), and the lognormal maximum-likelihood fit (mu, sigma =
  mean and sd of ln x) with standard errors sigma/sqrt(n) and sigma/sqrt(2n) as an
  alternative;
* **arrivals**: the segment's cluster process (Poisson sessions, geometric requests per
  session, Gamma think times) fitted by the simulated method of moments: requests per session
  m, think time mean tau and CV c minimise the squared log differences between the trace's
  and the model's inter-arrival CV and indices of dispersion of counts per 3, 10 and 60 s
  (Mooncake: 10 and 60 s only, c fixed at 1, because its times sit on 3-s slots), with the
  session rate set so that the request rate equals the trace's; the model's moments are
  averaged over ``SMM_REPLICATIONS`` simulated traces of the trace's span with common random
  numbers; a coarse grid then two local refinements. Standard errors by the delta method:
  the covariance of the log moments over ``SMM_BOOTSTRAP`` parametric-bootstrap traces,
  mapped through the Jacobian of the log moments in the log parameters (finite differences);
* **profiles**: hour-of-day and weekday shapes of the digitised Azure 2024 week (UTC; code
  for coders, conversation for chat) and ServeGen's hour-of-day shape for API customers;
* **cache-hit shares**: Mooncake's prefix hashes (unbounded cache), Copilot's cached-prompt
  share and DeepSeek's on-disk cache share (``published_aggregates.json``);
* **requests per subscriber per day** (not identifiable from an aggregate trace): named
  assumptions below, except ServeGen (mean rate per active customer).

The work is split by concept: ``sim.calibration.fit`` holds the statistics (token tables and
lognormal fits, the arrival fit, the intensity shape), ``sim.calibration.activity`` the
activity-spell fits and ``sim.calibration.presets`` the preset file (``Preset``, writing and
reading presets). This module recognises the input files and assembles the presets from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.calibration.activity import ARRIVAL_FIT_ROWS, activity_fit, arrival_cv_fit
from sim.calibration.fit import (
    CalibrationError,
    Fit,
    arrival_fits,
    fit_arrivals,
    intensity_shape_fit,
    lognormal_fit,
    pmf_table,
    round_sig,
    token_fits,
    token_table,
)
from sim.calibration.presets import Preset
from sim.traces.readers import (
    Trace,
    TraceError,
    azure_class,
    detect,
    read_json,
    read_table,
    read_trace,
)
from sim.traces.stats import (
    azure2024_profile,
    pmf_stats,
    prefix_cache_hit_ratio,
    request_stats,
    servegen_rates,
)
from sim.units import SECONDS_PER_DAY, SECONDS_PER_HOUR

CHAT_REQUESTS_PER_DAY = 4.5
"""Requests per chat subscriber per day (requests/day). Assumption: the baseline chat
segment's 1.5 sessions x 3 requests; no per-user rate is published in the traces."""
CODER_REQUESTS_PER_DAY_DEFAULT = 30.93
"""Requests per coder per day when published_aggregates.json is not given (requests/day):
the GitHub Copilot coding agent's LLM calls per session (June 2026 dataset card), at one
session per day (assumption)."""
CHAT_CACHE_HIT_DEFAULT = 0.358
"""Chat cache-hit share when no Mooncake trace is given: its unbounded prefix-cache token hit
ratio (shared/data README, section 2)."""
MOONCAKE_WINDOW_START_S = 12 * SECONDS_PER_HOUR
"""Time of day at which the validation compares the Mooncake trace's window (s): the trace
has no clock; noon is an arbitrary, documented choice."""


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """The calibration files found among the arguments, by kind."""

    azure_code: Path | None = None
    azure_conv: Path | None = None
    mooncake: Path | None = None
    servegen_arrivals: Path | None = None
    servegen_pmf: Path | None = None
    servegen_client_tokens: Path | None = None
    azure2024_profile: Path | None = None
    aggregates: Path | None = None

    @classmethod
    def from_files(cls, files: list[Path]) -> Inputs:
        """Recognise each file by its header (as stats.py does); error on an unknown one."""
        inp = cls()
        for f in files:
            kind = detect(f)
            if kind is None:
                raise CalibrationError(f"{f.name}: format not recognised")
            attr = f"azure_{azure_class(f)}" if kind == "azure" else kind
            if getattr(inp, attr) is not None:
                raise CalibrationError(f"{f.name}: a second {attr.replace('_', ' ')} file")
            setattr(inp, attr, f)
        return inp


def _profile(inp: Inputs, cls: str) -> tuple[list[float], list[float], str]:
    """Hour-of-day (UTC) and weekday (Monday first) shapes of an Azure 2024 class."""
    if inp.azure2024_profile is None:
        return [1.0] * 24, [1.0] * 7, "flat (no azure2024 profile given)"
    p = azure2024_profile(read_table(inp.azure2024_profile), cls)
    hours = [round(v, 3) for v in p["hour_of_day_norm"]]
    week = [round(p["day_norm"][d], 3) for d in range(7)]
    return hours, week, inp.azure2024_profile.name


def _aggregates(inp: Inputs) -> dict[str, Any]:
    return read_json(inp.aggregates) if inp.aggregates is not None else {}


# --------------------------------------------------------------------------- presets


def _trace_preset(
    name: str,
    description: str,
    kind: str,
    tr: Trace,
    keys: tuple[str, ...],
    fit_cv: bool,
    profile: tuple[list[float], list[float], str],
    requests_per_day: Fit,
    cache: Fit,
    window: tuple[float, float] | None,
    extra_sources: list[str],
) -> Preset:
    src = tr.name
    hours, week, psrc = profile
    try:
        af = fit_arrivals(tr.t, keys, fit_cv)
    except CalibrationError as e:
        raise CalibrationError(f"{src}: {e}") from None
    fin = arrival_fits(af, src, requests_per_day)
    inp, out = tr.input.astype(float), tr.output.astype(float)
    fits: dict[str, Fit] = {}
    lognormal = {}
    for fld, x in (("input_tokens", inp), ("output_tokens", out)):
        mu, sg, se_mu, se_sg = lognormal_fit(x)
        fits.update(token_fits(fld, mu, sg, se_mu, se_sg, src, len(x)))
        lognormal[fld] = (mu, sg)
    fits.update(fin)
    fits["hour_profile"] = Fit(
        "list above", "relative rate per hour (UTC)", psrc, "hour-of-day mean / overall mean"
    )
    fits["weekday_profile"] = Fit(
        "list above", "relative rate per weekday, Monday first", psrc, "day mean / week mean"
    )
    fits["cache_hit_share"] = cache
    seg = {
        "kind": kind,
        "sessions_per_day": fin["sessions_per_day"].value,
        "requests_per_session": fin["requests_per_session"].value,
        "think_time_s": fin["think_time_s"].value,
        "think_time_cv": fin["think_time_cv"].value,
        "hour_profile": hours,
        "weekday_profile": week,
        "input_tokens": token_table(inp),
        "output_tokens": token_table(out),
        "cache_hit_share": cache.value,
    }
    real = request_stats(tr.t, inp, out)
    if "flat" not in psrc:
        real["profile_peak_to_mean"] = max(hours)
    srcs = [src, *([psrc] if "flat" not in psrc else []), *extra_sources]
    return Preset(name, description, seg, fits, sorted(set(srcs)), real, window, lognormal)


def _window(tr: Trace, start: float | None = None) -> tuple[float, float]:
    """Time of day (s) of the trace's arrivals, or of a same-length window at ``start``."""
    if start is None:
        return float(tr.t[0] % SECONDS_PER_DAY), float(tr.t[-1] % SECONDS_PER_DAY)
    return start, start + float(tr.t[-1] - tr.t[0])


def presets(inp: Inputs) -> list[Preset]:
    """Every preset the given files allow, in a fixed order."""
    agg = _aggregates(inp)
    out: list[Preset] = []
    chat_cache = Fit(
        CHAT_CACHE_HIT_DEFAULT,
        "share",
        "shared/data README (section 2)",
        "Mooncake unbounded prefix-cache token hit ratio",
    )
    mooncake = read_trace(inp.mooncake, "mooncake") if inp.mooncake else None
    if mooncake is not None and mooncake.hash_ids is not None:
        hit = prefix_cache_hit_ratio(mooncake.hash_ids, mooncake.input)
        chat_cache = Fit(
            round_sig(hit, 3),
            "share",
            mooncake.name,
            "prefix hashes, unbounded cache empty at the first request: hit tokens / input",
        )
    chat_rpd = Fit(
        CHAT_REQUESTS_PER_DAY,
        "requests/day",
        "assumption (sim/calibration/calibrate.py)",
        "baseline chat segment: 1.5 sessions x 3 requests",
    )
    if inp.azure_code is not None:
        code = read_trace(inp.azure_code, "azure")
        cop = agg.get("github_copilot_coding_agent_2026", {})
        asrc = inp.aggregates.name if inp.aggregates else "sim/calibration/calibrate.py"
        rpd = Fit(
            round_sig(
                float(cop.get("llm_calls_per_session_derived", CODER_REQUESTS_PER_DAY_DEFAULT))
            ),
            "requests/day",
            asrc,
            "GitHub Copilot coding agent LLM calls per session, one session per day (assumption)",
        )
        if "cached_prompt_share_derived" in cop:
            cache = Fit(
                round_sig(float(cop["cached_prompt_share_derived"]), 3),
                "share",
                asrc,
                "GitHub Copilot coding agent: cached / all prompt tokens",
            )
        else:
            cache = Fit(0.0, "share", "none given", "no cache data for coders")
        out.append(
            _trace_preset(
                "coder_azure_code",
                "coders, Azure OpenAI code service (2023 trace)",
                "coder",
                code,
                ("iat_cv", "idc_3s", "idc_10s", "idc_60s"),
                True,
                _profile(inp, "code"),
                rpd,
                cache,
                _window(code),
                [inp.aggregates.name] if inp.aggregates else [],
            )
        )
    if inp.azure_conv is not None:
        conv = read_trace(inp.azure_conv, "azure")
        out.append(
            _trace_preset(
                "chat_azure_conv",
                "chat users, Azure OpenAI conversation service (2023 trace)",
                "chat",
                conv,
                ("iat_cv", "idc_3s", "idc_10s", "idc_60s"),
                True,
                _profile(inp, "conv"),
                chat_rpd,
                chat_cache,
                _window(conv),
                [mooncake.name] if mooncake else [],
            )
        )
    if mooncake is not None:
        out.append(
            _trace_preset(
                "chat_mooncake",
                "chat users, Kimi (Moonshot AI) conversation trace (Mooncake)",
                "chat",
                mooncake,
                ("idc_10s", "idc_60s"),
                False,
                _profile(inp, "conv"),
                chat_rpd,
                chat_cache,
                _window(mooncake, MOONCAKE_WINDOW_START_S),
                [],
            )
        )
    if inp.servegen_arrivals is not None and inp.servegen_pmf is not None:
        out.extend(_servegen_presets(inp, agg))
    if not out:
        raise CalibrationError(
            "no preset can be fitted from these files: give an Azure code or conversation CSV,"
            " a Mooncake JSONL, or ServeGen arrivals together with a ServeGen token PMF"
        )
    return out


def _servegen_presets(inp: Inputs, agg: dict[str, Any]) -> list[Preset]:
    assert inp.servegen_arrivals is not None
    assert inp.servegen_pmf is not None
    arr = read_table(inp.servegen_arrivals)
    pmf = read_table(inp.servegen_pmf)
    ct = read_table(inp.servegen_client_tokens) if inp.servegen_client_tokens else None
    asrc, psrc = inp.servegen_arrivals.name, inp.servegen_pmf.name
    ds = agg.get("deepseek_v3_r1_online_service_24h", {})
    if "input_cache_hit_share" in ds:
        assert inp.aggregates is not None
        cache = Fit(
            round_sig(float(ds["input_cache_hit_share"]), 3),
            "share",
            inp.aggregates.name,
            "DeepSeek online service, 24 h of Feb 2025: cache-hit input / all input"
            " (whole platform; ServeGen publishes no cache data)",
        )
    else:
        cache = Fit(0.0, "share", "none given", "no cache data for API customers")
    out = []
    for model in sorted(set(arr["model"]) & set(pmf["model"])):
        rs = servegen_rates(arr, model)
        per_client_day = rs["mean_rps"] / rs["active_clients"] * SECONDS_PER_DAY
        fits: dict[str, Fit] = {}
        seg_tokens: dict[str, Any] = {}
        real: dict[str, Any] = {"servegen": rs}
        lognormal = {}
        n_req = float("nan")
        if ct is not None:
            x = ct[(ct["model"] == model) & (ct["requests"] > 0)]
            n_req = float(x["requests"].sum())
        for fld in ("input_tokens", "output_tokens"):
            y = pmf[(pmf["model"] == model) & (pmf["field"] == fld)]
            v, p = y["tokens"].to_numpy(dtype=float), y["prob"].to_numpy(dtype=float)
            if len(v) == 0:
                raise CalibrationError(f"{psrc}: no {fld} rows for model {model}")
            seg_tokens[fld] = pmf_table(v, p)
            n = n_req if math.isfinite(n_req) else 1.0
            mu, sg, se_mu, se_sg = lognormal_fit(v, n, p)
            if not math.isfinite(n_req):
                se_mu = se_sg = float("nan")
            fits.update(token_fits(fld, mu, sg, se_mu, se_sg, psrc, n))
            lognormal[fld] = (mu, sg)
            real[fld] = pmf_stats(v, p)
        fits["requests_per_session"] = Fit(
            1.0,
            "requests",
            asrc,
            "1: each request its own session; a customer's burstiness is arrival_cv within a"
            " window and activity spells across windows",
        )
        try:
            acv = arrival_cv_fit(arr[arr["model"] == model])
        except ValueError as e:
            raise CalibrationError(f"{asrc}: {e}") from None
        fits["arrival_cv"] = Fit(
            round_sig(acv.cv, 3),
            "1",
            asrc,
            "simulated method of moments (sim.calibration.activity.arrival_cv_fit): Gamma renewal"
            " whose 10-min windows give the trace's request-weighted median inter-arrival CV"
            f" ({acv.median_iat_cv:.3f}), simulated on {ARRIVAL_FIT_ROWS:,} (customer, window)"
            " rows drawn by requests; se: the median's bootstrap over customers / the model's"
            " slope",
            acv.cv_se,
        )
        fits["sessions_per_day"] = Fit(
            round_sig(per_client_day),
            "requests/day",
            asrc,
            "mean request rate / active customers x 86,400 (10-min windows, gaps left out)",
        )
        fits["hour_profile"] = Fit(
            "list above",
            "relative rate per hour (trace clock)",
            asrc,
            "10-min aggregate rate, mean per hour of day / mean",
        )
        fits["weekday_profile"] = Fit(
            "list above",
            "relative rate per weekday",
            asrc,
            "flat: ServeGen does not publish the weekday of its day 0",
        )
        fits["cache_hit_share"] = cache
        act = activity_fit(arr[arr["model"] == model])
        cv_txt = f"{act.cv_after_hour_shape:.3f}"
        fits["activity_sigma"] = Fit(
            round_sig(act.sigma, 3),
            "ln units",
            asrc,
            "simulated method of moments with activity_timescale_s (sim.calibration.activity): the"
            f" aggregate 10-min rate's CV after its hour-of-day shape ({cv_txt}) and its"
            " autocorrelation at lags 10 min-6 h, vs weeks simulated with the trace's"
            f" {rs['active_clients']} customer shares (HHI {act.hhi:.4f}); se by bootstrap"
            " over customers",
            act.sigma_se,
        )
        fits["activity_timescale_s"] = Fit(
            round_sig(act.timescale_s, 3),
            "s",
            asrc,
            "fitted jointly with activity_sigma (see there); one time scale, so the fit trades"
            " a higher autocorrelation than the trace's below 2 h for a lower one beyond",
            act.timescale_se_s,
        )
        shape, shape_se = intensity_shape_fit(rs["client_requests"])
        fits["intensity_shape"] = Fit(
            round_sig(shape),
            "1",
            asrc,
            f"Gamma intensity (mean 1) by moments: 1 / CV^2 of the {rs['active_clients']}"
            " customers' request counts over the period; se by bootstrap over customers",
            shape_se,
        )
        seg = {
            "kind": "enterprise_bot",
            "sessions_per_day": fits["sessions_per_day"].value,
            "requests_per_session": 1.0,
            "intensity_shape": fits["intensity_shape"].value,
            "hour_profile": [round(v, 3) for v in rs["hour_of_day_norm"]],
            "weekday_profile": [1.0] * 7,
            "input_tokens": seg_tokens["input_tokens"],
            "output_tokens": seg_tokens["output_tokens"],
            "cache_hit_share": cache.value,
            "arrival_cv": fits["arrival_cv"].value,
            "activity_sigma": fits["activity_sigma"].value,
            "activity_timescale_s": fits["activity_timescale_s"].value,
        }
        real["out_in_ratio_of_means"] = real["output_tokens"]["mean"] / real["input_tokens"]["mean"]
        srcs = (
            [asrc, psrc]
            + ([inp.servegen_client_tokens.name] if inp.servegen_client_tokens else [])
            + ([inp.aggregates.name] if inp.aggregates else [])
        )
        name = "api_servegen_" + model.replace("-", "_")
        out.append(
            Preset(
                name,
                f"API customers, Alibaba Model Studio {model} (ServeGen)",
                seg,
                fits,
                srcs,
                real,
                None,
                lognormal,
            )
        )
    return out


DATA_SUFFIXES = (".csv", ".jsonl", ".json")
"""File types calibrate reads (optionally .gz); others (a folder's README) are passed over."""


def data_files(files: list[Path]) -> list[Path]:
    """The files among ``files`` that calibrate reads: CSV, JSONL or JSON, optionally .gz."""
    return [f for f in files if f.name.removesuffix(".gz").endswith(DATA_SUFFIXES)]


def calibrate(files: list[Path]) -> list[Preset]:
    """Fit every preset the files allow (``CalibrationError`` on bad input)."""
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise CalibrationError(f"{missing[0]}: no such file")
    try:
        return presets(Inputs.from_files(data_files(files)))
    except (TraceError, KeyError) as e:
        raise CalibrationError(str(e)) from None
