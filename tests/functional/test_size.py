"""Sizing GPU pools (sim.capacity.search.size and ``tokensim size``).

Three checks: the search finds what a brute-force sweep over the same counts finds; in the
M/M/c limit its analytic first guess is Erlang C's answer and its simulated answer is within
one replica of it; and questions it cannot answer are refused with exit 2, naming the problem
and writing nothing. A disaggregated pool is sized on both its sides, each on its own targets.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats
from support.scenarios import batched_dict, congested_dict, disaggregated_dict, small_dict

from sim.capacity import output
from sim.capacity.measure import Measurement, measure
from sim.capacity.pools import DECODE, PREFILL, paid_gpus_by_month, pool_specs, with_counts
from sim.capacity.queueing import PoolLoad, SloTarget, parse_slo, smallest_replicas
from sim.capacity.search import SizingError, size
from sim.cli import main, parser
from sim.scenario.loading import validate_data
from sim.scenario.schema import Scenario
from sim.units import SECONDS_PER_DAY

SEED = 7
REPLICATIONS = 3
MAX_REPLICATIONS = 8


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------- 5. search = brute force


def congested_big_pool() -> Scenario:
    """One month of the small scenario whose ``big`` pool needs several two-slot replicas.

    Five times the subscribers and a tenth of the decode speed put about 4.5 Erlangs on the
    busy hour of ``big`` (each request holds a slot ~10 s); one replication takes ~0.3 s.
    """
    return validate_data(congested_dict(5, horizon_months=1))


def verdict(values: np.ndarray, bound: float) -> str:
    """meets / fails / unsure from the 95% Student-t interval of the mean (NaN counts as 0)."""
    v = np.nan_to_num(values, nan=0.0)
    mean = float(v.mean())
    half = 0.0
    if len(v) > 1:
        half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    if mean + half <= bound:
        return "meets"
    return "fails" if mean - half > bound else "unsure"


def judge(ms: list[Measurement], targets: list[SloTarget], pool: int) -> str:
    """Every target on the worst month's busy-hour quantile of the pool."""
    vs = [
        verdict(np.array([np.nanmax(m.metric_values[k, :, pool]) for m in ms]), t.bound_s)
        for k, t in enumerate(targets)
    ]
    return "fails" if "fails" in vs else "unsure" if "unsure" in vs else "meets"


def brute_force(
    s: Scenario, pool: str, targets: list[SloTarget], counts: range
) -> tuple[dict[int, str], dict[int, list[Measurement]]]:
    """The verdict at every count, with replications added while unsure as the search does."""
    specs = pool_specs(s)
    j = next(p.index for p in specs if p.name == pool)
    verdicts, runs = {}, {}
    for n in counts:
        sn = with_counts(s, {pool: (n,) * s.horizon_months}, specs)
        ms: list[Measurement] = []
        while True:
            if ms:
                v = judge(ms, targets, j)
                if v != "unsure" or len(ms) >= MAX_REPLICATIONS:
                    break
            need = REPLICATIONS if not ms else min(len(ms), MAX_REPLICATIONS - len(ms))
            ms += [measure(sn, SEED, r, targets, False) for r in range(len(ms), len(ms) + need)]
        verdicts[n], runs[n] = v, ms
    return verdicts, runs


def size_big(s: Scenario, slos: list[str], max_replicas: int) -> Any:
    """The search on the ``big`` pool with the brute force's seed and replication rule."""
    return size(
        s,
        slos,
        pools=["big"],
        seed=SEED,
        replications=REPLICATIONS,
        max_replications=MAX_REPLICATIONS,
        max_replicas=max_replicas,
    )


def test_size_finds_the_brute_force_answer():
    s = congested_big_pool()
    slos = ["wait_p95<=1.0"]
    targets = [parse_slo(x) for x in slos]
    counts = range(1, 10)
    verdicts, runs = brute_force(s, "big", targets, counts)
    meeting = [n for n in counts if all(verdicts[m] == "meets" for m in counts if m >= n)]
    assert meeting, verdicts
    expected = meeting[0]
    assert 3 <= expected <= 7, verdicts  # the scenario is congested enough to need a search
    assert verdicts[expected - 1] != "meets"

    sz = size_big(s, slos, max_replicas=32)
    (row,) = sz.answer.to_dict("records")
    assert row["replicas"] == expected, (row, verdicts)
    assert row["gpus"] == expected
    assert row["fails_at_replicas"] == expected - 1
    assert sz.schedule["big"] == [{"month": 0, "gpus": expected}]
    # every count the search simulated saw the brute force's replications (common random
    # numbers): same replications, same verdict, same mean
    ev = sz.evaluations
    assert {expected - 1, expected} <= set(ev["replicas"])
    for e in ev.to_dict("records"):
        n = int(e["replicas"])
        assert e["verdict"] == verdicts[n], (n, e["verdict"], verdicts[n])
        assert e["replications"] == len(runs[n])
        mine = np.nanmean([np.nanmax(m.metric_values[0, :, 0]) for m in runs[n]])
        assert e[targets[0].label] == pytest.approx(float(np.nan_to_num(mine)), rel=1e-12)
    # the pool not sized keeps its count
    assert sz.scenario.cluster.pools[1].gpus == s.cluster.pools[1].gpus


def test_size_sizes_a_batched_pool_on_tpot_which_falls_with_replicas():
    """A batched pool's TPOT rises with its batch, so more replicas lower it (the slot model's
    TPOT is a constant no count changes): the search finds the brute force's answer."""
    s = validate_data(batched_dict(90, horizon_months=1, days_per_month=10))
    slos = ["tpot_p95<=0.03"]
    targets = [parse_slo(x) for x in slos]
    counts = range(1, 6)
    verdicts, runs = brute_force(s, "big", targets, counts)
    tpot = [np.mean([np.nanmax(m.metric_values[0, :, 0]) for m in runs[n]]) for n in counts]
    assert all(a > b for a, b in itertools.pairwise(tpot)), tpot
    expected = next(n for n in counts if all(verdicts[m] == "meets" for m in counts if m >= n))
    assert expected > 1, verdicts
    sz = size_big(s, slos, max_replicas=16)
    (row,) = sz.answer.to_dict("records")
    assert row["replicas"] == expected, (row, verdicts)


# ------------------------------------------------------------- 6. the M/M/c limit


def erlang_c(c: int, a: float) -> float:
    """P(wait > 0) in M/M/c at offered load a < c, from the Erlang B recursion."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def erlang_c_servers(lam: float, mu: float, q: float, t: float) -> int:
    """Smallest c with P(W > t) = C(c, a) exp(-(c mu - lam) t) <= 1 - q (a = lam / mu)."""
    a = lam / mu
    c = math.floor(a) + 1
    while erlang_c(c, a) * math.exp(-(c * mu - lam) * t) > 1.0 - q:
        c += 1
    return c


def mm_load(lam: float, mu: float, slots: int) -> PoolLoad:
    """An M/M/c pool: Poisson arrivals, exponential service (scv 1), no prefill."""
    return PoolLoad(
        arrival_rate_per_s=lam,
        mean_service_s=1.0 / mu,
        scv_service=1.0,
        prefill_values_s=np.array([0.0]),
        prefill_weights=np.array([1.0]),
        slots_per_replica=slots,
        gpus_per_replica=1,
        tpot_s=0.0,
    )


@pytest.mark.parametrize("slots", [1, 4])
@pytest.mark.parametrize("metric", ["wait", "ttft"])
def test_the_analytic_estimate_is_erlang_c_in_the_mmc_limit(metric: str, slots: int):
    rng = np.random.default_rng(4)
    for _ in range(60):
        lam, mu = float(rng.uniform(0.2, 60.0)), float(rng.uniform(0.2, 3.0))
        q = float(rng.choice([0.5, 0.9, 0.95, 0.99]))
        t = float(rng.uniform(0.01, 3.0)) / mu
        c = erlang_c_servers(lam, mu, q, t)
        got = smallest_replicas(mm_load(lam, mu, slots), [SloTarget(metric, q, t)])
        assert got.replicas == math.ceil(c / slots), (lam, mu, q, t, c, got)


MMC_SUBSCRIBERS = 4000
MMC_SESSIONS_PER_DAY = 86.4
"""With one request per session and flat profiles: 4000 x 86.4 / 86400 s = 4 requests/s."""
MMC_DECODE = 1000.0
"""Output tokens/s of a one-slot replica: a mean of ~1000 tokens holds the slot ~1 s."""
MMC_MEAN_OUTPUT = 1000.0


def mmc_dict() -> dict[str, Any]:
    """A pool of one-slot replicas fed Poisson arrivals with ~exponential service.

    Poisson: one request per session, flat hour and weekday profiles, no activity spells,
    Poisson session starts, near-equal intensities (Gamma shape 1e6), no churn or sign-ups, no
    quota in reach. Exponential service: an empirical output-length table that is the
    exponential quantile function up to p = 0.999 (then linear to its 1 - 1e-5 quantile); one
    input token, uncached, prefilled at 1e9 tokens/s, so TTFT is the queue wait + 1 ns.
    """
    p = np.concatenate([np.linspace(0.0, 0.999, 400), [1.0]])
    q = -MMC_MEAN_OUTPUT * np.log1p(-np.minimum(p, 1.0 - 1e-5))
    serving = {
        "gpu": "g",
        "prefill_tokens_per_s_per_gpu": 1e9,
        "decode_tokens_per_s_per_gpu": MMC_DECODE,
        "batch_slots_per_replica": 1,
        "gpus_per_replica": 1,
    }
    return {
        "name": "mmc",
        "horizon_months": 1,
        "days_per_month": 7,
        "seed": 3,
        "outputs": {"ledger": False, "plots": False},
        "catalog": {
            "gpus": [{"name": "g", "cost_per_hour": 1.0}],
            "models": [
                {
                    "name": "m",
                    "price_input_miss_per_mtok": 1.0,
                    "price_input_hit_per_mtok": 1.0,
                    "price_output_per_mtok": 1.0,
                    "serving": [serving],
                }
            ],
        },
        "plans": [
            {
                "name": "p",
                "price_per_month": 1.0,
                "quota": {"unit": "tokens", "amount": 1e15},
                "models": {"m": 1.0},
            }
        ],
        "segments": [
            {
                "name": "s",
                "plans": ["p"],
                "initial_subscribers": MMC_SUBSCRIBERS,
                "sessions_per_day": MMC_SESSIONS_PER_DAY,
                "requests_per_session": 1.0,
                "hour_profile": [1.0] * 24,
                "activity_sigma": 0.0,
                "arrival_cv": 1.0,
                "intensity_shape": 1e6,
                "input_tokens": {"dist": "empirical", "quantiles": [1, 1]},
                "output_tokens": {
                    "dist": "empirical",
                    "quantiles": q.tolist(),
                    "probs": p.tolist(),
                },
                "cache_hit_share": 0.0,
                "model_preference": {"m": 1.0},
                "value_per_mtok": 1.0,
                "churn_intercept": -30.0,
            }
        ],
        "cluster": {
            "pools": [{"name": "m", "model": "m", "gpu": "g", "gpus": 6}],
            "sla_classes": [{"name": "standard", "priority": 1, "slo": {}}],
        },
    }


def test_size_in_the_mmc_limit_agrees_with_erlang_c():
    """The analytic guess equals Erlang C's answer; the simulated answer is within one replica.

    lambda and mu come from the scenario: 4 requests/s, and a mean service of the output
    table's mean length over the decode rate (~1.0 s), so a = 4 Erlangs. The pilot measures
    the load at the busy hour (the most loaded of 24 hours, ~1% above the mean) and the
    service moments from a sample, so its guess can equal Erlang C's answer only when the
    target is not on the edge of a count: ttft_p95 <= 1.2 s needs 6 servers (p95 wait 0.87 s;
    5 give 2.4 s), and a load or scv a few percent off gives the same answer. The simulated
    answer may differ by one where an interval straddles the bound.
    """
    s = validate_data(mmc_dict())
    lam = MMC_SUBSCRIBERS * MMC_SESSIONS_PER_DAY / SECONDS_PER_DAY
    mean_tokens = s.segments[0].output_tokens.mean()
    mu = MMC_DECODE / mean_tokens
    target = parse_slo("ttft_p95<=1.2")
    c = erlang_c_servers(lam, mu, target.quantile, target.bound_s)
    assert c == 6  # the design above
    exact = smallest_replicas(mm_load(lam, mu, 1), [target])
    assert exact.replicas == c
    assert exact.offered_load_erlangs == pytest.approx(lam / mu, rel=1e-12)

    sz = size(s, [target], seed=SEED, replications=REPLICATIONS)
    (row,) = sz.answer.to_dict("records")
    assert row["analytic_replicas"] == c
    assert row["analytic_offered_load_erlangs"] == pytest.approx(lam / mu, rel=0.03)
    assert abs(row["replicas"] - c) <= 1, row
    assert row["verdict_at_answer"] == "meets"


# ------------------------------------------------------------- 7. refused questions


def has_size_command() -> bool:
    sub = parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return "size" in sub.choices  # type: ignore[attr-defined]


# name -> (SLO expressions, pools, texts the message must contain)
REFUSED: dict[str, tuple[list[str], list[str] | None, list[str]]] = {
    "greater_or_equal": (["ttft_p95>=1"], None, ["--slo", "ttft_p95>=1"]),
    "unknown_metric": (["foo_p95<=1"], None, ["--slo", "foo_p95<=1", "metric"]),
    "negative_bound": (["ttft_p95<=-1"], None, ["--slo", "ttft_p95<=-1", "> 0"]),
    "unknown_pool": (["ttft_p95<=1"], ["nope"], ["--pool", "nope", "big", "small"]),
    # the big pool decodes at 8 slots / 400 tokens/s = 0.02 s per token at every size
    "tpot_below_the_pool's": (["tpot_p95<=0.01"], ["big"], ["unreachable", "big", "tpot"]),
    # the small scenario's prefill alone takes ~0.3 s at the median
    "ttft_below_prefill": (["ttft_p50<=0.01"], None, ["unreachable", "prefill"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_size_refuses_an_unanswerable_question(case: str):
    slos, pools, texts = REFUSED[case]
    log: list[str] = []
    with pytest.raises(SizingError) as e:
        size(validate_data(small_dict()), slos, pools=pools, seed=SEED, log=log.append)
    for text in texts:
        assert text in str(e.value), (text, str(e.value))
    if case != "ttft_below_prefill":  # refused before the pilot: nothing simulated
        assert log == []
    else:  # refused after the pilot, before any search
        assert not any("simulating" in m for m in log), log


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_tokensim_size_exits_2_naming_the_problem_and_writes_nothing(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    if not has_size_command():
        pytest.skip("tokensim has no size command")
    slos, pools, texts = REFUSED[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the default folder would go to ./results
    path = write_yaml(tmp_path / "small.yaml", small_dict())
    out = tmp_path / "sized"
    argv = ["size", str(path), "--out", str(out), "-q", "--seed", str(SEED)]
    for x in slos:
        argv += ["--slo", x]
    for p in pools or []:
        argv += ["--pool", p]
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:"), err
    for text in texts:
        assert text in err, (text, err)
    assert not out.exists()
    assert list(work.iterdir()) == []
    assert "wrote" not in stdout.getvalue()


# ------------------------------------------------------------- by month: a procurement schedule


def growing_big_pool() -> Scenario:
    """Two months of the congested scenario whose demand grows from month 0 to month 1.

    Chat starts with 500 subscribers and signs up 2,000 a month at a constant rate, so the
    busy-hour load of month 1 is well above month 0's.
    """
    d = congested_dict(horizon_months=2)
    chat = d["segments"][0]
    chat["initial_subscribers"] = 500
    chat["acquisition"] = {"model": "constant", "per_month": 2000.0}
    return validate_data(d)


def test_size_by_month_gives_a_schedule_each_month_of_which_is_the_smallest():
    """Each month's count meets its busy-hour target in the final run, one fewer failed.

    The counts become the pool's schedule block (a step where the count changes) and orders
    dated --lead-months earlier; the scenario at the answer carries them.
    """
    from sim.world.build import build

    s = growing_big_pool()
    sz = size(
        s,
        ["wait_p95<=1.0"],
        pools=["big"],
        by_month=True,
        lead_months=2,
        seed=SEED,
        replications=REPLICATIONS,
        max_replications=MAX_REPLICATIONS,
        max_replicas=32,
    )
    rows = sz.answer.sort_values("month").to_dict("records")
    assert [r["month"] for r in rows] == [0, 1]
    counts = [int(r["replicas"]) for r in rows]
    assert counts[1] > counts[0] >= 1, counts  # demand grows, so does the pool
    for r in rows:
        assert r["verdict_at_answer"] == "meets", r
        assert r["fails_at_replicas"] == r["replicas"] - 1, r
    # the schedule block: month 0 and one step where the count changes
    assert sz.schedule["big"] == [
        {"month": 0, "gpus": counts[0]},
        {"month": 1, "gpus": counts[1]},
    ]
    orders = sz.orders[sz.orders["pool"] == "big"].to_dict("records")
    assert [o["order_month"] for o in orders] == [-2, -1]
    assert [o["gpus_added"] for o in orders] == [counts[0], counts[1] - counts[0]]
    # the scenario at the answer pays for exactly these cards in each month
    world = build(sz.scenario)
    assert list(world.pool.gpus_by_month[:, 0]) == counts
    # the search judged month 1 on its own load: month 0's count fails there
    ev = sz.evaluations
    m1 = ev[(ev["month"] == 1) & (ev["replicas"] == counts[1] - 1)]
    assert len(m1)
    assert (m1["verdict"] != "meets").all()


def test_the_pilot_counts_as_the_scenarios_own_count_vector():
    """The pilot is replication 0 of the scenario as given: reused when that is a count vector.

    A scenario already at whole replicas reuses it (one replication fewer is run than the
    evaluations hold); a schedule step or a part replica makes it no count vector of a
    search over the whole horizon.
    """
    from sim.capacity.cells import Cell
    from sim.capacity.search import _given_counts

    s = congested_big_pool()
    specs = pool_specs(s)
    cells = [Cell(pool=specs[0], month=None)]
    assert _given_counts(s, cells, specs) == {"big": (2,)}
    d = small_dict(horizon_months=2)
    d["cluster"]["pools"][0]["schedule"] = [{"month": 1, "gpus": 3}]
    stepped = validate_data(d)
    assert _given_counts(stepped, [Cell(pool=pool_specs(stepped)[0], month=None)], specs) is None
    by_month = [Cell(pool=pool_specs(stepped)[0], month=m) for m in (0, 1)]
    assert _given_counts(stepped, by_month, pool_specs(stepped)) == {"big": (2, 3)}

    # a scenario already at the analytic first guess (5 replicas): its first probe is the
    # pilot's vector, so the pilot's replication is reused and nothing is run twice
    d = small_dict(horizon_months=1)
    d.update({k: v for k, v in s.model_dump(mode="json").items() if k in ("catalog", "segments")})
    d["cluster"]["pools"][0]["gpus"] = 5
    at_guess = validate_data(d)
    sz = size(at_guess, ["wait_p95<=1.0"], pools=["big"], seed=SEED, max_replicas=32)
    assert sz.answer["analytic_replicas"].iloc[0] == 5
    held = sz.evaluations.groupby("evaluation")["replications"].first().sum()
    assert sz.replications_run == held


# ------------------------------------------------------------- the command end to end


def test_tokensim_size_with_scenario_options_writes_its_folder_and_guards_others(
    tmp_path: Path, capsys
):
    """The planner's question as one command: "if subscribers double, how many GPUs?".

    The scenario options apply before sizing (the folder's scenario.yaml has twice the
    subscribers), the folder holds every file, a second run replaces its own folder, and a
    non-empty folder that is not a sizing folder is refused (exit 2) and left as it was.
    """
    d = small_dict(horizon_months=2)
    path = write_yaml(tmp_path / "small.yaml", d)
    out = tmp_path / "sized"
    argv = ["size", str(path), "--slo", "ttft_p95<=3", "--pool", "small", "--out", str(out)]
    argv += ["--demand-scale", "2", "--horizon-months", "1", "--seed", str(SEED), "-q"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "simulated months" in printed
    assert "small: " in printed
    for name in (
        output.SIZE_JSON,
        output.ANSWER_CSV,
        output.EVALUATIONS_CSV,
        output.SCHEDULE_YAML,
        output.SCENARIO_YAML,
        output.SIZE_PNG,
    ):
        assert (out / name).is_file(), name
    sized = yaml.safe_load((out / output.SCENARIO_YAML).read_text())
    assert sized["horizon_months"] == 1
    subs = {g["name"]: g["initial_subscribers"] for g in sized["segments"]}
    assert subs == {g["name"]: 2 * g["initial_subscribers"] for g in d["segments"]}
    summary = json.loads((out / output.SIZE_JSON).read_text())
    assert summary["options"]["demand_scale"] == ["2"]
    assert summary["simulated_months"] == summary["replications_run"] * 1
    assert main(argv) == 0  # its own earlier folder is replaced
    capsys.readouterr()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    argv[argv.index(str(out))] = str(foreign)
    assert main(argv) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


# ------------------------------------------------------------- disaggregated pools: both sides

DISAGG_SUBSCRIBERS = 150
"""Demand multiplier of :func:`disaggregated_dict` for the sizing tests: one replica of either
side collapses (busy-hour TTFT p95 of hours, TPOT p95 of seconds), three of each meet
DISAGG_SLOS (measured with seed 7, 3 replications, 5 days: TTFT p95 3.4-3.7 s with 2 prefill
replicas, 1.77-1.80 s with 3; TPOT p95 0.023-0.026 s with 2 decode replicas, 0.0145 s with 3)."""
DISAGG_DAYS = 5
"""Days of the one-month horizon: a replication takes ~1.5 s at this demand."""
DISAGG_SLOS = ["ttft_p95<=2.5", "tpot_p95<=0.018"]
"""Bounds between the figures at 2 and 3 replicas of each side (DISAGG_SUBSCRIBERS). The TPOT
bound is below the catalog's slot TPOT (8 slots / 400 tokens/s = 0.02 s), which must not
refuse a decode side whose TPOT follows its batch."""
DISAGG_ANSWER = 3
"""Replicas of each side the brute force finds for DISAGG_SLOS."""


def disaggregated(prefill: int, decode: int) -> Scenario:
    """One short month of the small scenario, pool ``big`` on separate prefill and decode
    replicas (``prefill`` and ``decode`` one-GPU replicas), at DISAGG_SUBSCRIBERS demand."""
    d = disaggregated_dict(
        prefill, decode, DISAGG_SUBSCRIBERS, horizon_months=1, days_per_month=DISAGG_DAYS
    )
    return validate_data(d)


def size_disaggregated(s: Scenario, slos: list[str], pools: list[str]) -> Any:
    return size(
        s,
        slos,
        pools=pools,
        seed=SEED,
        replications=REPLICATIONS,
        max_replications=MAX_REPLICATIONS,
        max_replicas=16,
    )


def verdicts_at(s: Scenario, prefill: int, decode: int, slos: list[str]) -> dict[str, str]:
    """Each target's verdict on pool ``big`` at a count of each side, by brute force.

    The search's rule: replications r = 0, 1, ... of the search's seed, added while a verdict
    is unsure (up to MAX_REPLICATIONS), on the worst month's busy-hour quantile.
    """
    targets = [parse_slo(x) for x in slos]
    counts = {f"big:{PREFILL}": (prefill,), f"big:{DECODE}": (decode,)}
    sn = with_counts(s, counts, pool_specs(s))
    ms: list[Measurement] = []
    while True:
        if ms:
            out = {
                t.label: verdict(
                    np.array([np.nanmax(m.metric_values[k, :, 0]) for m in ms]), t.bound_s
                )
                for k, t in enumerate(targets)
            }
            if "unsure" not in out.values() or len(ms) >= MAX_REPLICATIONS:
                return out
        need = REPLICATIONS if not ms else min(len(ms), MAX_REPLICATIONS - len(ms))
        ms += [measure(sn, SEED, r, targets, False) for r in range(len(ms), len(ms) + need)]


def test_size_sizes_both_sides_of_a_disaggregated_pool(tmp_path: Path):
    """``--pool big`` sizes the prefill side on TTFT and the decode side on TPOT.

    Each side's answer meets its own target, and one replica fewer of that side (the other at
    its answer) does not, by brute force; one fewer of the other side leaves it meeting, since
    TTFT comes from the prefill replicas and TPOT from the decode replicas. The returned
    scenario pays for both sides' cards, and the folder's tables and plot cope with the NaN a
    side has for the target that does not judge it.
    """
    from sim.world.build import build

    s = disaggregated(2, 2)
    ttft, tpot = DISAGG_SLOS
    sz = size_disaggregated(s, DISAGG_SLOS, ["big"])
    rows = {r["pool"]: r for r in sz.answer.to_dict("records")}
    assert set(rows) == {"big:prefill", "big:decode"}
    for r in rows.values():
        assert r["replicas"] == DISAGG_ANSWER, r
        assert r["fails_at_replicas"] == DISAGG_ANSWER - 1, r
        assert r["verdict_at_answer"] == "meets", r
        assert r["analytic_replicas"] is None  # no M/G/c guess for one side
    # each side carries the figures of the targets that judge it, NaN for the others
    assert rows["big:prefill"][ttft] <= parse_slo(ttft).bound_s
    assert math.isnan(rows["big:prefill"][tpot])
    assert rows["big:decode"][tpot] <= parse_slo(tpot).bound_s
    assert math.isnan(rows["big:decode"][ttft])
    assert any("big:decode: no analytic estimate" in n for n in sz.notes), sz.notes

    # brute force one replica below each side's answer
    fewer_prefill = verdicts_at(s, DISAGG_ANSWER - 1, DISAGG_ANSWER, DISAGG_SLOS)
    fewer_decode = verdicts_at(s, DISAGG_ANSWER, DISAGG_ANSWER - 1, DISAGG_SLOS)
    assert fewer_prefill[ttft] != "meets", fewer_prefill
    assert fewer_prefill[tpot] == "meets", fewer_prefill
    assert fewer_decode[tpot] != "meets", fewer_decode
    assert fewer_decode[ttft] == "meets", fewer_decode

    # the procurement and the scenario at the answer: both sides' cards
    pool = sz.scenario.cluster.pools[0]
    assert pool.disaggregated is not None
    assert (pool.gpus, pool.disaggregated.decode_gpus) == (DISAGG_ANSWER, DISAGG_ANSWER)
    assert sz.schedule == {
        "big:prefill": [{"month": 0, "gpus": DISAGG_ANSWER}],
        "big:decode": [{"month": 0, "gpus": DISAGG_ANSWER}],
    }
    assert sorted(sz.orders["pool"]) == ["big:decode", "big:prefill"]
    assert build(sz.scenario).pool.gpus_by_month[0, 0] == 2 * DISAGG_ANSWER
    assert sz.scenario.cluster.pools[1] == s.cluster.pools[1]  # not sized, as it was

    out = output.write_size(sz, tmp_path / "sized", {"slo": DISAGG_SLOS})
    assert (out / output.SIZE_PNG).is_file()
    lines = output.answer_lines(sz)
    assert any(x.startswith("  big:prefill: 3 replicas") and "tpot" not in x for x in lines)
    assert any(x.startswith("  big:decode: 3 replicas") and "ttft" not in x for x in lines)


def test_a_ttft_target_leaves_the_decode_side_as_given():
    """With no TPOT or end-to-end target nothing judges the decode side: it keeps its cards
    (and the notes say so), and only the prefill side is searched."""
    s = disaggregated(2, 4)
    sz = size_disaggregated(s, ["ttft_p95<=2.5"], ["big"])
    (row,) = sz.answer.to_dict("records")
    assert row["pool"] == "big:prefill"
    assert row["replicas"] == DISAGG_ANSWER, row
    assert set(sz.evaluations["pool"]) == {"big:prefill"}
    assert set(sz.schedule) == {"big:prefill"}
    pool = sz.scenario.cluster.pools[0]
    assert pool.disaggregated is not None
    assert pool.gpus == DISAGG_ANSWER
    assert (pool.disaggregated.decode_gpus, pool.disaggregated.decode_schedule) == (4, [])
    assert any(n.startswith("big:decode: not sized") and "4 GPUs" in n for n in sz.notes)


def test_size_pool_names_a_disaggregated_pool_or_one_side():
    """``--pool big:decode`` sizes the decode side only, the prefill side keeps its cards even
    under a TTFT target; ``--pool big`` means both (the test above); an unknown name is refused
    naming every pool and side, and a side no target judges is refused before any simulation."""
    s = disaggregated(3, 2)
    log: list[str] = []
    with pytest.raises(SizingError) as e:
        size(s, DISAGG_SLOS, pools=["nope"], seed=SEED, log=log.append)
    for text in ("--pool", "nope", "big", "big:prefill", "big:decode", "small"):
        assert text in str(e.value), (text, str(e.value))
    with pytest.raises(SizingError) as e:
        size(s, ["ttft_p95<=2.5"], pools=["big:decode"], seed=SEED, log=log.append)
    assert "no target judges big:decode" in str(e.value)
    assert log == []  # refused before the pilot

    sz = size_disaggregated(s, DISAGG_SLOS, ["big:decode"])
    (row,) = sz.answer.to_dict("records")
    assert row["pool"] == "big:decode"
    assert row["replicas"] == DISAGG_ANSWER, row
    assert row["fails_at_replicas"] == DISAGG_ANSWER - 1, row
    pool = sz.scenario.cluster.pools[0]
    assert pool.disaggregated is not None
    assert (pool.gpus, pool.disaggregated.decode_gpus) == (3, DISAGG_ANSWER)


def test_with_counts_puts_each_sides_counts_in_its_own_fields():
    """A disaggregated pool is two specs with the pool's index; counts by month of the prefill
    side become the pool's gpus and schedule, the decode side's its decode_gpus and
    decode_schedule (in cards: replicas x gpus_per_replica), and read back as the same counts.
    """
    from sim.capacity.cells import Cell
    from sim.capacity.search import _given_counts
    from sim.world.build import build

    gpus_per_replica = 2
    d = disaggregated_dict(2, 4, horizon_months=3)
    d["catalog"]["models"][0]["serving"][0]["gpus_per_replica"] = gpus_per_replica
    s = validate_data(d)
    specs = pool_specs(s)
    assert [(p.name, p.index, p.part) for p in specs] == [
        ("big:prefill", 0, PREFILL),
        ("big:decode", 0, DECODE),
        ("small", 1, None),
    ]
    assert [p.pool for p in specs] == ["big", "big", "small"]
    assert all(p.gpus_per_replica == gpus_per_replica for p in specs[:2])
    # the scenario's own counts, and with_counts of them is the scenario itself
    by_month = [Cell(pool=p, month=m) for p in specs[:2] for m in range(3)]
    own = _given_counts(s, by_month, specs)
    assert own == {"big:prefill": (1, 1, 1), "big:decode": (2, 2, 2)}
    assert with_counts(s, own, specs).digest() == s.digest()

    counts = {"big:prefill": (1, 2, 2), "big:decode": (2, 2, 3)}
    sc = with_counts(s, counts, specs)
    pool = sc.cluster.pools[0]
    assert pool.disaggregated is not None
    assert pool.gpus == 2
    assert [c.model_dump() for c in pool.schedule] == [{"month": 1, "gpus": 4}]
    assert pool.disaggregated.decode_gpus == 4
    assert [c.model_dump() for c in pool.disaggregated.decode_schedule] == [{"month": 2, "gpus": 6}]
    given = s.cluster.pools[0].disaggregated
    assert given is not None
    assert pool.disaggregated.kv_bytes_per_token == given.kv_bytes_per_token
    assert [paid_gpus_by_month(sc, p) for p in specs[:2]] == [[2, 4, 4], [4, 4, 6]]
    assert _given_counts(sc, by_month, specs) == counts
    assert list(build(sc).pool.gpus_by_month[:, 0]) == [6, 8, 10]  # both sides' cards
    # one side only: the other keeps its fields
    decode_only = with_counts(sc, {"big:decode": (1, 1, 1)}, specs).cluster.pools[0]
    assert decode_only.disaggregated is not None
    assert (decode_only.gpus, decode_only.schedule) == (pool.gpus, pool.schedule)
    assert (decode_only.disaggregated.decode_gpus, decode_only.disaggregated.decode_schedule) == (
        2,
        [],
    )
