"""Demand: one day of requests for every active subscriber.

Per subscriber and day, sessions form a Poisson process whose rate is the
segment's sessions/day times the weekday weight, the subscriber's intensity
and engagement; session start times follow the segment's hour-of-day profile
(piecewise constant). Each session holds a geometric number of requests
(mean ``requests_per_session``) separated by think times: exponential when
``think_time_cv`` is 1, Gamma with shape 1/cv^2 otherwise (a Gamma renewal
process within the session). Arrivals are clustered (burstier than Poisson)
when sessions hold many requests. Token lengths are lognormal or an empirical
quantile table per segment, rounded to whole tokens (at least 1) and capped;
the cached share of the input is the segment's ``cache_hit_share``. Requests
a session pushes past midnight are carried to the next day so that every
day's batch is processed in time order.

A segment with ``replay`` takes its requests from a real trace instead: each
day, the trace day's requests at their time of day, each given to one of the
segment's active subscribers drawn uniformly (stream ``replay``), with the
trace's token lengths.

A segment with ``activity_sigma`` > 0 modulates each subscriber's session rate
by an activity multiplier exp(sigma Z - sigma^2/2) (mean 1), constant over
10-minute windows, where Z is a stationary Ornstein-Uhlenbeck process per
subscriber with correlation time ``activity_timescale_s`` (stream ``activity``):
customers' own busy and quiet spells, which make an API platform's aggregate
10-minute rate far burstier than independent Poisson customers (ServeGen).
With ``arrival_cv`` other than 1, a subscriber's session starts form a Gamma
renewal process (gaps of that CV) in its own operational time, the integral of
its rate, instead of a Poisson process: ServeGen's customers are a little
burstier than Poisson within a window.

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

from sim.engine.population import Population
from sim.engine.resolution import ACTIVITY_WINDOW_S
from sim.engine.streams import Streams
from sim.units import HOURS_PER_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR
from sim.world.arrays import TOKENS_EMPIRICAL, TOKENS_LOGNORMAL, World

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
def _sessions(rng, ids, rate, seg, day0, hour_cum, per_session, think_s, think_cv):
    """Arrival times and subscribers of the day's requests (unsorted)."""
    n = ids.shape[0]
    counts = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        c = rng.poisson(rate[i]) if rate[i] > 0 else 0
        counts[i] = c
        k += c
    s_sub, s_seg, s_start, s_n = _session_arrays(k)
    j = 0
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
            s_n[j] = 1 if per_session[g] <= 1.0 else rng.geometric(1.0 / per_session[g])
            j += 1
    return _session_requests(rng, s_sub, s_seg, s_start, s_n, think_s, think_cv)


@nb.njit(cache=True)
def _session_requests(rng, s_sub, s_seg, s_start, s_n, think_s, think_cv):
    """Arrival times and subscribers of the requests of sessions (start, size) (unsorted)."""
    total = 0
    for j in range(s_n.shape[0]):
        total += s_n[j]
    t = np.empty(total, dtype=np.float64)
    sub = np.empty(total, dtype=np.int64)
    r = 0
    for j in range(s_n.shape[0]):
        x = s_start[j]
        g = s_seg[j]
        cv = think_cv[g]
        shape = 1.0 / (cv * cv)
        for q in range(s_n[j]):
            if q > 0:
                if cv == 1.0:  # the exponential draw, as before Gamma gaps existed
                    x += rng.exponential(think_s[g])
                else:
                    x += rng.gamma(shape, think_s[g] / shape)
            t[r] = x
            sub[r] = s_sub[j]
            r += 1
    return t, sub


@nb.njit(cache=True)
def _modulated_sessions(
    rng,
    rng_act,
    ids,
    rate,
    seg,
    day0,
    hour_weight,
    sigma,
    phi,
    z,
    arrival_cv,
    resid,
    per_session,
    think_s,
    think_cv,
):
    """:func:`_sessions` for subscribers with activity spells or non-Poisson session arrivals.

    The rate is set per ACTIVITY_WINDOW_S window: the day's rate x hour weight, times
    exp(sigma z - sigma^2/2) (mean 1) when ``sigma[g]`` > 0, where ``z[id]`` (stationary
    N(0, 1)) steps as an AR(1) with coefficient ``phi[g]`` once per window (stream
    ``rng_act``) and is kept for the next day. Session starts then form, in the subscriber's
    operational time (the integrated rate), a Poisson process when ``arrival_cv[g]`` is 1: the
    day's count is Poisson with the summed rate, each start in a window drawn in proportion to
    its rate, uniform within it (one Poisson draw per subscriber-day instead of 144); otherwise
    a renewal process with Gamma gaps of mean 1 and CV ``arrival_cv[g]``, mapped back to time
    through the piecewise-linear integrated rate. ``resid[id]`` keeps the operational time to
    the subscriber's next start across midnight (negative: not started yet, drawn from the
    renewal process's equilibrium, a uniform share of a length-biased Gamma gap).
    """
    per_hour = int(SECONDS_PER_HOUR / ACTIVITY_WINDOW_S)
    windows = HOURS_PER_DAY * per_hour
    cum = np.empty(windows)
    n = ids.shape[0]
    s_sub, s_seg, s_start, s_n = _session_arrays(16)
    k = 0
    for i in range(n):
        g = seg[i]
        sd = sigma[g]
        innov = np.sqrt(1.0 - phi[g] * phi[g])
        zi = z[ids[i]]
        base = rate[i] / windows
        total = 0.0
        for w in range(windows):
            lam = base * hour_weight[g, w // per_hour]
            if sd > 0:
                zi = phi[g] * zi + innov * rng_act.standard_normal()
                lam *= np.exp(sd * zi - 0.5 * sd * sd)
            total += lam
            cum[w] = total
        z[ids[i]] = zi
        cv = arrival_cv[g]
        poisson = cv == 1.0  # else a Gamma renewal of mean-1 gaps in operational time
        shape, scale = 1.0 / (cv * cv), cv * cv
        count = rng.poisson(total) if poisson and total > 0 else 0
        u = 0.0 if poisson else resid[ids[i]]
        if not poisson and u < 0:
            u = rng.random() * rng.gamma(shape + 1.0, scale)
        j = 0
        while (j < count) if poisson else (u < total):
            if poisson:  # a window drawn by its rate, a uniform point in it
                win = _window_at(cum, rng.random() * total)
                pos = rng.random()
            else:  # the point u of operational time, mapped back to time
                win = _window_at(cum, u)
                lo = cum[win - 1] if win > 0 else 0.0
                pos = (u - lo) / (cum[win] - lo)
                u += rng.gamma(shape, scale)
            if k == s_sub.shape[0]:
                s_sub, s_seg, s_start, s_n = _grown_sessions(s_sub, s_seg, s_start, s_n)
            s_sub[k] = ids[i]
            s_seg[k] = g
            s_start[k] = day0 + (win + pos) * ACTIVITY_WINDOW_S
            s_n[k] = 1 if per_session[g] <= 1.0 else rng.geometric(1.0 / per_session[g])
            k += 1
            j += 1
        if not poisson:
            resid[ids[i]] = u - total
    return _session_requests(rng, s_sub[:k], s_seg[:k], s_start[:k], s_n[:k], think_s, think_cv)


@nb.njit(cache=True)
def _window_at(cum, x):
    """Index of the window whose cumulative rate ``cum`` first exceeds ``x`` (0 <= x < cum[-1])."""
    return int(min(np.searchsorted(cum, x, side="right"), cum.shape[0] - 1))


@nb.njit(cache=True)
def _grown_sessions(s_sub, s_seg, s_start, s_n):
    """The session columns copied into columns twice as long."""
    k = s_sub.shape[0]
    b_sub, b_seg, b_start, b_n = _session_arrays(2 * k)
    b_sub[:k], b_seg[:k], b_start[:k], b_n[:k] = s_sub, s_seg, s_start, s_n
    return b_sub, b_seg, b_start, b_n


@nb.njit(cache=True)
def _session_arrays(k):
    """Empty session columns of length ``k``: subscriber, segment, start (s), requests."""
    return (
        np.empty(k, dtype=np.int64),
        np.empty(k, dtype=np.int64),
        np.empty(k, dtype=np.float64),
        np.empty(k, dtype=np.int64),
    )


@nb.njit(cache=True)
def _inverse_cdf(u, p, q, g, m):
    """Length at cumulative probability ``u`` of row ``g`` of a table (p, q) of ``m`` points."""
    lo = 0
    hi = m - 1
    while hi - lo > 1:  # p[g, lo] <= u < p[g, hi]
        mid = (lo + hi) // 2
        if p[g, mid] <= u:
            lo = mid
        else:
            hi = mid
    dp = p[g, hi] - p[g, lo]
    return q[g, lo] + (q[g, hi] - q[g, lo]) * ((u - p[g, lo]) / dp if dp > 0 else 0.0)


@nb.njit(cache=True)
def _tokens_lognormal(
    rng_tokens,
    rng_models,
    sub,
    sub_seg,
    sub_plan,
    in_mu,
    in_sigma,
    in_max,
    out_mu,
    out_sigma,
    out_max,
    cache_hit,
    model_cum,
):
    """:func:`_tokens_and_models` when every segment is lognormal and nothing is replayed.

    The same draws in the same order (a test checks equal outputs), without the
    per-request branches of the general kernel, which measured about 1.3-2x slower
    on TPD's lognormal-only workload.
    """
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


@nb.njit(cache=True)
def _tokens_and_models(
    rng_tokens,
    rng_models,
    sub,
    sub_seg,
    sub_plan,
    in_mu,
    in_sigma,
    in_max,
    out_mu,
    out_sigma,
    out_max,
    in_kind,
    out_kind,
    in_tp,
    in_tq,
    in_tn,
    out_tp,
    out_tq,
    out_tn,
    fixed_in,
    fixed_out,
    cache_hit,
    model_cum,
):
    """Token lengths, cached input and model of each request.

    Lengths are lognormal, empirical, or fixed by a replayed trace where ``fixed_in`` >= 0.
    """
    n = sub.shape[0]
    inp = np.empty(n)
    cached = np.empty(n)
    out = np.empty(n)
    model = np.zeros(n, dtype=np.int64)
    n_models = model_cum.shape[2]
    has_fixed = fixed_in.shape[0] > 0
    for i in range(n):
        g = sub_seg[sub[i]]
        if has_fixed and fixed_in[i] >= 0:
            x = fixed_in[i]
            y = fixed_out[i]
            inp[i] = x
            out[i] = y
        else:
            if in_kind[g] == TOKENS_EMPIRICAL:
                x = _inverse_cdf(rng_tokens.random(), in_tp, in_tq, g, in_tn[g])
            else:
                x = np.exp(in_mu[g] + in_sigma[g] * rng_tokens.standard_normal())
            x = min(max(np.rint(x), 1.0), in_max[g])
            if out_kind[g] == TOKENS_EMPIRICAL:
                y = _inverse_cdf(rng_tokens.random(), out_tp, out_tq, g, out_tn[g])
            else:
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
        self._replay_segments = [g for g, r in enumerate(world.seg.replay) if r is not None]
        sp = world.seg
        self._modulated = (sp.activity_sigma > 0) | (sp.arrival_cv != 1.0)
        self._phi = np.exp(-ACTIVITY_WINDOW_S / sp.activity_timescale_s)
        self._z = np.zeros(0)  # activity state per subscriber id (modulated segments only)
        self._resid = np.zeros(0)  # operational time to the next session start (renewal)
        self._lognormal_only = bool(
            np.all(world.seg.in_kind == TOKENS_LOGNORMAL)
            and np.all(world.seg.out_kind == TOKENS_LOGNORMAL)
        )

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
        if self._modulated.any():
            t, sub = self._sessions_modulated(pop, ids, seg, rate, day0)
        else:
            t, sub = _sessions(
                self.s["arrivals"],
                ids,
                rate,
                seg,
                day0,
                self._hour_cum,
                sp.requests_per_session,
                sp.think_time_s,
                sp.think_time_cv,
            )
        if len(self.carry_t):
            alive = pop.active[self.carry_sub]  # a subscriber who left today drops them
            t = np.concatenate([self.carry_t[alive], t])
            sub = np.concatenate([self.carry_sub[alive], sub])
        if self._replay_segments:
            t, sub, fixed_in, fixed_out = self._with_replay(t, sub, ids, seg, day, day0)
        else:
            t, sub = sort_by_time(t, sub, day0)
            fixed_in = fixed_out = np.zeros(0)
        cut = int(np.searchsorted(t, day0 + SECONDS_PER_DAY, side="left"))
        self.carry_t, self.carry_sub = t[cut:], sub[cut:]
        t, sub = t[:cut], sub[:cut]
        if len(fixed_in):
            fixed_in, fixed_out = fixed_in[:cut], fixed_out[:cut]
        if self._lognormal_only and not len(fixed_in):
            inp, cached, out, model = _tokens_lognormal(
                self.s["tokens"],
                self.s["models"],
                sub,
                pop.seg,
                pop.plan,
                sp.in_mu,
                sp.in_sigma,
                sp.in_max,
                sp.out_mu,
                sp.out_sigma,
                sp.out_max,
                sp.cache_hit,
                sp.model_cum,
            )
        else:
            inp, cached, out, model = _tokens_and_models(
                self.s["tokens"],
                self.s["models"],
                sub,
                pop.seg,
                pop.plan,
                sp.in_mu,
                sp.in_sigma,
                sp.in_max,
                sp.out_mu,
                sp.out_sigma,
                sp.out_max,
                sp.in_kind,
                sp.out_kind,
                sp.in_table_p,
                sp.in_table_q,
                sp.in_table_n,
                sp.out_table_p,
                sp.out_table_q,
                sp.out_table_n,
                fixed_in,
                fixed_out,
                sp.cache_hit,
                sp.model_cum,
            )
        return Requests(t, sub, model, inp, cached, out)

    def _sessions_modulated(
        self,
        pop: Population,
        ids: NDArray[np.int64],
        seg: NDArray[np.int64],
        rate: NDArray[np.float64],
        day0: float,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The day's requests when some segments have activity spells or renewal starts (unsorted).

        Other subscribers draw as in :func:`_sessions`, then these; a subscriber's activity
        state starts from the stationary N(0, 1), and its renewal clock from equilibrium.
        """
        sp = self.w.seg
        if len(self._z) < pop.n:
            fresh = self.s["activity"].standard_normal(pop.n - len(self._z))
            self._z = np.concatenate([self._z, fresh])
            self._resid = np.concatenate([self._resid, np.full(len(fresh), -1.0)])
        mod = self._modulated[seg]
        t0, sub0 = _sessions(
            self.s["arrivals"],
            ids[~mod],
            rate[~mod],
            seg[~mod],
            day0,
            self._hour_cum,
            sp.requests_per_session,
            sp.think_time_s,
            sp.think_time_cv,
        )
        t1, sub1 = _modulated_sessions(
            self.s["arrivals"],
            self.s["activity"],
            ids[mod],
            rate[mod],
            seg[mod],
            day0,
            sp.hour_weight,
            sp.activity_sigma,
            self._phi,
            self._z,
            sp.arrival_cv,
            self._resid,
            sp.requests_per_session,
            sp.think_time_s,
            sp.think_time_cv,
        )
        return np.concatenate([t0, t1]), np.concatenate([sub0, sub1])

    def _with_replay(
        self,
        t: NDArray[np.float64],
        sub: NDArray[np.int64],
        ids: NDArray[np.int64],
        seg: NDArray[np.int64],
        day: int,
        day0: float,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """Add the replayed trace requests of ``day`` and sort all by time (ties by subscriber).

        Returns times, subscribers, and the fixed input/output lengths (-1: drawn later).
        """
        parts_t, parts_sub = [t], [sub]
        parts_in, parts_out = [np.full(len(t), -1.0)], [np.full(len(t), -1.0)]
        rng = self.s["replay"]
        for g in self._replay_segments:
            tr = self.w.seg.replay[g]
            assert tr is not None
            members = ids[seg == g]
            rows = tr.day(day)
            n = rows.stop - rows.start
            if len(members) == 0 or n == 0:
                continue  # nobody to send them: the day's trace requests are not made
            parts_sub.append(members[rng.integers(0, len(members), size=n)])
            parts_t.append(day0 + tr.tod[rows])
            parts_in.append(tr.input[rows])
            parts_out.append(tr.output[rows])
        t_all, sub_all = np.concatenate(parts_t), np.concatenate(parts_sub)
        fin, fout = np.concatenate(parts_in), np.concatenate(parts_out)
        ticks = np.rint((t_all - day0) / TIME_RESOLUTION_S)
        order = np.lexsort((sub_all, ticks))
        t_out = ticks[order] * TIME_RESOLUTION_S + day0
        return t_out, sub_all[order], fin[order], fout[order]
