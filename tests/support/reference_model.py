"""A plain, per-request SimPy reference model of tokensim, to validate the fast engine against.

It implements the semantics of ``docs/model.md`` the slow and obvious way, with no
vectorisation and no compiled code:

* one SimPy process per subscriber: at every midnight it renews the billing month when the
  anniversary is due, draws the day's sessions (Poisson, weekday weight x intensity x
  engagement), places each session at an hour of the hour profile, gives it a geometric number
  of requests separated by exponential think times, and releases each request at its arrival
  time (requests pushed past midnight simply stay pending; past the horizon they are dropped);
* one SimPy process per request: it draws the token lengths (lognormal, rounded, capped; cached
  share rounded) and the model (preference renormalised over the plan's models) at its arrival,
  applies the plan (quota charge, the crossing request passes, then cut-off / throttle on the
  slow lane / pay-as-you-go), and queues on its pool;
* one ``simpy.PriorityResource`` per pool with ``slots`` capacity: priority = the dense rank of
  the plan's SLA class, the slow lane ranks last; FIFO within a rank; non-preemptive; a request
  holds its slot for ``uncached * occ_in + output * occ_out`` seconds.

Parameters are read from the compiled :class:`sim.world.arrays.World` (so units and defaults cannot
drift), but none of the engine's machinery is used: no ``sim.engine.demand``,
``sim.engine.admission``, ``sim.engine.accounting``, ``sim.engine.lifecycle`` or
``sim.engine.billing``. Plan choice for segments offered several
plans is the one exception: it calls :func:`sim.engine.choice.choose_plans` (a plain function).

Out of scope, refused with ``NotImplementedError`` rather than silently mis-modelled: top-up
and downgrade rules, concurrency limits, procurement schedules that change the slots, and any
world in which the population could change (acquisition, churn, plan switching). For the
comparison, scenarios switch acquisition off and set the churn intercepts very negative so that
both models keep the same subscribers; this model checks that churn is then negligible.

Its randomness comes from its own ``numpy`` Generator: it reproduces the engine's
distributions, not its random numbers.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.engine.choice import choose_plans
from sim.engine.churn import PRICE_VALUE_LOG_CAP
from sim.world.arrays import World
from sim.world.rules import RULE_CUTOFF, RULE_PAYG, RULE_THROTTLE_SLOW

DAY = 86_400.0
HOUR = 3_600.0
TOKEN_FIELDS = ("in_mu", "in_sigma", "in_max", "out_mu", "out_sigma", "out_max", "cache_hit")
"""Token-length parameters the request process reads (from sim.world.arrays.Segments)."""
PLAN_FIELDS = (
    "rule",
    "gap_s",
    "deprioritise",
    "priority",
    "sla_class",
    "quota_in_requests",
    "model_weight",
    "w_miss",
    "w_hit",
    "w_out",
)
"""Plan parameters the request process reads (from sim.world.arrays.Plans)."""
MAX_CHURN_PROBABILITY = 1e-4
"""A world is accepted only if no renewal can churn with more than this probability."""


@dataclass(frozen=True)
class InitialPopulation:
    """Subscribers present at t=0 (arrays of equal length), to impose instead of drawing them."""

    seg: np.ndarray
    plan: np.ndarray
    intensity: np.ndarray
    phase: np.ndarray  # days the current billing month had run at t=0 (0..days_per_month-1)


class Draws:
    """Scalar random draws from one numpy Generator, generated in blocks.

    Calling a Generator for one number at a time costs microseconds; the reference model needs
    a few per request, so uniforms and standard normals are drawn 16k at a time.
    """

    BLOCK = 1 << 14

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._u: list[float] = []
        self._z: list[float] = []

    def uniform(self) -> float:
        """U(0, 1)."""
        if not self._u:
            self._u = self.rng.random(self.BLOCK).tolist()
        return self._u.pop()

    def normal(self) -> float:
        """N(0, 1)."""
        if not self._z:
            self._z = self.rng.standard_normal(self.BLOCK).tolist()
        return self._z.pop()

    def exponential(self, mean: float) -> float:
        """Exponential with the given mean."""
        return -mean * math.log(1.0 - self.uniform())


@dataclass
class Subscriber:
    """One subscriber's persistent attributes and the state of its current billing month."""

    seg: int
    plan: int
    intensity: float
    engagement: float
    renew_day: int  # next billing anniversary (day index)
    usage: float = 0.0
    quota_eff: float = 0.0
    last_adm: float = -math.inf
    exhausted: bool = False
    over_units: float = 0.0


@dataclass
class Totals:
    """What a reference run counts (whole horizon; waits by pool and class)."""

    n_pools: int
    n_classes: int  # SLA classes plus the throttled class (last)
    requests: int = 0
    served: int = 0
    throttled: int = 0
    refused_quota: int = 0
    refused_throttle: int = 0
    tokens_served: float = 0.0
    exhausted: int = 0  # billing months in which the quota was crossed
    submonths: int = 0  # billing months started (initial + renewals)
    revenue_overage: float = 0.0
    wait_sum: np.ndarray = field(init=False)  # [pool, class]
    wait_n: np.ndarray = field(init=False)  # [pool, class]
    busy_s: np.ndarray = field(init=False)  # [pool] slot-seconds inside the horizon
    capacity_s: np.ndarray = field(init=False)  # [pool] slot-seconds available

    def __post_init__(self) -> None:
        self.wait_sum = np.zeros((self.n_pools, self.n_classes))
        self.wait_n = np.zeros((self.n_pools, self.n_classes))
        self.busy_s = np.zeros(self.n_pools)
        self.capacity_s = np.zeros(self.n_pools)


class ReferenceModel:
    """One replication of a world, simulated request by request with SimPy."""

    def __init__(self, world: World, seed: int, population: InitialPopulation | None = None):
        _check_supported(world)
        self.w = world
        self.rng = np.random.default_rng(seed)
        self.draw = Draws(self.rng)
        self.env = simpy.Environment()
        self.horizon_s = world.horizon_days * DAY
        slots = world.pool.slots_by_month[0]
        self.pools = [simpy.PriorityResource(self.env, capacity=int(c)) for c in slots]
        self.lowest = world.cls.n_prio - 1
        self.throttled_class = len(world.cls.names)
        # parameters as plain Python numbers (numpy scalars are slow one at a time)
        sp, pl, po = world.seg, world.plan, world.pool
        hour_cum = np.cumsum(sp.hour_weight, axis=1)
        self.hour_cum = (hour_cum / hour_cum[:, -1:]).tolist()  # ends at exactly 1
        self.tokens = list(zip(*(getattr(sp, f).tolist() for f in TOKEN_FIELDS), strict=True))
        self.model_cum = sp.model_cum[:, :, :-1].tolist()  # [seg][plan]: all but the last edge
        self.plans = [
            dict(zip(PLAN_FIELDS, values, strict=True))
            for values in zip(*(getattr(pl, f).tolist() for f in PLAN_FIELDS), strict=True)
        ]
        self.model_pool = po.model_pool.tolist()
        self.occ = list(zip(po.occ_in.tolist(), po.occ_out.tolist(), strict=True))
        self.tot = Totals(len(slots), len(world.cls.names) + 1)
        self.tot.capacity_s[:] = slots * self.horizon_s
        self.subs = self._initial_population(population)

    # ------------------------------------------------------------------ population

    def _initial_population(self, given: InitialPopulation | None) -> list[Subscriber]:
        """Subscribers at t=0: Gamma intensity (mean 1), engagement at target, staggered months.

        The current billing month of each started ``phase`` days before t=0 (phase uniform on
        0..days_per_month-1) and was paid before the run; its anniversary is day
        ``days_per_month - phase``. Segments offered several plans choose by the logit.
        ``given`` replaces these draws (to compare both models on the same subscribers).
        """
        w, sp, rng = self.w, self.w.seg, self.rng
        if given is None:
            seg = np.repeat(np.arange(len(sp.names)), sp.initial)
            phase = rng.integers(0, w.days_per_month, len(seg))
            shape = sp.intensity_shape[seg]
            intensity = rng.gamma(shape, 1.0 / shape)
            plan = choose_plans(w, seg, intensity * sp.eng_target[seg], rng)
        else:
            seg, plan, intensity, phase = given.seg, given.plan, given.intensity, given.phase
        engagement = sp.eng_target[seg]
        subs = [
            Subscriber(
                seg=int(seg[i]),
                plan=int(plan[i]),
                intensity=float(intensity[i]),
                engagement=float(engagement[i]),
                renew_day=int(w.days_per_month - phase[i]),
                quota_eff=float(w.plan.quota[plan[i]]),
            )
            for i in range(len(seg))
        ]
        self.tot.submonths += len(subs)
        return subs

    def _close_month(self, s: Subscriber) -> None:
        """Book the closing month: exhaustion, and pay-as-you-go overage in whole blocks."""
        pl = self.w.plan
        self.tot.exhausted += int(s.exhausted)
        if pl.rule[s.plan] == RULE_PAYG and s.over_units > 0:
            block = float(pl.payg_block_units[s.plan])
            blocks = math.ceil(s.over_units / block - 1e-9)
            self.tot.revenue_overage += blocks * block * float(pl.payg_price_per_unit[s.plan])

    def _renew(self, s: Subscriber, day: int) -> None:
        """Billing anniversary: close the month, move engagement, reset usage, roll over."""
        w, sp, pl = self.w, self.w.seg, self.w.plan
        self._close_month(s)
        tgt = float(sp.eng_target[s.seg])
        e = tgt - (tgt - s.engagement) * math.exp(-1.0 / sp.eng_tau_months[s.seg])
        vol = float(sp.eng_volatility[s.seg])
        if vol > 0:
            e *= math.exp(vol * self.draw.normal() - vol**2 / 2)
        s.engagement = e
        unused = max(s.quota_eff - s.usage, 0.0)
        carry = min(unused * pl.rollover_share[s.plan], pl.rollover_cap[s.plan])
        s.quota_eff = float(pl.quota[s.plan] + carry)
        s.usage, s.last_adm, s.exhausted, s.over_units = 0.0, -math.inf, False, 0.0
        s.renew_day = day + w.days_per_month
        self.tot.submonths += 1

    # ------------------------------------------------------------------ processes

    def _day_arrivals(self, s: Subscriber, day: int) -> list[float]:
        """Arrival times of the requests of the sessions ``s`` starts on ``day``."""
        sp, d = self.w.seg, self.draw
        g = s.seg
        weekday = (self.w.start_weekday + day) % 7
        rate = sp.sessions_per_day[g] * sp.weekday_weight[g, weekday] * s.intensity * s.engagement
        think, p_end = float(sp.think_time_s[g]), 1.0 / sp.requests_per_session[g]
        times: list[float] = []
        for _ in range(self.rng.poisson(rate)):
            hour = bisect.bisect_right(self.hour_cum[g], d.uniform())
            t = day * DAY + (hour + d.uniform()) * HOUR
            for k in range(int(self.rng.geometric(p_end))):
                if k > 0:
                    t += d.exponential(think)
                times.append(t)
        return times

    def subscriber(self, s: Subscriber):
        """Each midnight: renew if due, draw the day's sessions, release requests in time order."""
        env, pending = self.env, []
        for day in range(self.w.horizon_days):
            if day == s.renew_day:
                self._renew(s, day)
            for t in self._day_arrivals(s, day):
                heapq.heappush(pending, t)
            midnight = (day + 1) * DAY
            while pending and pending[0] < midnight:
                t = heapq.heappop(pending)
                yield env.timeout(t - env.now)
                env.process(self.request(s))
            yield env.timeout(midnight - env.now)
        self._close_month(s)  # the month still open at the horizon

    def request(self, s: Subscriber):
        """One request: draw its size and model, apply the plan, queue, hold a slot."""
        d, tot = self.draw, self.tot
        now, g, pl = self.env.now, s.seg, self.plans[s.plan]
        in_mu, in_sigma, in_max, out_mu, out_sigma, out_max, cache_hit = self.tokens[g]
        # lognormal lengths rounded to whole tokens, at least 1, at most the cap
        inp = min(max(round(math.exp(in_mu + in_sigma * d.normal())), 1), in_max)
        out = min(max(round(math.exp(out_mu + out_sigma * d.normal())), 1), out_max)
        cached = round(inp * cache_hit)
        uncached = inp - cached
        model = bisect.bisect_right(self.model_cum[g][s.plan], d.uniform())
        tot.requests += 1

        # the plan: quota charge, exhaustion rule
        weight = pl["model_weight"][model]
        if pl["quota_in_requests"]:
            charge = weight
        else:
            units = pl["w_miss"] * uncached + pl["w_hit"] * cached + pl["w_out"] * out
            charge = weight * units
        prio, cls, throttled = pl["priority"], pl["sla_class"], False
        if s.usage >= s.quota_eff:
            rule = pl["rule"]
            if rule == RULE_CUTOFF:
                tot.refused_quota += 1
                return
            if rule == RULE_THROTTLE_SLOW:
                if now - s.last_adm < pl["gap_s"]:
                    tot.refused_throttle += 1
                    return
                throttled, cls = True, self.throttled_class
                if pl["deprioritise"]:
                    prio = self.lowest
            # RULE_PAYG: admitted; the units over the quota are billed at the month's close
        q = s.quota_eff
        if s.usage < q <= s.usage + charge:  # the crossing request passes, charged in full
            s.exhausted = True
        s.over_units += max(0.0, s.usage + charge - q) - max(0.0, s.usage - q)
        s.usage += charge
        s.last_adm = now
        tot.served += 1
        tot.throttled += throttled
        tot.tokens_served += inp + out

        # the pool: wait for a slot (priority, then FIFO), hold it for the occupancy
        pool = self.model_pool[model]
        occ_in, occ_out = self.occ[pool]
        hold = uncached * occ_in + out * occ_out
        with self.pools[pool].request(priority=prio) as slot:
            yield slot
            start = self.env.now
            tot.wait_sum[pool, cls] += start - now
            tot.wait_n[pool, cls] += 1
            tot.busy_s[pool] += max(0.0, min(start + hold, self.horizon_s) - start)
            yield self.env.timeout(hold)

    # ------------------------------------------------------------------ run

    def run(self) -> Totals:
        """Simulate the horizon; admitted requests still queued at the horizon are served."""
        for s in self.subs:
            self.env.process(self.subscriber(s))
        self.env.run()
        return self.tot


def _check_supported(world: World) -> None:
    """Refuse worlds that use what this model does not implement (see the module docstring)."""
    pl, sp, ch = world.plan, world.seg, world.churn
    rules = {RULE_CUTOFF, RULE_THROTTLE_SLOW, RULE_PAYG}
    if not set(pl.rule.tolist()) <= rules:
        raise NotImplementedError("reference model: only cutoff, throttle slow_lane and payg")
    if np.any(pl.concurrency < np.iinfo(np.int64).max // 4):
        raise NotImplementedError("reference model: no concurrency limits")
    if np.any(world.pool.slots_by_month != world.pool.slots_by_month[0]):
        raise NotImplementedError("reference model: slots must not change over the horizon")
    if np.any(world.pool.slots_by_month[0] == 0):
        raise NotImplementedError("reference model: every pool needs a working slot")
    if np.any(sp.acq_bass & (sp.acq_p + sp.acq_q > 0) & (sp.acq_market > 0)) or np.any(
        ~sp.acq_bass & (sp.acq_per_month > 0)
    ):
        raise NotImplementedError("reference model: no acquisition (fixed population)")
    # the largest logit any renewal can reach: every penalty at its worst
    worst = (
        sp.churn_intercept.max()
        + abs(ch.price_value) * PRICE_VALUE_LOG_CAP
        + sum(max(v, 0.0) for v in (ch.exhausted, ch.refused, ch.throttled, ch.slo_miss, ch.unused))
        + max(ch.tenure, 0.0) * math.log1p(world.horizon_months + 1)
    )
    if 1.0 / (1.0 + math.exp(-worst)) > MAX_CHURN_PROBABILITY:
        raise NotImplementedError("reference model: churn must be negligible (intercept ~ -20)")
    switching = ch.upgrade_probability > 0 or ch.downgrade_probability > 0
    if switching and any(len(lad) > 1 for lad in sp.ladder):
        raise NotImplementedError("reference model: no plan switching")


def run_reference(world: World, seed: int, population: InitialPopulation | None = None) -> Totals:
    """Run one reference replication of ``world`` (on ``population`` when given)."""
    return ReferenceModel(world, seed, population).run()
