"""Alternating, paired timing of scenario variants in one process (benchmarks only).

Each variant runs once per round, in a fixed order, so that slow phases of a shared machine
fall on every variant alike; ratios are taken round by round against a reference variant and
their median reported (medians and paired ratios, not single times).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

S = TypeVar("S")


def alternate(
    runs: Mapping[str, S], repeats: int, one_run: Callable[[S], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """``repeats`` rounds of every variant in turn: each variant's list of ``one_run`` results."""
    times: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, s in runs.items():
            times[name].append(one_run(s))
    return times


def medians(rs: list[dict[str, Any]], ref: list[dict[str, Any]]) -> tuple[float, float]:
    """Median engine seconds of ``rs`` and the median of its round-by-round ratios to ``ref``."""
    eng = statistics.median(r["engine_s"] for r in rs)
    ratio = statistics.median(r["engine_s"] / b["engine_s"] for r, b in zip(rs, ref, strict=True))
    return eng, ratio
