"""``tokensim explain``: what each package buys each segment, checked against hand computations.

The hand computations use scipy.stats' lognormal and Gamma laws and numerical integration
(``quad``), not the closed forms of sim.pricing, so a wrong moment, cap, weight, variance or
price in the code shows up here. One engine run checks that the model's month is the
simulated one; directional checks say that the numbers move the way a pricing team expects;
the command refuses bad input with exit 2 and writes nothing.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import integrate, optimize, stats
from support.browser_check import check_pages
from support.scenarios import small_dict

from sim.cli import main
from sim.pricing.explain import DOCUMENT_INPUT_QUANTILE, explain
from sim.pricing.explain_text import explanation_dict
from sim.pricing.explain_types import Explanation, PlanForSegment, UnknownPlanError
from sim.pricing.monthly_use import engagement_cv2
from sim.scenario.loading import load_scenario, validate_data

DAYS = 30
SESSIONS, PER_SESSION = 2.0, 3.0  # SMALL's chat segment
SHAPE = 2.0  # INTENSITY_SHAPE, the schema default SMALL uses
IN_MEDIAN, IN_SIGMA, IN_CAP = 800.0, 1.0, 32768.0
OUT_MEDIAN, OUT_SIGMA, OUT_CAP = 150.0, 0.8, 4096.0
HIT = 0.3
PREF = {"big": 0.6, "small": 0.4}
PRICES = {"big": (2.0, 0.5, 8.0), "small": (1.0, 0.25, 4.0)}  # miss, hit, output per 1M
LITE_Q, LITE_FEE = 400_000.0, 9.9
PRO_Q, PRO_FEE, PRO_PAYG = 2_000_000.0, 39.9, 4.0
PRO_WEIGHT = {"big": 2.0, "small": 1.0}


def _pair(ex: Explanation, plan: str, segment: str) -> PlanForSegment:
    return next(x for x in ex.pairs if x.plan == plan and x.segment == segment)


def _capped_moment(median: float, sigma: float, cap: float, n: int) -> float:
    """E[min(X, cap)^n] of a lognormal by numerical integration."""
    law = stats.lognorm(sigma, scale=median)
    below = integrate.quad(lambda x: x**n * law.pdf(x), 0, cap, limit=200, epsrel=1e-12)[0]
    return below + cap**n * law.sf(cap)


@pytest.fixture(scope="module")
def small_explained() -> Explanation:
    return explain(validate_data(small_dict()))


@dataclass(frozen=True)
class Hand:
    """SMALL's chat segment by hand: request sizes (tokens) and list price (CNY a request)."""

    e_in: float
    e_in2: float
    e_out: float
    e_out2: float
    doc_in: float

    @property
    def tokens(self) -> float:
        """E[in + out] (tokens)."""
        return self.e_in + self.e_out

    @property
    def tokens2(self) -> float:
        """E[(in + out)^2] (tokens^2), the two lengths drawn independently."""
        return self.e_in2 + 2 * self.e_in * self.e_out + self.e_out2

    @property
    def list_price(self) -> float:
        """Mean price of one request at the catalog's list prices (CNY)."""
        per_model = {
            m: (1 - HIT) * miss * self.e_in + HIT * hit * self.e_in + out * self.e_out
            for m, (miss, hit, out) in PRICES.items()
        }
        return sum(PREF[m] * per_model[m] for m in PREF) / 1e6

    @staticmethod
    def weight(weights: dict[str, float], power: int = 1) -> float:
        """E[w^power] of the quota weight over chat's model mix."""
        return sum(PREF[m] * weights[m] ** power for m in PREF)


@functools.cache
def hand() -> Hand:
    """The hand computation, by quad on scipy's lognormal (computed once)."""
    return Hand(
        e_in=_capped_moment(IN_MEDIAN, IN_SIGMA, IN_CAP, 1),
        e_in2=_capped_moment(IN_MEDIAN, IN_SIGMA, IN_CAP, 2),
        e_out=_capped_moment(OUT_MEDIAN, OUT_SIGMA, OUT_CAP, 1),
        e_out2=_capped_moment(OUT_MEDIAN, OUT_SIGMA, OUT_CAP, 2),
        doc_in=min(
            float(stats.lognorm(IN_SIGMA, scale=IN_MEDIAN).ppf(DOCUMENT_INPUT_QUANTILE)), IN_CAP
        ),
    )


@dataclass(frozen=True)
class Spread:
    """What widens a month's demand beyond Poisson sessions (the documented model's terms)."""

    arrival_cv: float = 1.0
    """CV of the gaps between session starts."""
    activity_var: float = 0.0
    """Variance of the month's rate-weighted mean activity multiplier (share^2)."""
    engagement: float = 1.0
    """Engagement target."""
    engagement_cv2: float = 0.0
    """Squared CV of engagement around its target (share^2)."""


def _month_law(units: float, units2: float, spread: Spread = Spread()):
    """Given intensity G, the month's demand as the documented Gamma law (mean, variance)."""
    m_at_1 = DAYS * SESSIONS * spread.engagement * PER_SESSION * units
    s_mean = PER_SESSION * units
    s_var = PER_SESSION * (units2 - units**2) + (PER_SESSION**2 - PER_SESSION) * units**2
    c_e, v_act = spread.engagement_cv2, spread.activity_var

    def law(g: float):
        mean = m_at_1 * g
        var = mean * (s_var + spread.arrival_cv**2 * s_mean**2) / s_mean
        var += mean**2 * ((1 + c_e) * v_act + c_e)
        return stats.gamma(mean**2 / var, scale=var / mean)

    return law


def _over_intensity(f) -> float:
    """E over G ~ Gamma(SHAPE, mean 1) of f(G), by quad."""
    g = stats.gamma(SHAPE, scale=1 / SHAPE)
    return integrate.quad(lambda x: f(x) * g.pdf(x), 0, math.inf, limit=400, epsrel=1e-10)[0]


def _capped_gamma(law, q: float) -> float:
    """E[min(D, q)] = integral of the survival function from 0 to q."""
    return integrate.quad(law.sf, 0, q, limit=200)[0]


# ------------------------------------------------------------- equal to the hand computation


def test_a_request_and_what_the_quota_covers_equal_the_hand_computation(small_explained):
    h = hand()
    lite = _pair(small_explained, "lite", "chat")
    pro = _pair(small_explained, "pro", "chat")
    assert lite.request.input_tokens == pytest.approx(h.e_in, rel=1e-8)
    assert lite.request.output_tokens == pytest.approx(h.e_out, rel=1e-8)
    assert lite.request.cached_input_tokens == pytest.approx(HIT * h.e_in, rel=1e-8)
    assert lite.request.quota_units == pytest.approx(h.tokens, rel=1e-8)  # weights 1
    assert lite.request.list_price == pytest.approx(h.list_price, rel=1e-8)
    assert lite.covers.requests == pytest.approx(LITE_Q / h.tokens, rel=1e-8)
    assert lite.covers.sessions == pytest.approx(LITE_Q / h.tokens / PER_SESSION, rel=1e-8)
    assert lite.covers.documents == pytest.approx(LITE_Q / (h.doc_in + h.e_out), rel=1e-8)
    # pro counts the big model twice: 1.6 quota tokens per token on chat's model mix
    w = Hand.weight(PRO_WEIGHT)
    assert w == pytest.approx(1.6)
    assert pro.request.quota_units == pytest.approx(w * h.tokens, rel=1e-8)
    assert pro.covers.requests == pytest.approx(PRO_Q / (w * h.tokens), rel=1e-8)
    assert pro.list_price_per_mtok == pytest.approx(h.list_price / h.tokens * 1e6, rel=1e-8)
    assert pro.break_even_tokens == pytest.approx(PRO_FEE / (h.list_price / h.tokens))
    # the cap is applied: the uncapped mean input would be 0.08% larger
    uncapped = IN_MEDIAN * math.exp(IN_SIGMA**2 / 2)
    assert h.e_in < uncapped * (1 - 5e-4)


def test_the_month_under_a_cutoff_equals_the_hand_computation(small_explained):
    h = hand()
    lite = _pair(small_explained, "lite", "chat").everyone
    law = _month_law(h.tokens, h.tokens2)
    mean = DAYS * SESSIONS * PER_SESSION * h.tokens
    exhaust = _over_intensity(lambda g: law(g).sf(LITE_Q))
    used = _over_intensity(lambda g: _capped_gamma(law(g), LITE_Q))
    assert lite.demand_units == pytest.approx(mean, rel=1e-9)
    assert lite.demand_requests == pytest.approx(DAYS * SESSIONS * PER_SESSION, rel=1e-9)
    assert lite.exhausting_share == pytest.approx(exhaust, rel=1e-3)
    assert lite.used_share == pytest.approx(used / LITE_Q, rel=1e-3)
    assert lite.refused_share == pytest.approx(1 - used / mean, rel=1e-3)
    median = optimize.brentq(lambda x: _over_intensity(lambda g: law(g).cdf(x)) - 0.5, 1, 1e8)
    assert lite.use_percentiles[50] == pytest.approx(median / LITE_Q, rel=1e-3)
    # cut-off: the fee buys only what is used within the quota (weights 1: units = tokens)
    assert lite.tokens_used == pytest.approx(used, rel=1e-3)
    assert lite.effective_price_per_mtok == pytest.approx(LITE_FEE / used * 1e6, rel=1e-3)
    assert lite.paid == LITE_FEE
    median_tokens = min(median, LITE_Q)
    assert lite.median_effective_price_per_mtok == pytest.approx(
        LITE_FEE / median_tokens * 1e6, rel=1e-3
    )


def test_the_month_under_pay_as_you_go_equals_the_hand_computation(small_explained):
    h = hand()
    pro = _pair(small_explained, "pro", "chat").everyone
    w, w2 = Hand.weight(PRO_WEIGHT), Hand.weight(PRO_WEIGHT, 2)
    law = _month_law(w * h.tokens, w2 * h.tokens2)
    mean = DAYS * SESSIONS * PER_SESSION * w * h.tokens
    over = mean - _over_intensity(lambda g: _capped_gamma(law(g), PRO_Q))  # E[(D - Q)+]
    assert pro.demand_past_quota_units == pytest.approx(over, rel=1e-3)
    assert pro.refused_share == 0.0  # pay-as-you-go serves everything
    assert pro.overage == pytest.approx(over * PRO_PAYG / 1e6, rel=1e-3)
    tokens = mean / w  # every quota unit served is 1/1.6 token
    assert pro.tokens_used == pytest.approx(tokens, rel=1e-9)
    paid = PRO_FEE + over * PRO_PAYG / 1e6
    assert pro.effective_price_per_mtok == pytest.approx(paid / tokens * 1e6, rel=1e-3)


WINDOW_S = 600.0  # the engine's activity window, docs/model.md (10 minutes)
WEEK = [1.0, 1.0, 1.1, 1.0, 1.2, 0.6, 0.5]


def _activity_var_by_lags(
    sigma: float, timescale_s: float, hours: list[float], weekdays: list[float], start: int
) -> float:
    """Var(sum_i w_i A_i) / (sum_i w_i)^2 over a month of 10-minute windows, lag by lag.

    A_i = exp(sigma Z_i - sigma^2 / 2), Z an AR(1) with phi = exp(-window / timescale): the
    covariance at lag l is exp(sigma^2 phi^l) - 1 (lognormal algebra).
    """
    per_hour = round(3600 / WINDOW_S)
    i = np.arange(DAYS * 24 * per_hour)
    day, hour = i // (24 * per_hour), (i // per_hour) % 24
    w = np.asarray(hours)[hour] * np.asarray(weekdays)[(start + day) % 7]
    phi = math.exp(-WINDOW_S / timescale_s)
    total = 0.0
    for lag in range(len(w)):
        pairs = float(np.dot(w[: len(w) - lag], w[lag:]))
        total += (1 if lag == 0 else 2) * pairs * math.expm1(sigma**2 * phi**lag)
    return total / float(w.sum()) ** 2


def _engagement_cv2_by_iteration(target: float, tau: float, vol: float) -> float:
    """Steady-state CV^2 of e' = (t + (e - t) phi) L, iterating its second moment to a fixed point.

    E[e] stays at t; E[e'^2] = (t^2 (1 - phi^2) + phi^2 E[e^2]) E[L^2], E[L^2] = exp(vol^2).
    """
    phi, m2 = math.exp(-1 / tau), target**2
    for _ in range(5000):
        m2 = (target**2 * (1 - phi**2) + phi**2 * m2) * math.exp(vol**2)
    return m2 / target**2 - 1


def test_the_engagement_spread_equals_a_simulation_of_the_engines_renewals():
    """The hand's fixed point is what the engine's renewal recursion settles to."""
    target, tau, vol = 1.3, 2.0, 0.3
    rng = np.random.default_rng(11)
    e = np.full(200_000, 0.6)  # start below target, as new subscribers do
    for _ in range(60):  # sim.engine.lifecycle._engagement, month after month
        e = target - (target - e) * math.exp(-1 / tau)
        e *= np.exp(vol * rng.standard_normal(len(e)) - vol**2 / 2)
    assert e.mean() == pytest.approx(target, rel=0.01)
    simulated = e.var() / e.mean() ** 2
    assert simulated == pytest.approx(_engagement_cv2_by_iteration(target, tau, vol), rel=0.03)
    assert engagement_cv2(target, tau, vol) == pytest.approx(simulated, rel=0.03)


def test_activity_spells_engagement_and_bursty_sessions_widen_the_month_by_hand():
    h = hand()
    d = small_dict()
    chat = d["segments"][0]
    chat.update(
        activity_sigma=0.8,
        activity_timescale_s=259_200.0,  # 3 days: spells outlast a day
        arrival_cv=1.5,
        weekday_profile=WEEK,
        engagement={"target": 1.3, "tau_months": 2.0, "volatility": 0.3},
    )
    scenario = validate_data(d)
    lite = _pair(explain(scenario, ["lite"]), "lite", "chat").everyone
    spread = Spread(
        arrival_cv=1.5,
        activity_var=_activity_var_by_lags(
            0.8, 259_200.0, chat["hour_profile"], WEEK, scenario.start_weekday
        ),
        engagement=1.3,
        engagement_cv2=_engagement_cv2_by_iteration(1.3, 2.0, 0.3),
    )
    assert spread.activity_var > 0.05  # the spells matter at this sigma and timescale
    law = _month_law(h.tokens, h.tokens2, spread)
    assert lite.demand_units == pytest.approx(DAYS * SESSIONS * 1.3 * PER_SESSION * h.tokens)
    exhaust = _over_intensity(lambda g: law(g).sf(LITE_Q))
    used = _over_intensity(lambda g: _capped_gamma(law(g), LITE_Q))
    assert lite.exhausting_share == pytest.approx(exhaust, rel=1e-3)
    assert lite.used_share == pytest.approx(used / LITE_Q, rel=1e-3)
    p95 = optimize.brentq(lambda x: _over_intensity(lambda g: law(g).cdf(x)) - 0.95, 1, 1e8)
    assert lite.use_percentiles[95] == pytest.approx(p95 / LITE_Q, rel=1e-3)
    # directional: the same mean with less spread has a narrower month
    calm = small_dict()
    calm["segments"][0]["engagement"] = {"target": 1.3}
    flat = _pair(explain(validate_data(calm), ["lite"]), "lite", "chat").everyone
    assert flat.demand_units == pytest.approx(lite.demand_units)
    assert flat.use_percentiles[95] < lite.use_percentiles[95]
    assert flat.use_percentiles[5] > lite.use_percentiles[5]


def test_an_empirical_length_table_equals_the_hand_computation():
    """A table's moments: the piecewise-linear quantile function integrated over u, capped."""
    probs, lengths, cap = [0.0, 0.3, 0.7, 0.95, 1.0], [10.0, 200.0, 900.0, 5000.0, 40000.0], 20000
    d = small_dict()
    d["segments"][0]["input_tokens"] = {
        "dist": "empirical", "quantiles": lengths, "probs": probs, "max": cap,
    }  # fmt: skip

    def length(u: float) -> float:
        return min(float(np.interp(u, probs, lengths)), cap)

    kinks = [*probs[1:-1], float(np.interp(cap, lengths, probs))]
    e_in = integrate.quad(length, 0, 1, points=kinks, epsabs=1e-10)[0]
    e_in2 = integrate.quad(lambda u: length(u) ** 2, 0, 1, points=kinks, epsabs=1e-6)[0]
    e_out, e_out2 = hand().e_out, hand().e_out2
    lite = _pair(explain(validate_data(d), ["lite"]), "lite", "chat")
    assert lite.request.input_tokens == pytest.approx(e_in, rel=1e-8)
    assert lite.request.document_input_tokens == pytest.approx(length(DOCUMENT_INPUT_QUANTILE))
    tokens = e_in + e_out
    assert lite.covers.requests == pytest.approx(LITE_Q / tokens, rel=1e-8)
    law = _month_law(tokens, e_in2 + 2 * e_in * e_out + e_out2)  # second moment matters here
    exhaust = _over_intensity(lambda g: law(g).sf(LITE_Q))
    assert lite.everyone.exhausting_share == pytest.approx(exhaust, rel=1e-3)


def test_a_quota_in_requests_counts_requests_at_the_model_weights():
    d = small_dict()
    d["plans"][1]["quota"] = {"unit": "requests", "amount": 300}
    pro = _pair(explain(validate_data(d), ["pro"]), "pro", "chat")
    w, w2 = Hand.weight(PRO_WEIGHT), Hand.weight(PRO_WEIGHT, 2)  # 1.6 and 2.8 per request
    assert pro.request.quota_units == pytest.approx(w)
    assert pro.covers.requests == pytest.approx(300 / w)
    assert pro.covers.sessions == pytest.approx(300 / w / PER_SESSION)
    assert pro.covers.documents == pytest.approx(300 / w)  # a document is one request
    law = _month_law(w, w2)
    over = DAYS * SESSIONS * PER_SESSION * w - _over_intensity(lambda g: _capped_gamma(law(g), 300))
    assert pro.everyone.exhausting_share == pytest.approx(
        _over_intensity(lambda g: law(g).sf(300)), rel=1e-3
    )
    assert pro.everyone.demand_past_quota_units == pytest.approx(over, rel=1e-3)


def _no_churn_book(chat: int, coder: int) -> dict[str, Any]:
    """SMALL with a bigger book, no sign-ups, no churn: a run's closed months are unselected."""
    d = small_dict()
    for g, n in zip(d["segments"], (chat, coder), strict=True):
        g.update(initial_subscribers=n, churn_intercept=-20.0)
        g["acquisition"] = {"model": "constant", "per_month": 0}
    for pool, gpus in zip(d["cluster"]["pools"], (40, 20), strict=True):
        pool["gpus"] = gpus  # no request refused for want of a slot
    return d


def test_choosers_agree_with_a_simulated_month(tmp_path: Path):
    """One engine run: the plan-choice shares and each plan's month match explain's choosers.

    Full billing months that start at or after t = 0 (the book's earlier months are partial);
    tolerances are about three standard errors of the run's sample.
    """
    d = _no_churn_book(2500, 1200)
    scenario = tmp_path / "book.yaml"
    scenario.write_text(yaml.safe_dump(d))
    assert main(["run", str(scenario), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    led = pd.read_parquet(tmp_path / "run" / "ledger.parquet")
    closed = led[led["status"].astype(str) != "open"]
    full = closed[
        (closed["month_start_day"] >= 0) & (closed["close_day"] - closed["month_start_day"] == DAYS)
    ]
    ex = explain(validate_data(d))
    for seg, plan in (("chat", "lite"), ("chat", "pro"), ("coder", "pro")):
        mine = full[(full["segment"] == seg) & (full["plan"] == plan)]
        c = _pair(ex, plan, seg).choosers
        assert c is not None
        share = len(mine) / (full["segment"] == seg).sum()
        assert share == pytest.approx(c.share_of_segment, abs=0.03), (seg, plan)
        q = float(mine["quota_units"].iloc[0])
        demand = (mine["tokens_requested"] if plan == "lite" else mine["used_units"]) / q
        assert mine["requests"].mean() == pytest.approx(c.demand_requests, rel=0.08), (seg, plan)
        assert demand.median() == pytest.approx(c.use_percentiles[50], rel=0.1), (seg, plan)
        assert mine["exhausted"].mean() == pytest.approx(c.exhausting_share, abs=0.04), (seg, plan)
        paid = (mine["charge"] + mine["overage"] + mine["topups"]).mean()
        assert paid == pytest.approx(c.paid, rel=0.02), (seg, plan)


def _booked(tmp_path: Path, rows: list[tuple[str, float | None]]) -> Path:
    """SMALL with its chat segment's book read from a table of (plan, monthly_tokens) rows."""
    tokens = rows[0][1] is not None
    lines = ["id,segment,plan,tenure_months" + (",monthly_tokens" if tokens else "")]
    lines += [
        f"s{i},chat,{plan},3" + (f",{t}" if tokens else "") for i, (plan, t) in enumerate(rows)
    ]
    (tmp_path / "book.csv").write_text("\n".join(lines) + "\n")
    d = small_dict()
    d["book"] = {"file": "book.csv"}
    for g in d["segments"]:
        g["initial_subscribers"] = 0
    path = tmp_path / "booked.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_a_books_holders_are_taken_at_their_own_monthly_tokens(tmp_path: Path):
    """With book.file, a plan's holders at t = 0 use what their monthly_tokens say."""
    h = hand()
    tokens = [100_000, 300_000, 900_000]
    rows: list[tuple[str, float | None]] = [("pro", t) for t in tokens] + [("lite", 5e4)] * 3
    pro = _pair(explain(load_scenario(_booked(tmp_path, rows)), ["pro"]), "pro", "chat")
    assert pro.book is not None
    assert pro.book_subscribers == 3
    assert pro.book.share_of_segment == pytest.approx(0.5)
    # the engine's intensity: monthly tokens over the mean month at the uncapped mean lengths
    uncapped = IN_MEDIAN * math.exp(IN_SIGMA**2 / 2) + OUT_MEDIAN * math.exp(OUT_SIGMA**2 / 2)
    month = DAYS * SESSIONS * PER_SESSION
    intensities = [t / (month * uncapped) for t in tokens]
    assert pro.book.demand_requests == pytest.approx(sum(intensities) * month / 3)
    w, w2 = Hand.weight(PRO_WEIGHT), Hand.weight(PRO_WEIGHT, 2)
    law = _month_law(w * h.tokens, w2 * h.tokens2)
    exhaust = sum(law(g).sf(PRO_Q) for g in intensities) / 3
    assert pro.book.exhausting_share == pytest.approx(exhaust, rel=1e-6)
    assert pro.book.use_percentiles[50] > pro.everyone.use_percentiles[50]  # heavy holders
    # without monthly_tokens the holders' intensities are drawn as for everyone
    plain = _booked(tmp_path, [("pro", None)] * 2 + [("lite", None)] * 6)
    drawn = _pair(explain(load_scenario(plain), ["pro"]), "pro", "chat")
    assert drawn.book is not None
    assert drawn.book.share_of_segment == pytest.approx(0.25)
    assert drawn.book.exhausting_share == pytest.approx(drawn.everyone.exhausting_share)
    assert drawn.book.demand_requests == pytest.approx(drawn.everyone.demand_requests)
    # a scenario without a book says nothing of one
    assert _pair(explain(validate_data(small_dict()), ["pro"]), "pro", "chat").book is None


def test_choosers_are_the_logit_weighted_segment(small_explained):
    """Choosers of the bigger plan are the heavier users, and their shares add up to 1."""
    lite = _pair(small_explained, "lite", "chat")
    pro = _pair(small_explained, "pro", "chat")
    assert lite.choosers is not None
    assert pro.choosers is not None
    assert lite.choosers.share_of_segment + pro.choosers.share_of_segment == pytest.approx(1.0)
    everyone = lite.everyone.demand_requests
    assert pro.choosers.demand_requests > everyone > lite.choosers.demand_requests
    mix = (
        lite.choosers.share_of_segment * lite.choosers.demand_requests
        + pro.choosers.share_of_segment * pro.choosers.demand_requests
    )
    assert mix == pytest.approx(everyone, rel=1e-9)  # the two groups make up the segment
    coder = _pair(small_explained, "pro", "coder")  # the only plan it may take
    assert coder.choosers is not None
    assert coder.choosers.share_of_segment == pytest.approx(1.0)
    assert coder.choosers.exhausting_share == pytest.approx(coder.everyone.exhausting_share)


# ------------------------------------------------------------- directional


def _explain_with(change) -> Explanation:
    d = small_dict()
    change(d)
    return explain(validate_data(d))


def test_a_bigger_quota_covers_more_and_fewer_exhaust_it(small_explained):
    def bigger(d: dict[str, Any]) -> None:
        d["plans"][0]["quota"]["amount"] = 2 * LITE_Q

    base, big = _pair(small_explained, "lite", "chat"), _pair(_explain_with(bigger), "lite", "chat")
    assert big.covers.requests == pytest.approx(2 * base.covers.requests)
    assert big.everyone.exhausting_share < base.everyone.exhausting_share
    assert big.everyone.tokens_used > base.everyone.tokens_used  # less is cut off
    assert big.everyone.effective_price_per_mtok < base.everyone.effective_price_per_mtok


def test_a_higher_fee_or_overage_price_raises_the_effective_price(small_explained):
    def dearer(d: dict[str, Any]) -> None:
        d["plans"][1]["price_per_month"] = PRO_FEE * 1.3
        d["plans"][1]["on_exhaustion"]["price_per_munit"] = PRO_PAYG * 2

    base = _pair(small_explained, "pro", "coder").everyone
    dear = _pair(_explain_with(dearer), "pro", "coder").everyone
    assert dear.effective_price_per_mtok > base.effective_price_per_mtok
    assert dear.median_effective_price_per_mtok > base.median_effective_price_per_mtok
    assert dear.tokens_used == pytest.approx(base.tokens_used)  # the same demand, all served


def test_cheaper_cache_hits_stretch_the_quota(small_explained):
    h = hand()

    def hits(d: dict[str, Any]) -> None:
        d["plans"][0]["token_class_weights"] = {"input_hit": 0.25}

    base, cheap = _pair(small_explained, "lite", "chat"), _pair(_explain_with(hits), "lite", "chat")
    expected = h.tokens - 0.75 * HIT * h.e_in
    assert cheap.request.quota_units == pytest.approx(expected, rel=1e-8)
    assert cheap.covers.requests > base.covers.requests
    assert cheap.everyone.exhausting_share < base.everyone.exhausting_share


def test_top_ups_and_throttling_serve_more_than_a_cutoff(small_explained):
    def topup(d: dict[str, Any]) -> None:
        d["plans"][0]["on_exhaustion"] = {
            "rule": "topup", "pack_units": 100_000, "pack_price": 2.0, "purchase": "auto",
        }  # fmt: skip

    def throttle(d: dict[str, Any]) -> None:
        d["plans"][0]["on_exhaustion"] = {"rule": "throttle", "min_gap_s": 60}

    cut = _pair(small_explained, "lite", "chat").everyone
    top = _pair(_explain_with(topup), "lite", "chat").everyone
    thr = _pair(_explain_with(throttle), "lite", "chat").everyone
    assert top.topup_packs > 0
    assert top.topup_spend == pytest.approx(2.0 * top.topup_packs)
    assert top.tokens_used > cut.tokens_used
    assert top.refused_share < cut.refused_share
    assert cut.tokens_used < thr.tokens_used < cut.tokens_used + thr.demand_past_quota_units
    assert thr.paid == LITE_FEE


# ------------------------------------------------------------- the command


def _scenario_file(tmp_path: Path) -> Path:
    p = tmp_path / "small.yaml"
    p.write_text(yaml.safe_dump(small_dict()))
    return p


def _no_constants(name: str) -> None:
    raise AssertionError(f"non-JSON number {name}")


def test_explain_prints_text_and_writes_json_and_page(tmp_path: Path, capsys):
    scenario = _scenario_file(tmp_path)
    out, data_file = tmp_path / "explained", tmp_path / "lite.json"
    rc = main(
        ["explain", str(scenario), "--plan", "lite", "--json", str(data_file), "--out", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    data = json.loads(data_file.read_text(), parse_constant=_no_constants)
    assert json.loads((out / "explain.json").read_text()) == data
    [plan] = data["plans"]
    assert plan["name"] == "lite"
    assert [g["segment"] for g in plan["for_segments"]] == ["chat"]
    chat = plan["for_segments"][0]
    lite = _pair(explain(validate_data(small_dict()), ["lite"]), "lite", "chat")
    assert chat["covers"]["requests"] == pytest.approx(lite.covers.requests)
    assert chat["everyone"]["use_percentiles"]["p50"] == pytest.approx(
        lite.everyone.use_percentiles[50]
    )
    assert f"about {round(LITE_Q / hand().tokens):,} chat turns" in text  # 262
    assert "Past the quota, requests are refused until the next billing month." in text
    assert all(w in text for w in chat["words"])
    page = (out / "explain.html").read_text()
    assert "What each package buys: small" in page
    assert "<figure>" in page
    [report] = check_pages([out / "explain.html"])
    assert report.problems() == []
    assert report.figures
    assert all(f["width"] > 100 for f in report.figures)


def test_explain_explains_every_plan_by_default(tmp_path: Path, capsys):
    assert (
        main(["explain", str(_scenario_file(tmp_path)), "--set", "plans.pro.price_per_month=99"])
        == 0
    )
    text = capsys.readouterr().out
    assert "lite: CNY 9.9 a month for 400,000 tokens" in text
    assert "pro: CNY 99 a month for 2M tokens" in text  # --set reaches the explanation
    assert "for coder:" in text


def test_unknown_plan_exits_2_naming_it_and_writes_nothing(tmp_path: Path, capsys):
    out, data_file = tmp_path / "out", tmp_path / "x.json"
    rc = main(
        ["explain", str(_scenario_file(tmp_path)), "--plan", "gold", "--out", str(out),
         "--json", str(data_file)]
    )  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "--plan: unknown plan 'gold'" in err
    assert "lite, pro" in err
    assert not out.exists()
    assert not data_file.exists()
    with pytest.raises(UnknownPlanError, match="gold"):
        explain(validate_data(small_dict()), ["gold"])


def test_bad_outputs_and_bad_scenarios_exit_2_writing_nothing(tmp_path: Path, capsys):
    scenario = _scenario_file(tmp_path)
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    assert main(["explain", str(scenario), "--out", str(a_file)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
    assert main(["explain", str(scenario), "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    bad = small_dict()
    bad["plans"][0]["quota"]["amount"] = -1
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(bad))
    out = tmp_path / "never"
    assert main(["explain", str(bad_file), "--out", str(out)]) == 2
    assert "plans[0].quota.amount" in capsys.readouterr().err
    assert not out.exists()
    bad_set = ["--set", "plans.lite.price_per_month=-1", "--out", str(out)]
    assert main(["explain", str(scenario), *bad_set]) == 2
    err = capsys.readouterr().err
    assert "--set: plans[0].price_per_month" in err
    assert not out.exists()


def test_a_plan_no_segment_takes_and_a_silent_segment_are_said_plainly(tmp_path: Path, capsys):
    d = small_dict()
    d["plans"].append(dict(d["plans"][0], name="orphan"))
    d["segments"][0]["sessions_per_day"] = 0.0  # chat never asks anything
    ex = explain(validate_data(d))
    assert not ex.pairs_of("orphan")
    silent = _pair(ex, "lite", "chat").everyone
    assert silent.demand_units == 0
    assert silent.exhausting_share == 0
    assert math.isinf(silent.effective_price_per_mtok)
    data = explanation_dict(ex)
    json.dumps(data, allow_nan=False)  # infinities become null
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    assert main(["explain", str(p), "--plan", "orphan"]) == 0
    assert "No segment of the scenario is offered this plan." in capsys.readouterr().out


def test_no_quota_no_list_price_and_a_throttle_are_said_plainly():
    d = small_dict()
    d["plans"][1]["quota"]["amount"] = 0  # pro: pure pay-as-you-go
    d["plans"][0]["on_exhaustion"] = {"rule": "throttle", "min_gap_s": 600, "deprioritise": True}
    for m in d["catalog"]["models"]:
        m.update(price_input_miss_per_mtok=0, price_input_hit_per_mtok=0, price_output_per_mtok=0)
    data = explanation_dict(explain(validate_data(d)))
    lite, pro = data["plans"]
    assert pro["words"].startswith("CNY 39.9 a month with no quota")
    assert lite["past_quota_words"] == (
        "Past the quota, at most one request every 10 min is served, queued behind every SLA"
        " class, until the next billing month."
    )
    coder = " ".join(pro["for_segments"][1]["words"])
    assert "The plan has no quota" in coder
    assert "of the quota" not in coder
    assert "Without a quota, all the demand is past it" in coder
    assert "the catalog gives these models no API list price" in coder
    assert "x the list price" not in coder
    assert "The fee buys" not in coder
