"""Requests and summaries shared by the batched-serving kernel tests (tests/theory)."""

from __future__ import annotations

import math

import numpy as np

from support.kernel_harness import BatchSpec, Harness

REALISTIC = {
    "base_s": 0.02,
    "prefill_s": 1 / 30_000,
    "request_s": 2e-4,
    "context_s": 5e-8,
    "chunk": 2048.0,
    "kv_tokens": 400_000.0,
    "max_batch": 64,
}
"""Step-time coefficients of a mid-sized model on one replica (s, tokens).

Floats where BatchSpec's defaults are floats, so the kernel is compiled for one signature.
"""


def workload(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input (median 1,500, a long tail), output (median 200) and uncached token counts.

    A third of the requests have 70% of their input cached and one in ten all of it (a single
    prefill token), the rest none.
    """
    inp = np.clip(np.rint(rng.lognormal(math.log(1500), 1.0, n)), 1, 60_000)
    out = np.clip(np.rint(rng.lognormal(math.log(200), 0.8, n)), 1, 4_000)
    share = rng.choice([1.0, 0.3, 0.0], n, p=[0.57, 0.33, 0.10])
    return inp, np.rint(inp * share), out


def latency_summary(res: dict, t: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """TTFT and TPOT p50 / p95 (s) of the served requests."""
    ttft = res["first"] - t
    tpot = (res["end"] - res["first"]) / np.maximum(out - 1, 1)
    return {
        "ttft_p50": float(np.nanpercentile(ttft, 50)),
        "ttft_p95": float(np.nanpercentile(ttft, 95)),
        "tpot_p50": float(np.nanpercentile(tpot, 50)),
        "tpot_p95": float(np.nanpercentile(tpot, 95)),
    }


def serve(
    spec: BatchSpec,
    replicas: int,
    t: np.ndarray,
    inp: np.ndarray,
    uncached: np.ndarray,
    output: np.ndarray,
) -> dict[str, np.ndarray]:
    """Serve the requests (one subscriber each, no quota limit) on one batched pool of
    ``replicas`` replicas of ``spec`` (a disaggregated one's prefill replicas) via serve_day."""
    n = len(t)
    h = Harness(slots=[replicas * spec.max_batch], batch=[spec], n_prio=3)
    return h.run(
        t=t,
        sub=np.arange(n),
        sub_plan=np.zeros(n, np.int64),
        quota=np.full(n, 1e18),
        output=output,
        uncached=uncached,
        input_tokens=inp,
    )
