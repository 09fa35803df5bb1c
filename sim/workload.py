"""Demand: one day of requests for every active subscriber, generated as numpy arrays.

Per subscriber and day, sessions form a Poisson process whose rate is the
segment's sessions/day times the weekday weight, the subscriber's intensity
and engagement; session start times follow the segment's hour-of-day profile
(piecewise constant). Each session holds a geometric number of requests
(mean ``requests_per_session``) separated by exponential think times, which
makes arrivals clustered (burstier than Poisson) when sessions hold many
requests. Token lengths are lognormal per segment, rounded to whole tokens
(at least 1) and capped; the cached share of the input is the segment's
``cache_hit_share``. Requests a session pushes past midnight are carried to
the next day so that every day's batch is processed in time order. Token
lengths and models are drawn after the requests are placed and sorted in
time (they are independent of the arrival time), which saves reordering them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.agents import Population
from sim.build import World
from sim.defaults import SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.rng import Streams

FIELDS = ("t", "sub", "model", "input", "cached", "output")


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

    def take(self, idx: NDArray) -> Requests:
        """Rows ``idx`` (an index or mask array)."""
        return Requests(*(getattr(self, f)[idx] for f in FIELDS))

    @staticmethod
    def concat(a: Requests, b: Requests) -> Requests:
        """Rows of a then rows of b."""
        return Requests(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in FIELDS))

    @staticmethod
    def empty() -> Requests:
        """No rows."""
        f, i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return Requests(f, i, i, f, f, f)


def _hour_offsets(world: World) -> NDArray[np.float64]:
    cum = np.cumsum(world.seg.hour_weight, axis=1)
    cum = cum / cum[:, -1:]
    return (cum + np.arange(len(cum))[:, None]).ravel()


class DemandGenerator:
    """Draws each day's requests; keeps the requests carried past midnight."""

    def __init__(self, world: World, streams: Streams):
        self.w = world
        self.s = streams
        self.carry_t = np.zeros(0)
        self.carry_sub = np.zeros(0, dtype=np.int64)
        self._hour_cum = _hour_offsets(world)
        self._clustered = bool(np.any(world.seg.requests_per_session > 1.0))

    def day(self, pop: Population, day: int) -> Requests:
        """Requests arriving on ``day`` (including carried ones), sorted by time."""
        w, seg_p = self.w, self.w.seg
        ids = np.flatnonzero(pop.view("active"))
        seg = pop.seg[ids]
        weekday = (w.start_weekday + day) % 7
        rate = (
            seg_p.sessions_per_day[seg]
            * seg_p.weekday_weight[seg, weekday]
            * pop.intensity[ids]
            * pop.engagement[ids]
        )
        ra = self.s["arrivals"]
        n_sess = ra.poisson(rate)
        s_sub = np.repeat(ids, n_sess)
        s_seg = np.repeat(seg, n_sess)
        k = len(s_sub)
        u = ra.random(k)
        hour = np.searchsorted(self._hour_cum, s_seg + u, side="right") - 24 * s_seg
        start = day * SECONDS_PER_DAY + (hour + ra.random(k)) * SECONDS_PER_HOUR
        if self._clustered:
            n_req = ra.geometric(1.0 / seg_p.requests_per_session[s_seg])
            sess = np.repeat(np.arange(k), n_req)
            gaps = ra.exponential(1.0, len(sess)) * seg_p.think_time_s[s_seg[sess]]
            first = np.cumsum(n_req) - n_req
            gaps[first] = 0.0
            cs = np.cumsum(gaps)
            t = start[sess] + cs - np.repeat(cs[first], n_req)
            sub = s_sub[sess]
        else:
            t, sub = start, s_sub
        t = np.concatenate([self.carry_t, t])
        sub = np.concatenate([self.carry_sub, sub.astype(np.int64)])
        alive = pop.active[sub]
        if not alive.all():  # requests carried from yesterday by a subscriber who left today
            t, sub = t[alive], sub[alive]
        order = np.argsort(t)
        t, sub = t[order], sub[order]
        cut = int(np.searchsorted(t, (day + 1) * SECONDS_PER_DAY, side="left"))
        self.carry_t, self.carry_sub = t[cut:], sub[cut:]
        t, sub = t[:cut], sub[:cut]
        return self._materialise(pop, t, sub)

    def _materialise(
        self, pop: Population, t: NDArray[np.float64], sub: NDArray[np.int64]
    ) -> Requests:
        """Draw token lengths and models for requests already placed in time."""
        w, seg_p = self.w, self.w.seg
        n = len(t)
        rseg = pop.seg[sub]
        rt = self.s["tokens"]
        z = rt.standard_normal((2, n))
        inp = np.maximum(np.rint(np.exp(seg_p.in_mu[rseg] + seg_p.in_sigma[rseg] * z[0])), 1.0)
        out = np.maximum(np.rint(np.exp(seg_p.out_mu[rseg] + seg_p.out_sigma[rseg] * z[1])), 1.0)
        np.minimum(inp, seg_p.in_max[rseg], out=inp)
        np.minimum(out, seg_p.out_max[rseg], out=out)
        cached = np.rint(inp * seg_p.cache_hit[rseg])
        if len(w.model_names) > 1:
            cum = seg_p.model_cum[rseg, pop.plan[sub]]
            um = self.s["models"].random(n)
            model = (um[:, None] >= cum[:, :-1]).sum(axis=1).astype(np.int64)
        else:
            model = np.zeros(n, dtype=np.int64)
        return Requests(t, sub, model, inp, cached, out)
