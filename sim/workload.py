"""Demand: one day of requests for every active subscriber.

Per subscriber and day, sessions form a Poisson process whose rate is the
segment's sessions/day times the weekday weight, the subscriber's intensity
and engagement; session start times follow the segment's hour-of-day profile
(piecewise constant). Each session holds a geometric number of requests
(mean ``requests_per_session``) separated by exponential think times, which
makes arrivals clustered (burstier than Poisson) when sessions hold many
requests. Token lengths are lognormal per segment, rounded to whole tokens
(at least 1) and capped; the cached share of the input is the segment's
``cache_hit_share``. Requests a session pushes past midnight are carried to
the next day so that every day's batch is processed in time order.

The loops are compiled (numba) and draw from the run's named numpy
Generators, so runs stay reproducible. Arrival times are kept to the
microsecond: (time, subscriber) pairs are packed into one 64-bit key whose
SIMD sort replaces an argsort and two random gathers. Token lengths and models
are drawn after the requests are sorted (they do not depend on the time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
from numpy.typing import NDArray

from sim.agents import Population
from sim.build import World
from sim.defaults import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.rng import Streams

TIME_RESOLUTION_S = 1e-6
"""Arrival times are rounded to this (s) when packed into sort keys."""
SUB_BITS = 25
"""Low bits of a sort key that hold the subscriber id (up to 33.5 million subscribers)."""
TIME_LIMIT = 2 ** (63 - SUB_BITS)
"""Time since the day's start must stay below this many TIME_RESOLUTION_S units (3.18 days);
larger runs (more subscribers, longer spill-over) fall back to a lexsort."""


@dataclass
class Requests:
    """A batch of requests (one day), columns of equal length, sorted by arrival time ``t``."""

    t: NDArray[np.float64]  # arrival (s since the start of the run)
    sub: NDArray[np.int64]  # subscriber id
    model: NDArray[np.int64]  # catalog model index
    input: NDArray[np.float64]  # input tokens
    cached: NDArray[np.float64]  # input tokens served from the prefix cache
    output: NDArray[np.float64]  # output tokens

    def __len__(self) -> int:
        return len(self.t)


@nb.njit(cache=True)
def _sessions(rng, ids, rate, seg, day0, hour_cum, per_session, think_s):
    """Arrival times and subscribers of the day's requests (unsorted)."""
    n = ids.shape[0]
    counts = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        c = rng.poisson(rate[i]) if rate[i] > 0 else 0
        counts[i] = c
        k += c
    s_sub = np.empty(k, dtype=np.int64)
    s_seg = np.empty(k, dtype=np.int64)
    s_start = np.empty(k, dtype=np.float64)
    s_n = np.empty(k, dtype=np.int64)
    j = 0
    total = 0
    for i in range(n):
        g = seg[i]
        for _ in range(counts[i]):
            u = rng.random()
            h = 0
            while h < HOURS_PER_DAY - 1 and hour_cum[g, h] <= u:
                h += 1
            s_sub[j] = ids[i]
            s_seg[j] = g
            s_start[j] = day0 + (h + rng.random()) * SECONDS_PER_HOUR
            m = 1 if per_session[g] <= 1.0 else rng.geometric(1.0 / per_session[g])
            s_n[j] = m
            total += m
            j += 1
    t = np.empty(total, dtype=np.float64)
    sub = np.empty(total, dtype=np.int64)
    r = 0
    for j in range(k):
        x = s_start[j]
        for q in range(s_n[j]):
            if q > 0:
                x += rng.exponential(think_s[s_seg[j]])
            t[r] = x
            sub[r] = s_sub[j]
            r += 1
    return t, sub


@nb.njit(cache=True)
def _tokens_and_models(
    rng_tokens, rng_models, sub, sub_seg, sub_plan, in_mu, in_sigma, in_max, out_mu, out_sigma,
    out_max, cache_hit, model_cum,
):  # fmt: skip
    """Lognormal token lengths, cached input and model of each request."""
    n = sub.shape[0]
    inp = np.empty(n)
    cached = np.empty(n)
    out = np.empty(n)
    model = np.zeros(n, dtype=np.int64)
    n_models = model_cum.shape[2]
    for i in range(n):
        g = sub_seg[sub[i]]
        x = np.exp(in_mu[g] + in_sigma[g] * rng_tokens.standard_normal())
        x = min(max(np.rint(x), 1.0), in_max[g])
        y = np.exp(out_mu[g] + out_sigma[g] * rng_tokens.standard_normal())
        inp[i] = x
        out[i] = min(max(np.rint(y), 1.0), out_max[g])
        cached[i] = np.rint(x * cache_hit[g])
        if n_models > 1:
            p = sub_plan[sub[i]]
            u = rng_models.random()
            m = 0
            while m < n_models - 1 and u >= model_cum[g, p, m]:
                m += 1
            model[i] = m
    return inp, cached, out, model


def sort_by_time(
    t: NDArray[np.float64], sub: NDArray[np.int64], day0: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Sort requests by time (to the microsecond), ties by subscriber, via packed 64-bit keys."""
    ticks = np.rint((t - day0) / TIME_RESOLUTION_S)
    if len(t) == 0 or ticks.min() < 0 or ticks.max() >= TIME_LIMIT or sub.max() >= 2**SUB_BITS:
        order = np.lexsort((sub, ticks))
        return t[order], sub[order]
    key = (ticks.astype(np.uint64) << np.uint64(SUB_BITS)) | sub.astype(np.uint64)
    key.sort()
    sub_out = (key & np.uint64(2**SUB_BITS - 1)).astype(np.int64)
    t_out = (key >> np.uint64(SUB_BITS)).astype(np.float64) * TIME_RESOLUTION_S + day0
    return t_out, sub_out


class DemandGenerator:
    """Draws each day's requests; keeps the requests carried past midnight."""

    def __init__(self, world: World, streams: Streams):
        self.w = world
        self.s = streams
        self.carry_t = np.zeros(0)
        self.carry_sub = np.zeros(0, dtype=np.int64)
        cum = np.cumsum(world.seg.hour_weight, axis=1)
        self._hour_cum = cum / cum[:, -1:]

    def day(self, pop: Population, day: int) -> Requests:
        """Requests arriving on ``day`` (including carried ones), sorted by time."""
        w, sp = self.w, self.w.seg
        ids = np.flatnonzero(pop.view("active"))
        seg = pop.seg[ids]
        weekday = (w.start_weekday + day) % 7
        rate = (
            sp.sessions_per_day[seg]
            * sp.weekday_weight[seg, weekday]
            * pop.intensity[ids]
            * pop.engagement[ids]
        )
        day0 = day * SECONDS_PER_DAY
        t, sub = _sessions(
            self.s["arrivals"], ids, rate, seg, day0, self._hour_cum, sp.requests_per_session,
            sp.think_time_s,
        )  # fmt: skip
        if len(self.carry_t):
            alive = pop.active[self.carry_sub]  # a subscriber who left today drops them
            t = np.concatenate([self.carry_t[alive], t])
            sub = np.concatenate([self.carry_sub[alive], sub])
        t, sub = sort_by_time(t, sub, day0)
        cut = int(np.searchsorted(t, day0 + SECONDS_PER_DAY, side="left"))
        self.carry_t, self.carry_sub = t[cut:], sub[cut:]
        t, sub = t[:cut], sub[:cut]
        inp, cached, out, model = _tokens_and_models(
            self.s["tokens"], self.s["models"], sub, pop.seg, pop.plan, sp.in_mu, sp.in_sigma,
            sp.in_max, sp.out_mu, sp.out_sigma, sp.out_max, sp.cache_hit, sp.model_cum,
        )  # fmt: skip
        return Requests(t, sub, model, inp, cached, out)
