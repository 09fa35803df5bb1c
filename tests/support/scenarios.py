"""SMALL: a small, fast scenario every test layer can modify, as data or validated."""

from __future__ import annotations

import copy
from typing import Any

from sim.scenario.loading import validate_data
from sim.scenario.schema import Scenario

FLAT24 = [1.0] * 24

SMALL: dict[str, Any] = {
    "name": "small",
    "currency": "CNY",
    "horizon_months": 2,
    "days_per_month": 30,
    "seed": 7,
    "replications": 1,
    "outputs": {"ledger": True, "plots": False},
    "catalog": {
        "gpus": [{"name": "h800", "cost_per_hour": 14.4}],
        "models": [
            {
                "name": "big",
                "price_input_miss_per_mtok": 2.0,
                "price_input_hit_per_mtok": 0.5,
                "price_output_per_mtok": 8.0,
                "serving": [
                    {
                        "gpu": "h800",
                        "prefill_tokens_per_s_per_gpu": 2000,
                        "decode_tokens_per_s_per_gpu": 400,
                        "batch_slots_per_replica": 8,
                        "gpus_per_replica": 1,
                    }
                ],
            },
            {
                "name": "small",
                "price_input_miss_per_mtok": 1.0,
                "price_input_hit_per_mtok": 0.25,
                "price_output_per_mtok": 4.0,
                "serving": [
                    {
                        "gpu": "h800",
                        "prefill_tokens_per_s_per_gpu": 6000,
                        "decode_tokens_per_s_per_gpu": 1200,
                        "batch_slots_per_replica": 8,
                        "gpus_per_replica": 1,
                    }
                ],
            },
        ],
    },
    "plans": [
        {
            "name": "lite",
            "price_per_month": 9.9,
            "quota": {"unit": "tokens", "amount": 400_000},
            "models": {"big": 1.0, "small": 1.0},
            "on_exhaustion": {"rule": "cutoff"},
        },
        {
            "name": "pro",
            "price_per_month": 39.9,
            "quota": {"unit": "tokens", "amount": 2_000_000},
            "models": {"big": 2.0, "small": 1.0},
            "on_exhaustion": {"rule": "payg", "price_per_munit": 4.0},
        },
    ],
    "segments": [
        {
            "name": "chat",
            "kind": "chat",
            "plans": ["lite", "pro"],
            "initial_subscribers": 300,
            "acquisition": {"model": "bass", "market_size": 600, "p": 0.02, "q": 0.2},
            "sessions_per_day": 2.0,
            "requests_per_session": 3.0,
            "think_time_s": 60.0,
            "hour_profile": [0.5] * 8 + [1.2] * 12 + [1.0] * 4,
            "input_tokens": {"median": 800, "sigma": 1.0, "max": 32768},
            "output_tokens": {"median": 150, "sigma": 0.8, "max": 4096},
            "cache_hit_share": 0.3,
            "model_preference": {"big": 0.6, "small": 0.4},
            "value_per_mtok": 8.0,
            "churn_intercept": -2.6,
        },
        {
            "name": "coder",
            "kind": "coder",
            "plans": ["pro"],
            "initial_subscribers": 60,
            "acquisition": {"model": "constant", "per_month": 10},
            "sessions_per_day": 1.0,
            "requests_per_session": 10.0,
            "think_time_s": 20.0,
            "hour_profile": FLAT24,
            "input_tokens": {"median": 3000, "sigma": 1.0},
            "output_tokens": {"median": 200, "sigma": 0.8},
            "cache_hit_share": 0.8,
            "model_preference": {"big": 0.7, "small": 0.3},
            "value_per_mtok": 4.0,
            "churn_intercept": -2.9,
        },
    ],
    "cluster": {
        "pools": [
            {"name": "big", "model": "big", "gpu": "h800", "gpus": 2},
            {"name": "small", "model": "small", "gpu": "h800", "gpus": 1},
        ],
        "sla_classes": [{"name": "standard", "priority": 1, "slo": {"ttft_s": 2.0, "tpot_s": 0.2}}],
    },
}


def small_dict(**overrides: Any) -> dict[str, Any]:
    """A deep copy of SMALL with top-level keys replaced."""
    d = copy.deepcopy(SMALL)
    d.update(overrides)
    return d


def small_scenario(**overrides: Any) -> Scenario:
    """SMALL (with overrides) validated into a Scenario."""
    return validate_data(small_dict(**overrides))


CONGESTED_SLOTS = 2
"""Batch slots per replica of the ``big`` model in :func:`congested_dict` (SMALL has 8)."""
CONGESTED_DECODE = 10
"""Decode tokens/s per GPU of the ``big`` model in :func:`congested_dict` (SMALL has 400)."""


def congested_dict(subscribers: float = 1.0, **overrides: Any) -> dict[str, Any]:
    """SMALL with the ``big`` pool short of capacity: queues of seconds, growing with demand.

    Two slots per replica and a fortieth of the decode speed make each ``big`` request hold a
    slot for ~10 s; ``subscribers`` multiplies every segment's initial subscribers and the Bass
    market sizes (the tests that size pools or study impatience build on it).
    """
    d = small_dict(**overrides)
    sv = d["catalog"]["models"][0]["serving"][0]
    sv["batch_slots_per_replica"] = CONGESTED_SLOTS
    sv["decode_tokens_per_s_per_gpu"] = CONGESTED_DECODE
    for g in d["segments"]:
        g["initial_subscribers"] = round(g["initial_subscribers"] * subscribers)
        if g["acquisition"]["model"] == "bass":
            g["acquisition"]["market_size"] *= subscribers
    return d


BATCHED_STEP = {
    "base_s": 0.01,
    "per_request_s": 5e-4,
    "per_context_token_s": 1e-7,
    "prefill_chunk_tokens": 1024,
    "kv_cache_tokens_per_replica": 40_000,
}
"""Step times of the small scenario's replicas (s; tokens): 8 requests of 1,500 context tokens
step in about 16 ms, near the ``big`` model's catalog 8 / 400 = 20 ms."""


DISAGG_KV_BYTES = 100_000
"""KV bytes per context token of the small scenario's disaggregated pool (bytes): 1,500 tokens
cross the default 87 GB/s link in 1.7 ms."""


def disaggregated_dict(
    prefill_gpus: int = 1, decode_gpus: int = 1, subscribers: float = 1.0, **overrides: Any
) -> dict:
    """:func:`batched_dict` with pool ``big`` prefilling and decoding on separate replicas."""
    d = batched_dict(subscribers, **overrides)
    big = d["cluster"]["pools"][0]
    big["gpus"] = prefill_gpus
    big["disaggregated"] = {"decode_gpus": decode_gpus, "kv_bytes_per_token": DISAGG_KV_BYTES}
    return d


def batched_dict(subscribers: float = 1.0, patience: bool = False, **overrides: Any) -> dict:
    """SMALL with both pools ``serving: batched``, demand times ``subscribers``.

    ``patience``: users wait at most a lognormal 20 s (median) for a first token.
    """
    d = small_dict(**overrides)
    for m in d["catalog"]["models"]:
        m["serving"][0]["step_time"] = dict(BATCHED_STEP)
    for p in d["cluster"]["pools"]:
        p["serving"] = "batched"
    for g in d["segments"]:
        g["initial_subscribers"] = round(g["initial_subscribers"] * subscribers)
        if patience:
            g["patience"] = {"median_s": 20.0, "sigma": 0.5}
    return d
