"""Analytic first guess for sizing a pool: an M/G/c queue with TTFT = queue wait + prefill.

The model: a pool of ``n`` replicas with ``slots_per_replica`` continuous-batching slots each is
``c = n * slots_per_replica`` servers; a request holds one slot for its service time S (s) and
waits FIFO when every slot is busy (non-preemptive). Arrivals are Poisson at rate lambda (1/s),
so the offered load is ``a = lambda E[S]`` Erlangs and the pool is stable iff ``a < c``.

- Erlang B and C (the blocking and the waiting probability) are exact for M/M/c; Erlang C is
  also the usual approximation of P(W > 0) for M/G/c.
- The wait tail ``P(W > t) = C exp(-theta t)``, ``theta = (c - a) / E[S] * 2 / (1 + scv)``, is
  exact for M/M/c (scv = 1) and the Allen-Cunneen / Kingman heavy-traffic approximation
  otherwise (Allen 1990, Probability, Statistics, and Queueing Theory, 2nd ed.; Whitt 1993,
  "Approximations for the GI/G/m queue", Production and Operations Management 2(2)).
- TTFT = W + P with the prefill time P independent of W and given as a discrete distribution.

Only the metrics this model can compute are sized here (``wait``, ``ttft``, ``tpot``); ``e2e``
needs the decode time of each request, which the simulation has and this estimate does not, so
such targets are reported as ignored. The simulation search in this package refines the answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import gammaln, logsumexp

METRICS = ("wait", "ttft", "tpot", "e2e")
"""Latency metrics an SLO target may name: queue wait, time to first token, time per output
token, end-to-end latency (all in seconds)."""

ANALYTIC_METRICS = frozenset({"wait", "ttft", "tpot"})
"""Metrics the analytic estimate can compute; targets on other metrics are reported as ignored."""

MAX_REPLICAS = 10_000
"""Default upper end (replicas) of the search in `smallest_replicas`."""

WINDOW_SDS = 40.0
"""Half-width, in Poisson standard deviations sqrt(a), of the terms summed for Erlang B around
the largest one; the terms left out are below exp(-75) of the sum, far under double precision."""

WINDOW_PAD = 50
"""Terms added on each side of the Erlang B window, so small loads keep a wide enough window."""

WEIGHT_SUM_TOLERANCE = 1e-6
"""How far from 1 the prefill weights may sum (they are then renormalised to sum to 1)."""

QUANTILE_XTOL_S = 1e-9
"""Absolute tolerance (s) of the root finder in `ttft_quantile`."""

METHOD = "M/G/c: Erlang C, Allen-Cunneen exponential wait tail, TTFT = W + P (P independent)"
"""The method string recorded in `AnalyticSize`."""

_SLO_PATTERN = re.compile(
    r"^\s*(?P<metric>[a-z0-9]+)_p(?P<pct>\d+(?:\.\d+)?)\s*(?P<op><=|<)\s*(?P<bound>\S+)\s*$"
)
"""``metric_pNN <= bound``: metric, percentile (a decimal allowed), operator, bound in seconds."""


# --- Erlang formulas --------------------------------------------------------------------------


def _check_load(c: int, a: float) -> tuple[int, float]:
    if int(c) != c:
        raise ValueError(f"the number of servers c must be an integer, got {c}")
    c = int(c)
    a = float(a)
    if c < 0:
        raise ValueError(f"the number of servers c must be >= 0, got {c}")
    if not (math.isfinite(a) and a >= 0.0):
        raise ValueError(f"the offered load a must be finite and >= 0 Erlangs, got {a}")
    return c, a


def erlang_b(c: int, a: float) -> float:
    """Erlang B: the probability that all ``c`` servers are busy in M/M/c/c at load ``a``.

    ``a = lambda E[S]`` is the offered load in Erlangs. ``B = (a^c / c!) / sum_{k<=c} a^k / k!``
    (Erlang 1917; Kleinrock 1975, Queueing Systems I, section 3.7, M/M/m/m), the same value as
    the recursion ``B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))``. It is evaluated in log space as
    ``1/B = sum_k exp((k - c) ln a + ln c! - ln k!)`` over the terms within `WINDOW_SDS`
    standard deviations of the largest, so it is stable and fast for c up to 10^6 and beyond
    (a B below about 1e-308 underflows to 0).
    """
    c, a = _check_load(c, a)
    if c == 0:
        return 1.0
    if a == 0.0:
        return 0.0
    peak = min(c, math.floor(a))
    half = math.ceil(WINDOW_SDS * math.sqrt(a) + WINDOW_PAD)
    k = np.arange(max(0, peak - half), min(c, peak + half) + 1, dtype=np.float64)
    log_terms = (k - c) * math.log(a) + gammaln(c + 1.0) - gammaln(k + 1.0)
    return float(np.exp(-logsumexp(log_terms)))


def erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability that an arrival waits in M/M/c at offered load ``a`` Erlangs.

    ``C = c B / (c - a (1 - B))`` with ``B = erlang_b(c, a)`` for ``a < c`` (Kleinrock 1975,
    section 3.5, M/M/m; Gross & Harris, Fundamentals of Queueing Theory, section 2.3); ``C = 1``
    for ``a >= c`` (the queue is unstable and every arrival waits).
    """
    c, a = _check_load(c, a)
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return min(1.0, c * b / (c - a * (1.0 - b)))


# --- the wait and TTFT distributions --------------------------------------------------------


def wait_decay_rate(c: int, a: float, mean_service_s: float, scv_service: float = 1.0) -> float:
    """The decay rate theta (1/s) of the wait tail ``P(W > t) = C exp(-theta t)``.

    ``theta = (c - a) / E[S] * 2 / (1 + scv)``: exact for M/M/c (scv = 1, Kleinrock 1975,
    section 3.5), the Allen-Cunneen / Kingman heavy-traffic scaling for M/G/c otherwise (Allen
    1990; Whitt 1993). 0 when ``a >= c`` (unstable: the wait grows without bound).
    """
    c, a = _check_load(c, a)
    if not (math.isfinite(mean_service_s) and mean_service_s > 0.0):
        raise ValueError(f"mean_service_s must be finite and > 0 s, got {mean_service_s}")
    if not (math.isfinite(scv_service) and scv_service >= 0.0):
        raise ValueError(f"scv_service must be finite and >= 0, got {scv_service}")
    if a >= c:
        return 0.0
    return (c - a) / mean_service_s * 2.0 / (1.0 + scv_service)


@overload
def wait_tail(
    t_s: float, c: int, a: float, mean_service_s: float, scv_service: float = ...
) -> float: ...
@overload
def wait_tail(
    t_s: npt.NDArray[np.float64],
    c: int,
    a: float,
    mean_service_s: float,
    scv_service: float = ...,
) -> npt.NDArray[np.float64]: ...
def wait_tail(
    t_s: float | npt.NDArray[np.float64],
    c: int,
    a: float,
    mean_service_s: float,
    scv_service: float = 1.0,
) -> float | npt.NDArray[np.float64]:
    """P(W > t): the probability that the queue wait exceeds ``t_s`` seconds.

    ``C(c, a) exp(-theta t)`` for t >= 0 (1 for t < 0), theta from `wait_decay_rate`: exact
    for M/M/c (scv = 1), the Allen-Cunneen approximation for M/G/c (Allen 1990; Whitt 1993
    heavy traffic). 1 everywhere when ``a >= c``. Scalar in, float out; array in, array out.
    """
    theta = wait_decay_rate(c, a, mean_service_s, scv_service)
    t = np.asarray(t_s, dtype=np.float64)
    if theta == 0.0:
        tail = np.ones_like(t)
    else:
        tail = np.where(t < 0.0, 1.0, erlang_c(c, a) * np.exp(-theta * np.maximum(t, 0.0)))
    return float(tail) if tail.ndim == 0 else tail


def wait_quantile(
    q: float, c: int, a: float, mean_service_s: float, scv_service: float = 1.0
) -> float:
    """The q-quantile of the queue wait W (s): ``ln(C / (1 - q)) / theta`` if C > 1 - q, else 0.

    The closed-form inverse of `wait_tail` (same model and sources); +inf when ``a >= c``.
    """
    _check_quantile(q)
    theta = wait_decay_rate(c, a, mean_service_s, scv_service)
    if theta == 0.0:
        return math.inf
    waiting = erlang_c(c, a)
    return math.log(waiting / (1.0 - q)) / theta if waiting > 1.0 - q else 0.0


def _check_quantile(q: float) -> None:
    if not 0.0 < q < 1.0:
        raise ValueError(f"the quantile must be in (0, 1), got {q}")


def _check_prefill(
    values_s: npt.ArrayLike, weights: npt.ArrayLike, what: str = "prefill"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A discrete distribution (``what``: prefill times or day loads) as read-only arrays.

    Values finite and >= 0, weights finite, >= 0 and summing to 1 (renormalised exactly).
    """
    values = np.array(values_s, dtype=np.float64, ndmin=1)
    probs = np.array(weights, dtype=np.float64, ndmin=1)
    if values.ndim != 1 or values.shape != probs.shape or values.size == 0:
        raise ValueError(f"{what} values and weights must be non-empty 1-D arrays of one length")
    if not (np.all(np.isfinite(values)) and np.all(values >= 0.0)):
        raise ValueError(f"{what} values must be finite and >= 0")
    if not (np.all(np.isfinite(probs)) and np.all(probs >= 0.0)):
        raise ValueError(f"{what} weights must be finite and >= 0")
    if abs(probs.sum() - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"{what} weights must sum to 1, got {probs.sum()}")
    probs = probs / probs.sum()
    values.setflags(write=False)
    probs.setflags(write=False)
    return values, probs


def ttft_quantile(
    q: float,
    c: int,
    a: float,
    mean_service_s: float,
    scv_service: float,
    prefill_values_s: npt.ArrayLike,
    prefill_weights: npt.ArrayLike,
) -> float:
    """The q-quantile (s) of TTFT = W + P, the queue wait plus the prefill time.

    P takes the values ``prefill_values_s`` (s) with probabilities ``prefill_weights`` (e.g.
    histogram bin centres and shares) and is taken independent of W, whose tail is `wait_tail`
    (Erlang C with the Allen-Cunneen decay rate theta). The quantile is the smallest x with
    ``P(W + P > x) <= 1 - q``, where
    ``P(W + P > x) = sum_j w_j [1{p_j > x} + 1{p_j <= x} C exp(-theta (x - p_j))]``,
    found by `scipy.optimize.brentq` on [0, max p + ln(C / (1 - q)) / theta] (within
    `QUANTILE_XTOL_S`; a root at an atom p_j is returned as p_j exactly). +inf when ``a >= c``
    (unstable).
    """
    _check_quantile(q)
    values, probs = _check_prefill(prefill_values_s, prefill_weights)
    theta = wait_decay_rate(c, a, mean_service_s, scv_service)
    if theta == 0.0:
        return math.inf
    waiting = erlang_c(c, a)

    def excess(x: float) -> float:
        reached = values <= x
        decay = np.exp(-theta * np.maximum(x - values, 0.0))
        tail = np.sum(probs * np.where(reached, waiting * decay, 1.0))
        return float(tail) - (1.0 - q)

    if excess(0.0) <= 0.0:
        return 0.0
    high = float(values.max())
    if waiting > 1.0 - q:
        high += math.log(waiting / (1.0 - q)) / theta
    while excess(high) > 0.0:  # only by rounding: each step divides the tail by e or more
        high += 1.0 / theta
    root = float(brentq(excess, 0.0, high, xtol=QUANTILE_XTOL_S))
    # a root at a jump of the tail is an atom of P: return the atom itself, not root +- xtol
    near = np.sort(values[np.abs(values - root) <= 2.0 * QUANTILE_XTOL_S])
    return next((float(p) for p in near if excess(float(p)) <= 0.0), root)


# --- SLO targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SloTarget:
    """A latency target: the ``quantile`` of ``metric`` must be at most ``bound_s`` seconds.

    ``metric`` is one of `METRICS`; ``quantile`` is a fraction in (0, 1) (p95 is 0.95).
    """

    metric: str
    quantile: float
    bound_s: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        _check_quantile(self.quantile)
        if not (math.isfinite(self.bound_s) and self.bound_s > 0.0):
            raise ValueError(f"the bound must be finite and > 0 s, got {self.bound_s}")

    @property
    def label(self) -> str:
        """The target as `parse_slo` reads it, e.g. ``ttft_p95<=1``."""
        return f"{self.metric}_p{100.0 * self.quantile:g}<={self.bound_s:g}"


def parse_slo(text: str) -> SloTarget:
    """Read a target such as ``"ttft_p95<=1.0"``, ``"tpot_p99 <= 0.08"`` or ``"e2e_p99.9<30"``.

    The form is ``<metric>_p<percentile> <= <bound in seconds>``: metric one of `METRICS`,
    percentile a number strictly between 0 and 100 (decimals allowed), bound finite and > 0.
    ``<`` is read as ``<=`` (the latencies are continuous). Anything else raises ValueError.
    """
    expected = (
        f"expected '<metric>_p<percentile> <= <seconds>', metric one of {', '.join(METRICS)}, "
        "percentile in (0, 100), seconds finite and > 0, e.g. 'ttft_p95<=1.0'"
    )
    match = _SLO_PATTERN.match(text)
    if match is None:
        raise ValueError(f"bad SLO target {text!r}: {expected}")
    try:
        bound_s = float(match["bound"])
        return SloTarget(match["metric"], float(match["pct"]) / 100.0, bound_s)
    except ValueError as error:
        raise ValueError(f"bad SLO target {text!r} ({error}): {expected}") from None


# --- sizing a pool --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PoolLoad:
    """The busy-hour load on one pool, and the shape of its replicas.

    The prefill arrays are stored read-only (the dataclass compares by identity, since numpy
    arrays have no single truth value).
    """

    arrival_rate_per_s: float
    """Poisson arrival rate of requests (1/s)."""
    mean_service_s: float
    """Mean time E[S] a request holds a slot (s)."""
    scv_service: float
    """Squared coefficient of variation of the slot holding time, Var[S] / E[S]^2."""
    prefill_values_s: npt.NDArray[np.float64] = field(repr=False)
    """Prefill times (s) of the discrete prefill distribution, e.g. histogram bin centres."""
    prefill_weights: npt.NDArray[np.float64] = field(repr=False)
    """Probabilities of ``prefill_values_s`` (sum to 1)."""
    slots_per_replica: int
    """Continuous-batching slots per replica."""
    gpus_per_replica: int
    """GPUs per replica."""
    tpot_s: float
    """Time per output token (s), taken constant for the pool in this model."""
    load_factors: npt.NDArray[np.float64] = field(default_factory=lambda: np.ones(1), repr=False)
    """The busy hour's load on each of the month's days relative to ``offered_load`` (mean 1
    under ``load_weights``): the quantiles are taken over the requests of every day, each day
    an M/G/c queue at its own load (a mixture), because weekdays run above the busy-hour mean
    and dominate the tail. One factor of 1: a single load."""
    load_weights: npt.NDArray[np.float64] = field(default_factory=lambda: np.ones(1), repr=False)
    """Each day's share of the busy-hour requests (sum to 1)."""

    def __post_init__(self) -> None:
        rate = self.arrival_rate_per_s
        if not (math.isfinite(rate) and rate >= 0.0):
            raise ValueError(f"arrival_rate_per_s must be finite and >= 0, got {rate}")
        if self.slots_per_replica < 1 or self.gpus_per_replica < 1:
            raise ValueError("slots_per_replica and gpus_per_replica must be >= 1")
        if not (math.isfinite(self.tpot_s) and self.tpot_s >= 0.0):
            raise ValueError(f"tpot_s must be finite and >= 0 s, got {self.tpot_s}")
        wait_decay_rate(1, 0.0, self.mean_service_s, self.scv_service)  # checks both
        values, probs = _check_prefill(self.prefill_values_s, self.prefill_weights)
        object.__setattr__(self, "prefill_values_s", values)
        object.__setattr__(self, "prefill_weights", probs)
        factors, shares = _check_prefill(self.load_factors, self.load_weights, "day load")
        object.__setattr__(self, "load_factors", factors)
        object.__setattr__(self, "load_weights", shares)

    @property
    def offered_load(self) -> float:
        """The offered load ``a = lambda E[S]`` (Erlangs): the mean number of busy slots."""
        return self.arrival_rate_per_s * self.mean_service_s


@dataclass(frozen=True)
class AnalyticSize:
    """The analytic answer of `smallest_replicas`."""

    replicas: int | None
    """Smallest replica count meeting every target it can compute; None if none does."""
    gpus: int | None
    """``replicas * gpus_per_replica``; None with ``replicas``."""
    offered_load_erlangs: float
    """The pool's offered load ``lambda E[S]`` (Erlangs)."""
    utilisation_at_answer: float | None
    """Slot utilisation ``a / (replicas * slots_per_replica)`` at the answer; None with it."""
    ignored_targets: tuple[str, ...]
    """Labels of the targets the model cannot compute (``e2e``), not used in the answer."""
    unmet_targets: tuple[str, ...]
    """When ``replicas`` is None: the targets not met (at ``max_replicas`` for wait and TTFT,
    at any size for TPOT); empty otherwise, and also when the only failure is that the pool is
    unstable (``a >= c``) even at ``max_replicas`` with no wait or TTFT target."""
    method: str
    """The approximation used (`METHOD`)."""


def metric_quantile(load: PoolLoad, target: SloTarget, replicas: int) -> float | None:
    """The model's value (s) of ``target``'s metric quantile with ``replicas`` replicas.

    ``wait``: `wait_quantile`; ``ttft``: `ttft_quantile`; ``tpot``: the pool's constant
    ``tpot_s`` (every quantile, any size); ``e2e``: None (not computable here). +inf when the
    pool is unstable (``a >= c``).
    """
    c = replicas * load.slots_per_replica
    a = load.offered_load
    if len(load.load_factors) > 1 and target.metric in ("wait", "ttft"):
        return _mixture_quantile(load, target, c)
    if target.metric == "wait":
        return wait_quantile(target.quantile, c, a, load.mean_service_s, load.scv_service)
    if target.metric == "ttft":
        return ttft_quantile(
            target.quantile,
            c,
            a,
            load.mean_service_s,
            load.scv_service,
            load.prefill_values_s,
            load.prefill_weights,
        )
    if target.metric == "tpot":
        return load.tpot_s
    return None


def _mixture_quantile(load: PoolLoad, target: SloTarget, c: int) -> float:
    """The target's quantile (s) over days at different loads: a mixture of M/G/c tails.

    ``P(X > x) = sum_d v_d P_d(X > x)``, day d at load ``a f_d`` with weight ``v_d``; for TTFT
    each day's tail is `ttft_quantile`'s (wait + prefill), for the wait `wait_tail`. A day at
    or above capacity has a tail of 1 (its queue grows through the hour); when such days hold
    at least ``1 - q`` of the requests the quantile is +inf. Solved by `brentq`.
    """
    q = target.quantile
    a = load.offered_load
    days = []
    for f, v in zip(load.load_factors, load.load_weights, strict=True):
        if v > 0.0:
            theta = wait_decay_rate(c, a * f, load.mean_service_s, load.scv_service)
            days.append((v, theta, erlang_c(c, a * f) if theta > 0.0 else 1.0))
    unstable = sum(v for v, theta, _ in days if theta == 0.0)
    if unstable >= 1.0 - q:
        return math.inf
    values, probs = load.prefill_values_s, load.prefill_weights
    if target.metric == "wait":
        values, probs = np.zeros(1), np.ones(1)

    def excess(x: float) -> float:
        reached = values <= x
        total = 0.0
        for v, theta, waiting in days:
            if theta == 0.0:
                total += v
                continue
            decay = waiting * np.exp(-theta * np.maximum(x - values, 0.0))
            total += v * float(np.sum(probs * np.where(reached, decay, 1.0)))
        return total - (1.0 - q)

    if excess(0.0) <= 0.0:
        return 0.0
    slowest = min(theta for _, theta, _ in days if theta > 0.0)
    high = float(values.max()) + 1.0 / slowest
    while excess(high) > 0.0:  # the tail falls at least as fast as the slowest stable day's
        high *= 2.0
    return float(brentq(excess, 0.0, high, xtol=QUANTILE_XTOL_S))


def _exceeds(load: PoolLoad, target: SloTarget, replicas: int) -> bool:
    value = metric_quantile(load, target, replicas)
    return value is not None and value > target.bound_s


def smallest_replicas(
    load: PoolLoad, targets: Sequence[SloTarget], max_replicas: int = MAX_REPLICAS
) -> AnalyticSize:
    """The smallest replica count n in [1, max_replicas] whose pool meets every target.

    A pool must be stable (``a < n * slots_per_replica``); wait and TTFT quantiles fall as n
    grows, so the search is monotone: doubling from the smallest stable n, then bisection.
    TPOT is constant per pool here, so a TPOT target is met at every n or at none (then the
    answer is None). ``e2e`` targets are not computable by this model and are listed in
    ``ignored_targets`` instead of being sized.
    """
    ignored = tuple(t.label for t in targets if t.metric not in ANALYTIC_METRICS)
    used = [t for t in targets if t.metric in ANALYTIC_METRICS]
    queue_targets = [t for t in used if t.metric != "tpot"]

    def unmet(n: int) -> tuple[str, ...]:
        return tuple(t.label for t in queue_targets if _exceeds(load, t, n))

    def answer(n: int | None, missed: tuple[str, ...] = ()) -> AnalyticSize:
        return AnalyticSize(
            replicas=n,
            gpus=None if n is None else n * load.gpus_per_replica,
            offered_load_erlangs=load.offered_load,
            utilisation_at_answer=(
                None if n is None else load.offered_load / (n * load.slots_per_replica)
            ),
            ignored_targets=ignored,
            unmet_targets=missed,
            method=METHOD,
        )

    slow = tuple(t.label for t in used if t.metric == "tpot" and load.tpot_s > t.bound_s)
    if slow:
        return answer(None, slow)
    low = max(1, math.floor(load.offered_load / load.slots_per_replica) + 1)  # smallest stable
    if low > max_replicas:
        return answer(None, tuple(t.label for t in queue_targets))
    missed = unmet(low)
    if not missed:
        return answer(low)
    high = low
    while missed:  # doubling; afterwards `low` fails and `high` meets
        if high == max_replicas:
            return answer(None, missed)
        low, high = high, min(2 * high, max_replicas)
        missed = unmet(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if not unmet(middle) else (middle, high)
    return answer(high)
