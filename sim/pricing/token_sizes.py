"""Token lengths of a segment's requests as the engine draws them: moments and quantiles.

``sim.engine.demand`` draws each request's input and output length from the segment's
lognormal or empirical table (inverse CDF, linear between table points), rounds it to whole
tokens (at least 1) and caps it at ``max``; a replayed segment takes the trace's lengths as
they are. :func:`length_moments` gives the first two moments of those lengths **with the cap
applied** (the world's ``in_mean``/``out_mean``, which plan choice uses, ignore it);
:func:`length_quantile` a quantile. Rounding and the floor of one token are ignored: they
move a mean by well under one token.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

from sim.world.arrays import F64, I64, TOKENS_EMPIRICAL, TOKENS_REPLAY, Segments

Which = Literal["input", "output"]
"""Which length of a request: its input (prompt) or its output (completion)."""


def capped_lognormal_moment(mu: float, sigma: float, cap: float, n: int) -> float:
    """E[min(X, cap)^n] for X lognormal with log-mean ``mu`` and log-sd ``sigma`` (tokens^n).

    The partial moment below the cap is exp(n mu + n^2 sigma^2 / 2) Phi(z - n sigma) with
    z = (ln cap - mu) / sigma; above it the cap counts cap^n (1 - Phi(z)).
    """
    if sigma == 0.0:
        return float(min(np.exp(mu), cap) ** n)
    if not np.isfinite(cap):
        return float(np.exp(n * mu + (n * sigma) ** 2 / 2))
    z = (np.log(cap) - mu) / sigma
    below = np.exp(n * mu + (n * sigma) ** 2 / 2) * ndtr(z - n * sigma)
    return float(below + cap**n * ndtr(-z))


def _uniform_capped_moment(a: float, b: float, cap: float, n: int) -> float:
    """E[min(U, cap)^n] for U uniform on [a, b] (a point mass when a == b)."""
    if b <= a:
        return float(min(a, cap) ** n)
    if cap >= b:
        return (b ** (n + 1) - a ** (n + 1)) / ((n + 1) * (b - a))
    if cap <= a:
        return float(cap**n)
    f = (cap - a) / (b - a)  # share of the interval below the cap
    return f * (cap ** (n + 1) - a ** (n + 1)) / ((n + 1) * (cap - a)) + (1 - f) * cap**n


def empirical_capped_moment(p: F64, q: F64, cap: float, n: int) -> float:
    """E[min(X, cap)^n] for X drawn by inverse CDF from the table (p, q), linear in between.

    Between two table points the quantile function is linear, so X is uniform on
    [q_k, q_k+1] with probability p_k+1 - p_k.
    """
    return float(
        sum(
            (p[k + 1] - p[k]) * _uniform_capped_moment(q[k], q[k + 1], cap, n)
            for k in range(len(p) - 1)
        )
    )


def _columns(seg: Segments, which: Which) -> tuple[F64, F64, F64, I64, F64, F64, I64]:
    """The segment arrays of one length field: mu, sigma, cap, kind, table p, table q, n."""
    if which == "input":
        return (
            seg.in_mu,
            seg.in_sigma,
            seg.in_max,
            seg.in_kind,
            seg.in_table_p,
            seg.in_table_q,
            seg.in_table_n,
        )
    return (
        seg.out_mu,
        seg.out_sigma,
        seg.out_max,
        seg.out_kind,
        seg.out_table_p,
        seg.out_table_q,
        seg.out_table_n,
    )


def _trace_lengths(seg: Segments, k: int, which: Which) -> F64:
    tr = seg.replay[k]
    assert tr is not None
    return tr.input if which == "input" else tr.output


def length_moments(seg: Segments, which: Which) -> tuple[F64, F64]:
    """Mean and second moment of each segment's ``which`` length, cap applied ([S] tokens, tok^2).

    Replayed segments: the trace's own lengths (sample moments).
    """
    mu, sigma, cap, kind, tp, tq, tn = _columns(seg, which)
    n_seg = len(seg.names)
    m1, m2 = np.zeros(n_seg), np.zeros(n_seg)
    for k in range(n_seg):
        if kind[k] == TOKENS_REPLAY:
            x = _trace_lengths(seg, k, which)
            m1[k], m2[k] = float(x.mean()), float((x**2).mean())
        elif kind[k] == TOKENS_EMPIRICAL:
            m = int(tn[k])
            p, q = tp[k, :m], tq[k, :m]
            m1[k] = empirical_capped_moment(p, q, cap[k], 1)
            m2[k] = empirical_capped_moment(p, q, cap[k], 2)
        else:
            m1[k] = capped_lognormal_moment(mu[k], sigma[k], cap[k], 1)
            m2[k] = capped_lognormal_moment(mu[k], sigma[k], cap[k], 2)
    return m1, m2


def length_quantile(seg: Segments, which: Which, level: float) -> F64:
    """Each segment's ``which`` length at cumulative probability ``level``, capped ([S] tokens)."""
    mu, sigma, cap, kind, tp, tq, tn = _columns(seg, which)
    out = np.zeros(len(seg.names))
    for k in range(len(out)):
        if kind[k] == TOKENS_REPLAY:
            out[k] = float(np.quantile(_trace_lengths(seg, k, which), level))
        elif kind[k] == TOKENS_EMPIRICAL:
            m = int(tn[k])
            out[k] = min(float(np.interp(level, tp[k, :m], tq[k, :m])), cap[k])
        else:
            out[k] = min(float(np.exp(mu[k] + sigma[k] * ndtri(level))), cap[k])
    return out
