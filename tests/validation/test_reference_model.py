"""The fast engine against the plain per-request SimPy reference model (support/reference_model).

Both models run the same small, loaded scenario (one 30-day billing month, a cluster slowed
down so that the pools run at 50-80% mean utilisation and queue at the peak hours), with
acquisition switched off and churn intercepts at -20, so that both keep the same subscribers
(the reference model implements neither churn nor acquisition, and checks that churn is
negligible). Their outputs are compared over several seeds with a statistical criterion: the
difference of the means must lie within ``Z`` standard errors of that difference plus
``FLOOR`` of the mean (the floor keeps metrics with almost no variance from false alarms).

The comparisons are *paired*: each engine run's initial population (segments, plans, Gamma
intensities, billing phases) is imposed on one reference run, which draws everything else
(sessions, arrival times, tokens, models, queues) with its own generator. This removes the
between-population noise that dominates totals and loads (7-12% per run here, against 3-5%
for the paired differences) and leaves the differences that matter. The population draw
itself is checked separately. Marked ``slow``: the same comparison on 48 seeds (detects 5%
errors in serving speed or quota), and one with fully independent runs (each model draws its
own population too).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from support.reference_model import InitialPopulation, ReferenceModel, Totals, run_reference
from support.scenarios import small_dict

from sim.engine.lifecycle import initial_population
from sim.engine.population import Population
from sim.engine.replication import Replication, ReplicationResult
from sim.scenario.loading import validate_data
from sim.world.arrays import World
from sim.world.build import build

Z = 3.5
"""Allowed difference of means, in standard errors of the difference: ~3, widened a little
because each test compares about ten metrics estimated from 12 seeds (a Student t with 11
degrees of freedom exceeds 3.5 with probability 0.5%; mean waits are skewed)."""
FLOOR = 0.01
"""Allowed difference relative to the larger of the two means, on top of Z standard errors.

With Z and FLOOR as set, resampling 12 of 100-140 paired seeds raised a false alarm in ~1.5%
of the draws per test; a reference serving 20% slower fails by 20 standard errors."""
SEEDS = range(1, 13)
REFERENCE_SEED = 10_000
"""Reference runs use seeds REFERENCE_SEED + engine seed: both models draw independently."""

Metrics = dict[str, float]


# ---------------------------------------------------------------------------- scenarios


def loaded_scenario(throttle: bool) -> dict:
    """The small scenario (support/scenarios), loaded: 1 month, slow GPUs, fixed population.

    chat (80 subscribers) is on a 300k-token plan with ``cutoff`` (or, with ``throttle``, a
    slow lane with a 5-minute minimum gap, deprioritised); coder (16) is on a 1.5M-token
    ``payg`` plan; each segment is offered one plan. GPUs are hundreds of times slower than the
    catalog's so that ~650 requests a day load 6 + 4 slots to ~55% (~72% from 08:00 to 21:00,
    ~30% at night). With ``throttle``, coders get a ``premium`` SLA class that ranks before
    ``standard`` and chat a weekday profile, so three queue priorities and the weekday weights
    are exercised.

    Activity is low from 21:00 to 07:00 so that the queues drain before midnight: the engine
    serves requests still queued at the end of a day before the next day's arrivals (a
    documented approximation, docs/model.md), which with busy evenings would shorten the slow
    lane's waits by ~13% and lengthen the premium ones by ~7% (measured over 100 seeds) and
    make this comparison test that approximation rather than the exact semantics.
    """
    d = small_dict(horizon_months=1, days_per_month=30)
    big, small = d["catalog"]["models"]
    big["serving"][0].update(
        prefill_tokens_per_s_per_gpu=8.0,
        decode_tokens_per_s_per_gpu=1.6,
        batch_slots_per_replica=3,
    )
    small["serving"][0].update(
        prefill_tokens_per_s_per_gpu=9.5,
        decode_tokens_per_s_per_gpu=1.9,
        batch_slots_per_replica=4,
    )
    lite, pro = d["plans"]
    lite["quota"]["amount"] = 300_000
    pro["quota"]["amount"] = 1_500_000
    chat, coder = d["segments"]
    off = {"model": "constant", "per_month": 0}
    chat.update(plans=["lite"], initial_subscribers=80, acquisition=off, churn_intercept=-20.0)
    coder.update(plans=["pro"], initial_subscribers=16, acquisition=off, churn_intercept=-20.0)
    # busy 07:00-21:00, quiet nights: queues drain before midnight (see the docstring)
    chat["hour_profile"] = [0.4] * 7 + [1.2] * 14 + [0.4] * 3
    coder["hour_profile"] = [0.6] * 7 + [1.2] * 14 + [0.6] * 3
    d["cluster"]["pools"][0]["gpus"] = 2
    d["cluster"]["pools"][1]["gpus"] = 1
    if throttle:
        lite["on_exhaustion"] = {"rule": "throttle", "mode": "slow_lane", "min_gap_s": 300.0}
        pro["sla_class"] = "premium"
        d["cluster"]["sla_classes"].append({"name": "premium", "priority": 0})
        chat["weekday_profile"] = [1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5]
        d["start_weekday"] = 3
    return d


# ---------------------------------------------------------------------------- metrics


def engine_metrics(r: ReplicationResult) -> Metrics:
    """The compared quantities from an engine replication (whole horizon)."""
    w, a = r.world, r.acc
    hours = w.horizon_days * 24
    tot = {k: float(v.sum()) for k, v in a.monthly.items()}
    waits = a.wait_sum.sum(axis=0)  # [pool, class]
    counts = a.hist[..., 0, :].sum(axis=(0, 1, 4), dtype=np.int64)  # [pool, class]
    busy = a.hourly["busy_slot_s"][:hours].sum(axis=0)
    capacity = a.hourly["slots"][:hours].sum(axis=0) * 3600.0
    return _metrics(w, tot, waits, counts, busy, capacity)


def reference_metrics(world: World, t: Totals) -> Metrics:
    """The same quantities from a reference run."""
    tot = {
        "requests": t.requests,
        "served": t.served,
        "throttled": t.throttled,
        "refused_quota": t.refused_quota,
        "refused_throttle": t.refused_throttle,
        "tokens_served": t.tokens_served,
        "exhausted": t.exhausted,
        "submonths": t.submonths,
        "revenue_overage": t.revenue_overage,
    }
    return _metrics(world, tot, t.wait_sum, t.wait_n, t.busy_s, t.capacity_s)


def _metrics(w: World, tot, waits, counts, busy, capacity) -> Metrics:
    m = {
        k: float(tot[k])
        for k in (
            "requests",
            "served",
            "refused_quota",
            "refused_throttle",
            "throttled",
            "tokens_served",
            "revenue_overage",
        )
    }
    m["exhausted_share"] = tot["exhausted"] / tot["submonths"]
    m["wait_mean_s"] = float(waits.sum() / counts.sum())
    for c, name in enumerate([*w.cls.names, "throttled"]):
        n = counts[:, c].sum()
        m[f"wait_mean_s.{name}"] = float(waits[:, c].sum() / n) if n else math.nan
    m["utilisation"] = float(busy.sum() / capacity.sum())
    for j, name in enumerate(w.pool.names):
        m[f"utilisation.{name}"] = float(busy[j] / capacity[j])
    return m


# ---------------------------------------------------------------------------- runs


def as_initial(pop: Population) -> InitialPopulation:
    """An engine population as the reference's InitialPopulation (valid with no switching)."""
    n = pop.n
    return InitialPopulation(
        seg=pop.seg[:n].copy(),
        plan=pop.plan[:n].copy(),
        intensity=pop.intensity[:n].copy(),
        phase=-pop.join_day[:n].copy(),  # initial subscribers joined -phase days before t=0
    )


def engine_run(world: World, seed: int) -> tuple[Metrics, InitialPopulation]:
    """One engine replication, and the population it started from (to impose on the reference)."""
    rep = Replication(world, seed)
    result = rep.run()
    assert rep.pop.n == world.seg.initial.sum(), "the population must stay fixed"
    return engine_metrics(result), as_initial(rep.pop)


def paired_runs(world: World, seeds: range) -> tuple[list[Metrics], list[Metrics]]:
    """Engine runs, and reference runs on the engine runs' initial populations."""
    eng, ref = [], []
    for seed in seeds:
        m, start = engine_run(world, seed)
        eng.append(m)
        ref.append(reference_metrics(world, run_reference(world, REFERENCE_SEED + seed, start)))
    return eng, ref


# ---------------------------------------------------------------------------- the criterion


def agreement(
    eng: list[Metrics], ref: list[Metrics], keys: list[str], paired: bool
) -> tuple[bool, str]:
    """Whether every metric agrees within Z standard errors plus FLOOR; and a table to print.

    Paired runs use the standard error of the mean of the per-seed differences; independent
    runs the combined standard error sqrt(se_engine^2 + se_reference^2).
    """
    lines = [f"{'metric':28s} {'engine':>12s} {'reference':>12s} {'diff':>8s} {'z':>6s}  ok"]
    all_ok = True
    for k in keys:
        e = np.array([m[k] for m in eng])
        r = np.array([m[k] for m in ref])
        diff = float(e.mean() - r.mean())
        if paired:
            se = float(np.std(e - r, ddof=1) / math.sqrt(len(e)))
        else:
            se = math.sqrt(e.var(ddof=1) / len(e) + r.var(ddof=1) / len(r))
        scale = max(abs(e.mean()), abs(r.mean()))
        ok = abs(diff) <= Z * se + FLOOR * scale
        all_ok &= ok
        rel = diff / scale if scale else 0.0
        z = diff / se if se else 0.0
        verdict = "ok" if ok else "NO"
        lines.append(f"{k:28s} {e.mean():12.6g} {r.mean():12.6g} {rel:+8.2%} {z:+6.2f}  {verdict}")
    return all_ok, "\n".join(lines)


def check_loaded(eng: list[Metrics]) -> None:
    """The scenario's premise: pools 50-80% busy on average, and requests really queue."""
    for key in ("utilisation.big", "utilisation.small"):
        u = np.mean([m[key] for m in eng])
        assert 0.5 < u < 0.8, f"{key} = {u:.3f}: the test scenario should load the pool"
    wait = np.mean([m["wait_mean_s"] for m in eng])
    assert wait > 60.0, f"mean wait {wait:.0f} s: requests should queue at the peak hours"


CUTOFF_KEYS = [
    "requests",
    "tokens_served",
    "refused_quota",
    "exhausted_share",
    "revenue_overage",
    "wait_mean_s",
    "utilisation.big",
    "utilisation.small",
]
THROTTLE_KEYS = [
    "requests",
    "tokens_served",
    "throttled",
    "refused_throttle",
    "exhausted_share",
    "wait_mean_s.premium",
    "wait_mean_s.standard",
    "wait_mean_s.throttled",
    "utilisation",
]


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("throttle", "keys"), [(False, CUTOFF_KEYS), (True, THROTTLE_KEYS)], ids=["cutoff", "throttle"]
)
def test_engine_matches_reference_on_the_same_subscribers(throttle: bool, keys: list[str]):
    """Paired: engine and reference agree on requests, tokens, quota outcomes, waits, load.

    ``cutoff``: cut-off (chat) and pay-as-you-go (coder) plans, one SLA class; checks refused
    requests, exhaustion share, overage revenue, mean wait and each pool's utilisation.
    ``throttle``: slow lane (chat) behind a premium class (coder) and the standard class;
    checks throttled and gap-refused requests and the mean wait of each of the three queues.
    """
    world = build(validate_data(loaded_scenario(throttle)))
    eng, ref = paired_runs(world, SEEDS)
    check_loaded(eng)
    ok, table = agreement(eng, ref, keys, paired=True)
    print(f"\n{'throttle' if throttle else 'cutoff'}, {len(SEEDS)} paired seeds\n{table}")
    assert ok, table


def test_initial_population_is_drawn_like_the_reference():
    """The engine's t=0 population has the reference's distributions (intensity, phase, plan).

    Intensities are Gamma with mean 1 and the segment's shape; billing phases uniform on
    0..days_per_month-1. Two-sample Kolmogorov-Smirnov tests over 20 seeds (no engine run
    needed: the populations are drawn when a replication starts).
    """
    world = build(validate_data(loaded_scenario(False)))
    eng_pop = []
    for seed in range(20):
        rep = Replication(world, seed)
        initial_population(world, rep.pop, rep.acc, rep.streams)  # as run() starts
        eng_pop.append(as_initial(rep.pop))
    ref_subs = [s for seed in range(20) for s in ReferenceModel(world, REFERENCE_SEED + seed).subs]
    dpm = world.days_per_month
    for g in range(len(world.seg.names)):
        e_int = np.concatenate([p.intensity[p.seg == g] for p in eng_pop])
        r_int = np.array([s.intensity for s in ref_subs if s.seg == g])
        assert stats.ks_2samp(e_int, r_int).pvalue > 1e-3, f"intensity of segment {g}"
        e_phase = np.concatenate([p.phase[p.seg == g] for p in eng_pop])
        r_phase = np.array([dpm - s.renew_day for s in ref_subs if s.seg == g])
        assert e_phase.min() >= 0
        assert e_phase.max() < dpm
        assert stats.ks_2samp(e_phase, r_phase).pvalue > 1e-3, f"phase of segment {g}"
        e_plan = np.concatenate([p.plan[p.seg == g] for p in eng_pop])
        r_plan = np.array([s.plan for s in ref_subs if s.seg == g])
        assert set(e_plan.tolist()) == set(r_plan.tolist())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["segments"][0].update(churn_intercept=-2.6), "churn"),
        (
            lambda d: d["segments"][1].update(acquisition={"model": "constant", "per_month": 5}),
            "acquisition",
        ),
        (
            lambda d: d["plans"][0].update(
                on_exhaustion={"rule": "topup", "pack_units": 1e5, "pack_price": 5.0}
            ),
            "only cutoff",
        ),
        (lambda d: d["plans"][1].update(concurrency_limit=2), "concurrency"),
        (lambda d: d["cluster"]["pools"][0].update(schedule=[{"month": 1, "gpus": 4}]), "slots"),
    ],
    ids=["churn", "acquisition", "topup", "concurrency", "schedule"],
)
def test_reference_refuses_what_it_does_not_model(change, reason: str):
    """The reference raises instead of silently mis-modelling worlds outside its scope."""
    d = loaded_scenario(throttle=False)
    d["horizon_months"] = 2
    ReferenceModel(build(validate_data(d)), seed=0)  # the comparison scenario is in scope
    change(d)
    with pytest.raises(NotImplementedError, match=reason):
        ReferenceModel(build(validate_data(d)), seed=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("throttle", "keys"), [(False, CUTOFF_KEYS), (True, THROTTLE_KEYS)], ids=["cutoff", "throttle"]
)
def test_engine_matches_reference_many_seeds(throttle: bool, keys: list[str]):
    """The quick test with 48 paired seeds: standard errors half as large (~1 min each)."""
    world = build(validate_data(loaded_scenario(throttle)))
    seeds = range(101, 149)
    eng, ref = paired_runs(world, seeds)
    ok, table = agreement(eng, ref, keys, paired=True)
    print(f"\n{'throttle' if throttle else 'cutoff'}, {len(seeds)} paired seeds\n{table}")
    assert ok, table


@pytest.mark.slow
@pytest.mark.parametrize(
    ("throttle", "keys"), [(False, CUTOFF_KEYS), (True, THROTTLE_KEYS)], ids=["cutoff", "throttle"]
)
def test_engine_matches_reference_independent_runs(throttle: bool, keys: list[str]):
    """Unpaired: each model also draws its own population; 24 seeds each, combined SE.

    Between-population noise (Gamma intensities) makes this a coarser check (~3x the standard
    error of the paired test) of the same quantities, with nothing shared between the models.
    """
    world = build(validate_data(loaded_scenario(throttle)))
    seeds = range(201, 225)
    eng = [engine_run(world, s)[0] for s in seeds]
    ref = [reference_metrics(world, run_reference(world, REFERENCE_SEED + s)) for s in seeds]
    check_loaded(eng)
    ok, table = agreement(eng, ref, keys, paired=False)
    print(f"\n{'throttle' if throttle else 'cutoff'}, {len(seeds)} independent seeds\n{table}")
    assert ok, table
