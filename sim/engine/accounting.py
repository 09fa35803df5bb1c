"""One compiled pass that folds a day's request outcomes into every counter.

Written as a numba loop rather than a dozen numpy ``bincount`` passes: one
pass over the requests updates the subscriber's month counters, the monthly
plan x segment table, the latency histograms and SLO counters by hour of day, and the hourly
pool table.
(Calling this accounting from inside the admission kernel, request by
request, was tried and measured slower: numba passes the many arrays by value
on every call.)
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sim.engine.hours import hour_of
from sim.engine.outcomes import (
    ABANDONED,
    DOWNGRADED,
    REFUSED_CONCURRENCY,
    REFUSED_NO_CAPACITY,
    REFUSED_QUOTA,
    REFUSED_THROTTLE,
    REFUSED_WINDOW,
    SERVED,
)
from sim.engine.resolution import HIST_MANTISSA_BITS, HIST_MIN_S
from sim.units import HOURS_PER_DAY, SECONDS_PER_HOUR, TOKENS_PER_MTOK
from sim.world.rules import RULE_PAYG

# order of the request-level metrics in the stacked monthly array (see sim.engine.metrics.MONTHLY)
REQUEST_METRICS = (
    "requests",
    "served",
    "throttled",
    "refused_quota",
    "refused_throttle",
    "refused_concurrency",
    "refused_capacity",
    "slo_met",
    "slo_counted",
    "tokens_requested",
    "tokens_served",
    "tokens_refused",
    "tokens_throttled",
    "input_miss_tokens",
    "input_hit_tokens",
    "output_tokens",
    "revenue_topups",
    "api_list_value",
    "abandoned",
    "tokens_abandoned",
    "refused_window",
    "deferred",
    "peak_extra_units",
)
(
    R_REQ,
    R_SERVED,
    R_THR,
    R_RQ,
    R_RT,
    R_RC,
    R_RCAP,
    R_MET,
    R_CNT,
    R_TREQ,
    R_TSRV,
    R_TREF,
    R_TTHR,
    R_MISS,
    R_HIT,
    R_OUT,
    R_TOPUP,
    R_API,
    R_ABN,
    R_TABN,
    R_RW,
    R_DEF,
    R_PEAK,
) = range(len(REQUEST_METRICS))
# order of the per-subscriber month counters passed as one 2-D array
SUB_COUNTERS = (
    "requests",
    "served",
    "throttled",
    "refused",
    "slo_miss",
    "slo_counted",
    "tokens_requested",
    "tokens_served",
    "tokens_throttled",
    "tokens_refused",
    "over_units",
    "topup_spend",
    "abandoned",
    "tokens_abandoned",
)
(
    S_REQ,
    S_SERVED,
    S_THR,
    S_REF,
    S_MISS,
    S_CNT,
    S_TREQ,
    S_TSRV,
    S_TTHR,
    S_TREF,
    S_OVER,
    S_SPEND,
    S_ABN,
    S_TABN,
) = range(len(SUB_COUNTERS))
# order of the hourly metrics filled here (see sim.engine.metrics.HOURLY)
HOURLY_FILLED = (
    "arrivals",
    "started",
    "wait_sum_s",
    "slo_met",
    "slo_counted",
    "busy_slot_s",
    "offered",
    "offered_slot_s",
    "deferred",
)
H_ARR, H_START, H_WAIT, H_MET, H_CNT, H_BUSY, H_OFF, H_OFF_S, H_DEF = range(len(HOURLY_FILLED))
# order of the SLO counters by month x hour of day x pool x class (see sim.engine.metrics)
SLO_COUNTS = ("offered", "counted", "met")
SLO_OFFERED, SLO_COUNTED, SLO_MET = range(len(SLO_COUNTS))
# order of the latency histograms' metrics (see sim.engine.metrics.LATENCY)
L_WAIT, L_TTFT, L_TPOT, L_E2E = range(4)
MANTISSA_SHIFT = 52 - HIST_MANTISSA_BITS
KEY_MIN = int(np.array([HIST_MIN_S]).view(np.int64)[0] >> MANTISSA_SHIFT)
"""Exponent-and-mantissa key of HIST_MIN_S: bin b >= 1 holds keys KEY_MIN + b - 1."""


@nb.njit(cache=True, inline="always")
def _bin(x, buf, bits, n_bins):
    """Latency bin: the float's exponent and top mantissa bits (log-spaced, no log call)."""
    if x < HIST_MIN_S:
        return 0
    buf[0] = x
    return min(int((bits[0] >> MANTISSA_SHIFT) - KEY_MIN) + 1, n_bins - 1)


@nb.njit(cache=True, inline="always")
def _add_busy(hourly, pl, a, b, h):
    """Add the busy interval [a, b) (s) to pool pl, split exactly across the hours it spans.

    ``h`` is the hour of ``a`` (clipped to the last hour), which the caller already has.
    """
    n_h = hourly.shape[0]
    while a < b and h < n_h:
        edge = (h + 1) * SECONDS_PER_HOUR
        seg_end = b if b < edge else edge
        hourly[h, pl, H_BUSY] += seg_end - a
        a = seg_end
        h += 1


@nb.njit(cache=True)
def tally_day(  # noqa: C901 - a compiled kernel: one pass over the day's requests
    # requests and their outcomes
    t,
    sub,
    model,
    inp,
    cached,
    output,
    outcome,
    pool_used,
    occ,
    start,
    first,
    end,
    decode_start,
    over,
    bought,
    defers,
    t0,
    charge,
    # subscriber state
    sub_plan,
    sub_seg,
    sub_counters,
    tokens_by_model,
    # parameters
    plan_rule,
    plan_class,
    pack_price,
    prefill_rate,
    tpot,
    batched,
    disaggregated,
    slo_ttft,
    slo_tpot,
    slo_wait,
    price_miss,
    price_hit,
    price_out,
    n_class,
    pool_model,
    track_models,
    peak,
    week_offset,
    # accumulators for this month and the whole run
    monthly,
    hist,
    wait_sum,
    slo,
    model_tokens,
    hourly,
):
    """Accumulate one day's requests (see the module docstring).

    Python callers pass every argument by keyword (tests/unit/test_kernel_calls.py checks
    the names): two same-dtype arrays swapped by position would run silently.
    """
    n_h = hourly.shape[0]
    n_bins = hist.shape[-1]
    deferring = defers.shape[0] == t.shape[0]  # (else a one-row placeholder: no windows)
    weighted = charge.shape[0] == t.shape[0]  # (else a placeholder: no peak weights)
    n_week = peak.shape[1]
    buf = np.empty(1, dtype=np.float64)
    bits = buf.view(np.int64)
    for i in range(t.shape[0]):
        s = sub[i]
        p = sub_plan[s]
        g = sub_seg[s]
        oc = outcome[i]
        unc = inp[i] - cached[i]
        tok = inp[i] + output[i]
        monthly[R_REQ, p, g] += 1
        monthly[R_TREQ, p, g] += tok
        sub_counters[s, S_REQ] += 1
        sub_counters[s, S_TREQ] += tok
        if bought[i] > 0:
            spend = bought[i] * pack_price[p]
            sub_counters[s, S_SPEND] += spend
            monthly[R_TOPUP, p, g] += spend
        # every request is offered to its pool (pool_used is the requested pool when refused)
        # in its plan's SLA class, at the hour of day it arrives: the goodput denominator
        pl = pool_used[i]
        ha = min(hour_of(t[i]), n_h - 1)
        hod = ha % HOURS_PER_DAY
        slo[hod, pl, plan_class[p], SLO_OFFERED] += 1
        hourly[ha, pl, H_OFF] += 1
        if oc <= DOWNGRADED or oc == REFUSED_NO_CAPACITY:
            hourly[ha, pl, H_OFF_S] += occ[i]  # work that reached the pool, by arrival hour
        if oc == ABANDONED:  # left the queue: no tokens served, no GPU time, no SLO met
            if plan_rule[p] == RULE_PAYG:  # its admission's over-quota units, less its refund
                sub_counters[s, S_OVER] += over[i]
            sub_counters[s, S_ABN] += 1
            sub_counters[s, S_TABN] += tok
            monthly[R_ABN, p, g] += 1
            monthly[R_TABN, p, g] += tok
            continue
        if deferring and defers[i] > 0:  # held back at a usage window, sent again later
            monthly[R_DEF, p, g] += 1
            hourly[min(hour_of(t0[i]), n_h - 1), pl, H_DEF] += 1
        if oc > DOWNGRADED:
            sub_counters[s, S_REF] += 1
            sub_counters[s, S_TREF] += tok
            monthly[R_TREF, p, g] += tok
            if oc == REFUSED_QUOTA:
                monthly[R_RQ, p, g] += 1
            elif oc == REFUSED_THROTTLE:
                monthly[R_RT, p, g] += 1
            elif oc == REFUSED_CONCURRENCY:
                monthly[R_RC, p, g] += 1
            elif oc == REFUSED_WINDOW:
                monthly[R_RW, p, g] += 1
            else:
                monthly[R_RCAP, p, g] += 1
            continue
        # served
        m = model[i] if oc != DOWNGRADED else pool_model[pl]  # the model that served it
        sub_counters[s, S_SERVED] += 1
        sub_counters[s, S_TSRV] += tok
        monthly[R_SERVED, p, g] += 1
        monthly[R_TSRV, p, g] += tok
        monthly[R_MISS, p, g] += unc
        monthly[R_HIT, p, g] += cached[i]
        monthly[R_OUT, p, g] += output[i]
        monthly[R_API, p, g] += (
            unc * price_miss[m] + cached[i] * price_hit[m] + output[i] * price_out[m]
        ) / TOKENS_PER_MTOK
        if track_models:  # per-subscriber tokens by model feed only the ledger
            tokens_by_model[s, m, 0] += unc
            tokens_by_model[s, m, 1] += cached[i]
            tokens_by_model[s, m, 2] += output[i]
        model_tokens[m, 0] += unc
        model_tokens[m, 1] += cached[i]
        model_tokens[m, 2] += output[i]
        if plan_rule[p] == RULE_PAYG:
            sub_counters[s, S_OVER] += over[i]
        if weighted:  # quota units the hour's weight added (re-sends: at their own hour)
            wk = peak[p, (ha + week_offset) % n_week]  # (ha: the arrival's hour, above)
            monthly[R_PEAK, p, g] += charge[i] - charge[i] / wk
        wait = start[i] - t[i]
        if batched[pl]:  # measured on the replica (sim.engine.batching)
            ttft = first[i] - t[i]
            e2e = end[i] - t[i]
            tpot_i = (end[i] - first[i]) / max(output[i] - 1.0, 1.0)
        else:  # the slot model's closed form
            ttft = wait + unc / prefill_rate[pl]
            tpot_i = tpot[pl]
            e2e = ttft + output[i] * tpot_i
        throttled = oc != SERVED
        if throttled:
            c = n_class
            sub_counters[s, S_THR] += 1
            sub_counters[s, S_TTHR] += tok
            monthly[R_THR, p, g] += 1
            monthly[R_TTHR, p, g] += tok
            met = False
        else:
            c = plan_class[p]
            met = ttft <= slo_ttft[c] and tpot_i <= slo_tpot[c] and wait <= slo_wait[c]
            slo[hod, pl, c, SLO_COUNTED] += 1
            if met:
                slo[hod, pl, c, SLO_MET] += 1
            sub_counters[s, S_CNT] += 1
            monthly[R_CNT, p, g] += 1
            if met:
                monthly[R_MET, p, g] += 1
            else:
                sub_counters[s, S_MISS] += 1
        hist[hod, pl, c, L_WAIT, _bin(wait, buf, bits, n_bins)] += 1
        hist[hod, pl, c, L_TTFT, _bin(ttft, buf, bits, n_bins)] += 1
        hist[hod, pl, c, L_TPOT, _bin(tpot_i, buf, bits, n_bins)] += 1
        hist[hod, pl, c, L_E2E, _bin(e2e, buf, bits, n_bins)] += 1
        wait_sum[pl, c] += wait
        hs = min(hour_of(start[i]), n_h - 1)
        hourly[ha, pl, H_ARR] += 1
        hourly[hs, pl, H_START] += 1
        hourly[hs, pl, H_WAIT] += wait
        if not throttled:
            hourly[hs, pl, H_CNT] += 1
            if met:
                hourly[hs, pl, H_MET] += 1
        # busy slot-seconds, split exactly across the hours the service spans; a batched
        # pool's request holds its place in the batch from admission to its last token (a
        # disaggregated pool's: on its prefill replica to its first token, then on its
        # decode replica from joining that batch to its last token)
        if batched[pl] and disaggregated[pl]:
            _add_busy(hourly, pl, start[i], first[i], hs)
            if output[i] > 1.0:
                hd = min(hour_of(decode_start[i]), n_h - 1)
                _add_busy(hourly, pl, decode_start[i], end[i], hd)
        elif batched[pl]:
            _add_busy(hourly, pl, start[i], end[i], hs)
        else:
            _add_busy(hourly, pl, start[i], start[i] + occ[i], hs)
