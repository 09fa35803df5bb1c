"""Conservation checks on a finished run: requests, tokens, money, subscribers, latency, load.

Each ``check_*`` asserts an identity that holds for any scenario; ``check_all`` runs them all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.engine.accounting import SLO_COUNTED, SLO_MET, SLO_OFFERED
from sim.engine.metrics import LATENCY, MONTHLY, N_BINS, bin_value
from sim.results.tables import RunResult
from sim.scenario.schema import Payg, Scenario, Topup
from sim.units import SECONDS_PER_HOUR

REFUSALS = (
    "refused_quota",
    "refused_throttle",
    "refused_concurrency",
    "refused_capacity",
    "refused_window",
)
TOKEN_CLASSES = ("input_miss", "input_hit", "output")
LEDGER_TO_MONTHLY = {
    "requests": "requests",
    "served": "served",
    "throttled": "throttled",
    "tokens_requested": "tokens_requested",
    "tokens_served": "tokens_served",
    "tokens_refused": "tokens_refused",
    "tokens_throttled": "tokens_throttled",
    "abandoned": "abandoned",
    "tokens_abandoned": "tokens_abandoned",
    "fee": "revenue_fees",
    "overage": "revenue_overage",
    "topups": "revenue_topups",
    "exhausted": "exhausted",
}


def _close(a: Any, b: Any, what: str, rel: float = 1e-9, abs_: float = 1e-6) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.allclose(a, b, rtol=rel, atol=abs_), f"{what}: {a} != {b}"


def check_request_conservation(r: RunResult) -> None:
    m = r.replications[0].acc.monthly
    refused = sum(m[k] for k in REFUSALS) + m["abandoned"]
    _close(m["requests"], m["served"] + refused, "requests = served + refused + abandoned")
    _close(
        m["tokens_requested"],
        m["tokens_served"] + m["tokens_refused"] + m["tokens_abandoned"],
        "tokens requested = served + refused + abandoned",
    )
    assert (m["deferred"] <= m["requests"]).all(), "more deferred than requests"
    _close(
        m["tokens_served"],
        m["input_miss_tokens"] + m["input_hit_tokens"] + m["output_tokens"],
        "tokens served = input miss + input hit + output",
    )
    _close(m["served"], m["slo_counted"] + m["throttled"], "served = in class + throttled")
    assert (m["tokens_throttled"] <= m["tokens_served"] + 1e-6).all()
    for k in ("requests", "served", "tokens_requested", "abandoned", "deferred", *REFUSALS):
        assert (m[k] >= 0).all(), k


def check_windows(r: RunResult) -> None:
    """Usage windows: every deferred request and window refusal met a limit (a request
    deferred twice met two), and only plans with windows (or peak weights) show any; hourly
    deferrals add up to the monthly ones."""
    rep = r.replications[0]
    a, w = rep.acc, rep.world
    m = a.monthly
    hits = a.window[:, 0].sum(axis=-1)  # month x plan x segment
    lockouts = a.window[:, 1].sum(axis=-1)
    lock_s = a.window[:, 2].sum(axis=-1)
    outcomes = m["deferred"] + m["refused_window"]
    assert (hits >= outcomes - 1e-9).all(), "a deferral or window refusal without a limit hit"
    assert (lockouts <= hits + 1e-9).all()
    assert (lock_s >= 0).all()
    assert ((lockouts > 0) | (lock_s == 0)).all(), "lock-out time without a lock-out"
    no_windows = w.win.n == 0
    assert (hits[:, no_windows] == 0).all()
    assert (outcomes[:, no_windows] == 0).all()
    unweighted = (w.win.peak == 1.0).all(axis=1)
    assert (m["peak_extra_units"][:, unweighted] == 0).all()
    _close(a.hourly["deferred"].sum(), m["deferred"].sum(), "hourly deferred = monthly")


def check_latency_and_load(r: RunResult) -> None:
    rep = r.replications[0]
    a, w = rep.acc, rep.world
    m = a.monthly
    assert (m["slo_met"] >= 0).all()
    assert (m["slo_met"] <= m["slo_counted"]).all()
    assert (m["slo_counted"] <= m["served"]).all()
    served = m["served"].sum()
    # every served request has one wait, TTFT and end-to-end sample, and one start in the hours
    for k, name in enumerate(LATENCY):
        _close(a.hist[..., k, :].sum(), served, f"{name} histogram count = served")
    _close(a.hourly["started"].sum(), served, "hourly starts = served")
    _close(a.hourly["arrivals"].sum(), served, "hourly admitted arrivals = served")
    _close(a.hourly["slo_met"].sum(), m["slo_met"].sum(), "hourly SLO met")
    _close(a.hourly["slo_counted"].sum(), m["slo_counted"].sum(), "hourly SLO counted")
    assert (a.wait_sum >= 0).all()

    hours = w.horizon_days * 24
    busy = a.hourly["busy_slot_s"][:hours]
    cap = a.hourly["slots"][:hours] * SECONDS_PER_HOUR
    over = busy - cap
    assert (over <= 1e-6 * np.maximum(cap, 1.0)).all(), (
        f"busy slot-seconds above capacity in hour(s) {np.argwhere(over > 1e-6)[:5].tolist()}"
    )
    # a pool with no working slot serves nothing
    assert (busy[cap == 0] == 0).all()

    check_slo_against_ttft(r)

    k = r.kpis().iloc[0]
    hourly = r.hourly()
    for u in (k["gpu_utilisation"], *r.months()["gpu_utilisation"], *hourly["utilisation"]):
        assert math.isnan(u) or 0.0 <= u <= 1.0 + 1e-9, u
    # GPU cost: cards paid for (a disaggregated pool's decode cards too) x hours x price (no
    # procurement schedule here)
    expected = (
        sum(
            (p.gpus + (p.disaggregated.decode_gpus if p.disaggregated else 0))
            * next(g.cost_per_hour for g in r.scenario.catalog.gpus if g.name == p.gpu)
            for p in r.scenario.cluster.pools
        )
        * hours
    )
    _close(k["gpu_cost"], expected, "GPU cost = cards x hours x price")


def check_slo_against_ttft(r: RunResult) -> None:
    """SLO met = in-class requests whose TTFT (and the pool's TPOT) meet the class targets.

    (Batched pools: each request's own TPOT, so met is only bounded above by the TTFT count.)

    Checked per month, pool and class against the TTFT histogram, which resolves the count to
    the bins around the target (bins whose centres straddle it).
    """
    rep = r.replications[0]
    a, w = rep.acc, rep.world
    m = a.monthly
    slo = a.slo.sum(axis=1)  # month x pool x class x (offered, counted, met): hours together
    _close(slo[..., SLO_MET].sum(), m["slo_met"].sum(), "SLO met by pool = by plan")
    _close(slo[..., SLO_COUNTED].sum(), m["slo_counted"].sum(), "SLO counted by pool = by plan")
    _close(slo[..., SLO_OFFERED].sum(), m["requests"].sum(), "offered to pools = requests made")
    _close(a.hourly["offered"].sum(), m["requests"].sum(), "hourly offered = requests made")
    hist = a.hist.sum(axis=1, dtype=np.int64)  # month x pool x class x metric x bin
    centre = bin_value(np.arange(N_BINS))
    for c, cls in enumerate(r.scenario.cluster.sla_classes):
        assert cls.slo.wait_s is None, "this check knows TTFT and TPOT targets only"
        target = np.inf if cls.slo.ttft_s is None else cls.slo.ttft_s
        surely = np.append(centre[1:] <= target, target == np.inf)  # bin entirely <= target
        maybe = np.insert(centre[:-1] < target, 0, True)  # bin reaches below the target
        for j in range(len(w.pool.names)):
            h = hist[:, j, c, 1, :]  # [month, bin]
            met = slo[:, j, c, SLO_MET]
            _close(slo[:, j, c, SLO_COUNTED], h.sum(axis=1), "SLO counted = in-class requests")
            lo, hi = h[:, surely].sum(axis=1), h[:, maybe].sum(axis=1)
            if w.pool.batched[j]:  # TPOT varies by request: the TTFT bound caps met from above
                assert (met <= hi).all(), f"pool {w.pool.names[j]}: SLO met {met} above {hi}"
                continue
            if cls.slo.tpot_s is not None and w.pool.tpot_s[j] > cls.slo.tpot_s:
                assert (met == 0).all(), "the pool's decode is too slow for the class"
                continue
            assert ((lo <= met) & (met <= hi)).all(), (
                f"pool {w.pool.names[j]}: SLO met {met} outside [{lo}, {hi}] by the TTFT histogram"
            )


def check_subscriber_flows(r: RunResult) -> None:
    m = r.replications[0].acc.monthly
    start, end, new, churned = (
        m[k] for k in ("subscribers_start", "subscribers_end", "new", "churned")
    )
    sw_in, sw_out = m["switched_in"], m["switched_out"]
    # per month, all plans and segments together: switches cancel out
    _close(
        start.sum(axis=(1, 2)) + new.sum(axis=(1, 2)) - churned.sum(axis=(1, 2)),
        end.sum(axis=(1, 2)),
        "start + new - churned = end",
    )
    _close(sw_in.sum(axis=(1, 2)), sw_out.sum(axis=(1, 2)), "switched in = switched out")
    # per plan x segment: switches move subscribers between plans
    _close(start + new - churned + sw_in - sw_out, end, "per plan: flows")
    _close(end[:-1], start[1:], "end of month m = start of month m+1")
    assert (churned <= m["renewals"]).all()
    assert m["exhausted"].sum() <= m["submonths"].sum()
    # the first month starts with the initial subscribers (a book's count where there is one)
    initial = r.replications[0].world.seg.initial.sum()
    _close(start[0].sum(), initial, "subscribers at t=0")


def check_ledger(r: RunResult) -> None:
    rep = r.replications[0]
    w, m = rep.world, rep.acc.monthly
    led = rep.ledger.copy()
    assert len(led) > 0
    # every billing month started ends in exactly one ledger row (renewed/switched/churned/open)
    _close(len(led), m["submonths"].sum(), "ledger rows = subscriber-months started")
    assert set(led["status"].astype(str)) <= {"renewed", "switched", "churned", "open"}
    _close((led["status"] == "open").sum(), m["subscribers_end"][-1].sum(), "open rows")

    # totals by plan x segment, ledger vs monthly tables
    by_ps = {k: m[v].sum(axis=0) for k, v in LEDGER_TO_MONTHLY.items()}
    by_ps["refused"] = sum(m[k] for k in REFUSALS).sum(axis=0)
    by_ps["slo_miss"] = (m["slo_counted"] - m["slo_met"]).sum(axis=0)
    for cls in TOKEN_CLASSES:
        by_ps[f"tokens|*|{cls}"] = m[f"{cls}_tokens"].sum(axis=0)
        led[f"tokens|*|{cls}"] = sum(led[f"tokens|{name}|{cls}"] for name in w.model_names)
    led_ps = (
        led.assign(exhausted=led["exhausted"].astype(float))
        .groupby(["plan", "segment"], observed=False)[list(by_ps)]
        .sum()
    )
    for col, table in by_ps.items():
        got = led_ps[col].unstack("segment").reindex(index=w.plan.names, columns=w.seg.names)
        _close(got.to_numpy(), table, f"ledger {col} by plan x segment")

    # money, whole run: monthly revenue = ledger sums = KPI revenue
    k = r.kpis().iloc[0]
    for col, metric in (
        ("fee", "revenue_fees"),
        ("overage", "revenue_overage"),
        ("topups", "revenue_topups"),
    ):
        _close(led[col].sum(), m[metric].sum(), f"ledger {col} = monthly {metric}")
        _close(k[metric], led[col].sum(), f"KPI {metric}")
    _close(k["revenue_total"], led[["fee", "overage", "topups"]].to_numpy().sum(), "revenue")

    # requests go only to models the plan allows and the segment asks for
    s = r.scenario
    for p in s.plans:
        for g in s.segments:
            rows = led[(led["plan"] == p.name) & (led["segment"] == g.name)]
            for name in w.model_names:
                if name in p.models and g.model_preference.get(name, 0) > 0:
                    continue
                used = sum(rows[f"tokens|{name}|{cls}"].sum() for cls in TOKEN_CLASSES)
                assert used == 0, f"{g.name} on {p.name} used model {name}"

    check_billing_rules(r, led)


def check_billing_rules(r: RunResult, led: pd.DataFrame) -> None:
    """Each ledger row against its plan: fee charged, quota, packs, overage, exhaustion."""
    s, w = r.scenario, r.replications[0].world
    plans = {p.name: p for p in s.plans}
    fee = led["plan"].map({n: p.price_per_month for n, p in plans.items()}).astype(float)
    if not s.events:  # without events every billing month charges the plan's fee
        _close(led["charge"], fee, "charge = plan fee")
    # the first month of a subscriber present at t=0 (ids come first) was paid before the run
    n_initial = w.seg.initial.sum()
    first = led["month_start_day"] == led.groupby("subscriber")["month_start_day"].transform("min")
    paid_before = (led["subscriber"] < n_initial) & first
    assert (led.loc[paid_before, "month_start_day"] <= 0).all()
    _close(led["fee"], np.where(paid_before, 0.0, led["charge"]), "fee billed (0 if before t=0)")
    # the quota of a billing month is the plan's in the month it starts (before events at t=0)
    p_idx = {n: i for i, n in enumerate(w.plan.names)}
    start_month = np.clip(led["month_start_day"] // w.days_per_month, 0, w.horizon_months - 1)
    pid = led["plan"].astype(str).map(p_idx).to_numpy()
    base_quota = pd.Series(
        np.where(
            paid_before,
            w.timeline.base_quota[pid],
            w.timeline.quota[start_month.to_numpy(), pid],
        ),
        index=led.index,
    )
    for name, p in plans.items():
        rows = led[led["plan"] == name]
        ex = p.on_exhaustion
        pack_units = ex.pack_units if isinstance(ex, Topup) else 0.0
        carry = rows["quota_units"] - base_quota[rows.index] - rows["packs"] * pack_units
        assert (carry >= -1e-6).all(), f"{name}: quota below the plan's"
        assert (carry <= p.rollover.cap_units * (p.rollover.share > 0) + 1e-6).all(), name
        if isinstance(ex, Topup):
            assert (rows["packs"] <= ex.max_packs_per_month).all(), name
            _close(rows["topups"], rows["packs"] * ex.pack_price, f"{name}: top-ups = packs")
        else:
            assert (rows["packs"] == 0).all(), name
            assert (rows["topups"] == 0).all(), name
        if isinstance(ex, Payg):
            over = np.maximum(rows["used_units"] - rows["quota_units"], 0.0) / ex.block_units
            unit = ex.block_units * ex.price_per_munit / 1e6
            lo, hi = np.ceil(over - 1e-6) * unit, np.ceil(over + 1e-6) * unit
            # requests billed whole beyond a full window (on_limit: monthly_rule) add to the
            # overage without drawing on the quota: the overage is then at least the blocks
            if any(w.on_limit == "monthly_rule" for w in p.windows):
                hi = np.full(len(rows), np.inf)
            assert ((rows["overage"] >= lo - 1e-9) & (rows["overage"] <= hi + 1e-9)).all(), (
                f"{name}: overage is not the whole blocks over the quota"
            )
        else:
            assert (rows["overage"] == 0).all(), name
        q = rows["quota_units"]
        crossed = (rows["used_units"] >= q) & (q > 0)
        assert rows["exhausted"][crossed].all(), f"{name}: quota crossed, not marked exhausted"
        if not isinstance(ex, Topup):  # packs can lift the quota above usage again
            assert (rows["used_units"][rows["exhausted"]] >= q[rows["exhausted"]]).all(), name


def check_tables(r: RunResult) -> None:
    """The tables people read add up to the accumulators they are built from."""
    m = r.replications[0].acc.monthly
    tidy = r.monthly()
    for k in MONTHLY:
        _close(tidy[k].sum(), m[k].sum(), f"monthly() {k}")
    months = r.months()
    _close(
        months["subscribers_end"].to_numpy()[:-1],
        months["subscribers_start"].to_numpy()[1:],
        "months(): end = next start",
    )
    k = r.kpis().iloc[0]
    _close(k["requests"], m["requests"].sum(), "KPI requests")
    _close(k["tokens_served"], m["tokens_served"].sum(), "KPI tokens served")
    _close(k["subscribers_end"], m["subscribers_end"][-1].sum(), "KPI subscribers_end")
    for share in (
        "refused_share",
        "abandoned_share",
        "throttled_share",
        "slo_attainment_served",
        "goodput_share",
        "exhausted_share",
    ):
        assert math.isnan(k[share]) or 0.0 <= k[share] <= 1.0, share


def check_all(r: RunResult) -> None:
    check_request_conservation(r)
    check_windows(r)
    check_latency_and_load(r)
    check_subscriber_flows(r)
    check_ledger(r)
    check_tables(r)


def max_charge(s: Scenario) -> pd.DataFrame:
    """Largest quota charge one request can carry, by plan (rows) x segment (columns), at
    the plan's highest peak weight."""
    out = {}
    for g in s.segments:
        in_max, out_max = g.input_tokens.max, g.output_tokens.max
        assert in_max is not None
        assert out_max is not None
        col = {}
        for p in s.plans:
            wmax = max(p.models.values()) * max([1.0, *(x.weight for x in p.peak_weights)])
            if p.quota.unit == "requests":
                col[p.name] = wmax
            else:
                tw = p.token_class_weights
                col[p.name] = wmax * (
                    max(tw.input_miss, tw.input_hit) * in_max + tw.output * out_max
                )
        out[g.name] = col
    return pd.DataFrame(out)
