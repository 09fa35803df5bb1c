#!/usr/bin/env python3
"""Speed benchmark: tokensim against the plain SimPy reference model of the TPD workload.

TPD is the token-package demand workload defined in ``../shared/bench/params.py`` (next to
the repository). Its plain SimPy model (``baseline_simpy.py``, one process per subscriber and
per request) is the yardstick; the product runs the same workload as
``scenarios/tpd-10k-30d.yaml``, scaled in code to other sizes.

For every seed (and repeat) the two run alternating, plain then product, each in a fresh
Python subprocess, so that machine noise hits both alike and the whole-process time includes
interpreter start and imports. Before timing, one small untimed run of each warms the
product's numba cache and the operating system's file cache. Each subprocess prints one JSON
line with its engine time (plain: ``wall``, product: ``ReplicationResult.engine_s``), its peak
resident memory and its KPIs. The report gives throughput, memory, the paired ratios
plain/product of engine and whole-process time with their medians, and both sets of KPIs side
by side with a statistical agreement check.

    .venv/bin/python benchmarks/bench_tpd.py --n 10000 --days 30 --seeds 1 2 3 --repeats 1

This is a benchmark, not a test: it asserts nothing and always exits 0 when the runs succeed.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import numbers
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_TPD_DIR = REPO.parent / "shared" / "bench"
DEFAULT_SCENARIO = REPO / "scenarios" / "tpd-10k-30d.yaml"
MONTH_DAYS = 30
"""TPD's billing month (days); the product's horizon is a whole number of these."""
WARMUP_PRODUCT_N = 200
WARMUP_PLAIN_N = 100
WARMUP_PLAIN_DAYS = 1
ONE_SEED_TOLERANCE = 0.02
"""With one seed there is no noise estimate: KPIs agree when within 2% of each other."""

# Common KPI names -> (label, format). Both models' outputs are mapped onto these names.
KPI_ROWS: list[tuple[str, str, str]] = [
    ("requests", "requests", ",.0f"),
    ("admitted", "admitted / served", ",.0f"),
    ("rejected_cutoff", "rejected by cut-off", ",.0f"),
    ("rejected_throttle", "rejected by throttle", ",.0f"),
    ("tokens_served", "tokens served", ",.4g"),
    ("revenue_fees", "revenue: fees (USD)", ",.0f"),
    ("revenue_payg", "revenue: payg/overage (USD)", ",.1f"),
    ("revenue_total", "revenue: total (USD)", ",.0f"),
    ("exhaustion_rate", "exhaustion rate", ".5f"),
    ("wait_mean_s", "mean wait (s)", ".4f"),
    ("wait_p95_s", "p95 wait (s)", ".3f"),
    ("utilisation", "utilisation", ".5f"),
    ("churn_rate", "churn rate", ".5f"),
    ("renewals", "renewal decisions", ",.0f"),
    ("churned", "churned", ",.0f"),
    ("active_end", "active subscribers at end", ",.0f"),
    ("subscriber_months", "subscriber-months", ",.0f"),
]

KNOWN_DIFFERENCES = [
    "churn: the product's renewal churn is a logit calibrated to TPD's linear rule "
    "(base + 0.10 exhausted + 0.30 slow share), so churn rate and active subscribers at the "
    "end may differ slightly;",
    "churn: the product counts a served request as slow (an SLO miss) only in its SLA class, "
    "so requests admitted over quota on the throttle lane do not feed the slow share as in TPD;",
    "initial segment counts are exact shares of N in the product, a multinomial draw in TPD;",
    "token lengths are rounded to whole tokens (at least 1) in the product, real-valued in TPD;",
    "payg overage is billed per token at admission in TPD, at the close of the billing month in "
    "the product (whole 1-token blocks; months open at the horizon are billed at the end);",
    "utilisation: the product counts busy slot-seconds inside the horizon, TPD the full service "
    "time of every admitted request (including service running past the end);",
    "p95 wait: TPD reads it from 0.05 s linear bins, the product from log bins (~1.2% wide).",
]


# --------------------------------------------------------------------------- helpers


def _peak_rss_mib() -> float:
    """Peak resident set size of this process (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, else KiB


def _rel(p: Path) -> str:
    """A path relative to the repository root, for output that may be committed."""
    return os.path.relpath(p, REPO)


def _numba_cache_stats() -> dict[str, int]:
    """Numba cache hits and misses (compilations) of the product's kernels in this process."""
    from numba.core.dispatcher import Dispatcher

    seen: dict[int, Any] = {}
    for name, mod in list(sys.modules.items()):
        if name == "sim" or name.startswith("sim."):
            for obj in vars(mod).values():
                if isinstance(obj, Dispatcher):
                    seen[id(obj)] = obj
    hits = sum(sum(d.stats.cache_hits.values()) for d in seen.values())
    misses = sum(sum(d.stats.cache_misses.values()) for d in seen.values())
    return {"kernels": len(seen), "cache_hits": hits, "cache_misses": misses}


def _load_params(tpd_dir: Path) -> Any:
    """Import TPD's ``params`` module from ``tpd_dir``."""
    if str(tpd_dir) not in sys.path:
        sys.path.insert(0, str(tpd_dir))
    import params

    return params


# --------------------------------------------------------------------------- workers


def worker_plain(tpd_dir: Path, n: int, days: int, seed: int) -> dict[str, Any]:
    """Run the plain SimPy model once in this process and return its measurements.

    ``params.kpis`` is wrapped (not changed) to record the raw counts the model passes to it,
    notably the number of subscriber-months, which its KPI dictionary does not carry.
    """
    t0 = time.perf_counter()
    params = _load_params(tpd_dir)
    raw: dict[str, float] = {}
    kpis = params.kpis

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = inspect.signature(kpis).bind(*args, **kwargs).arguments
        raw.update({k: float(v) for k, v in bound.items() if isinstance(v, numbers.Real)})
        return kpis(*args, **kwargs)

    params.kpis = spy
    import baseline_simpy

    import_s = time.perf_counter() - t0
    c0 = time.process_time()
    out = baseline_simpy.run(n, days, seed)
    engine_cpu_s = time.process_time() - c0
    submonths = raw.get("n_submonths", float(out["active_end"] + out["renewals"]))
    kpi = {
        "requests": out["requests"],
        "admitted": out["admitted"],
        "rejected_cutoff": out["rejected_cutoff"],
        "rejected_throttle": out["rejected_throttle"],
        "tokens_served": out["tokens_served"],
        "revenue_fees": out["revenue_fees"],
        "revenue_payg": out["revenue_payg"],
        "revenue_total": out["revenue"],
        "exhaustion_rate": out["exhaustion_rate"],
        "wait_mean_s": out["wait_mean"],
        "wait_p95_s": out["wait_p95"],
        "utilisation": out["utilisation"],
        "churn_rate": out["churn_rate"],
        "renewals": out["renewals"],
        "churned": out["churned"],
        "active_end": out["active_end"],
        "subscriber_months": submonths,
    }
    return {
        "model": "plain",
        "n": n,
        "days": days,
        "seed": seed,
        "servers": out["servers"],
        "engine_s": out["wall"],
        "engine_cpu_s": engine_cpu_s,
        "import_s": import_s,
        "requests": out["requests"],
        "subscriber_months": submonths,
        "peak_rss_mib": _peak_rss_mib(),
        "kpis": {k: float(v) for k, v in kpi.items()},
        "raw": {"output": out, "kpis_arguments": raw},
    }


def scale_scenario(scenario: Any, n: int, days: int, gpus: int) -> Any:
    """Scale the TPD scenario to ``n`` subscribers and ``days`` days (in place; returned).

    Every segment's initial subscribers and monthly sign-ups are multiplied by n / N0, where
    N0 is the scenario's total initial subscribers (10,000 in tpd-10k-30d.yaml); the first
    pool gets ``gpus`` cards (TPD's ``servers_for(n)``).
    """
    if days % scenario.days_per_month:
        raise ValueError(f"days must be a multiple of {scenario.days_per_month}")
    n0 = sum(g.initial_subscribers for g in scenario.segments)
    f = n / n0
    for g in scenario.segments:
        g.initial_subscribers = round(g.initial_subscribers * f)
        g.acquisition.per_month = g.acquisition.per_month * f
    scenario.cluster.pools[0].gpus = gpus
    scenario.horizon_months = days // scenario.days_per_month
    scenario.name = f"tpd-{n}-{days}d"
    return scenario


def worker_product(scenario_path: Path, n: int, days: int, seed: int, gpus: int) -> dict[str, Any]:
    """Run the product once in this process and return its measurements."""
    t0 = time.perf_counter()
    from sim.engine.replication import run_replication
    from sim.results.kpis import replication_kpis
    from sim.scenario.loading import load_scenario
    from sim.world.build import build

    import_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    world = build(scale_scenario(load_scenario(scenario_path), n, days, gpus))
    build_s = time.perf_counter() - t1
    c0 = time.process_time()
    res = run_replication(world, seed, replication=0)
    engine_cpu_s = time.process_time() - c0
    k = replication_kpis(res)
    tot = {name: float(v.sum()) for name, v in res.acc.monthly.items()}
    kpi = {
        "requests": k["requests"],
        "admitted": tot["served"],
        "rejected_cutoff": tot["refused_quota"],
        "rejected_throttle": tot["refused_throttle"],
        "tokens_served": k["tokens_served"],
        "revenue_fees": k["revenue_fees"],
        "revenue_payg": k["revenue_overage"],
        "revenue_total": k["revenue_total"],
        "exhaustion_rate": k["exhausted_share"],
        "wait_mean_s": k["wait_mean_s"],
        "wait_p95_s": k["wait_p95_s"],
        "utilisation": k["gpu_utilisation"],
        # TPD's definition: churned / renewal decisions over the whole run (for one month it
        # equals the product's churn_rate_monthly, a mean of monthly rates)
        "churn_rate": tot["churned"] / tot["renewals"] if tot["renewals"] else math.nan,
        "renewals": tot["renewals"],
        "churned": tot["churned"],
        "active_end": k["subscribers_end"],
        "subscriber_months": float(res.subscriber_months),
    }
    return {
        "model": "product",
        "n": n,
        "days": days,
        "seed": seed,
        "servers": gpus,
        "engine_s": res.engine_s,
        "engine_cpu_s": engine_cpu_s,
        "import_s": import_s,
        "build_s": build_s,
        "requests": res.requests,
        "subscriber_months": res.subscriber_months,
        "peak_rss_mib": _peak_rss_mib(),
        "numba": _numba_cache_stats(),
        "kpis": {key: float(v) for key, v in kpi.items()},
        "raw": {"replication_kpis": k, "monthly_totals": tot},
    }


def worker_main(argv: Sequence[str]) -> int:
    """Entry point of a measurement subprocess: run one model once, print one JSON line."""
    p = argparse.ArgumentParser(prog="bench_tpd.py --worker")
    p.add_argument("--worker", choices=("plain", "product"), required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--tpd-dir", type=Path, required=True)
    p.add_argument("--scenario", type=Path, required=True)
    p.add_argument("--gpus", type=int, required=True)
    a = p.parse_args(argv)
    if a.worker == "plain":
        out = worker_plain(a.tpd_dir, a.n, a.days, a.seed)
    else:
        out = worker_product(a.scenario, a.n, a.days, a.seed, a.gpus)
    print(json.dumps(out, default=float))
    return 0


# --------------------------------------------------------------------------- orchestration


@dataclass
class Config:
    """What the benchmark runs."""

    n: int
    days: int
    seeds: list[int]
    repeats: int
    servers: int
    tpd_dir: Path
    scenario: Path
    python: str = field(default_factory=lambda: sys.executable)


def run_worker(cfg: Config, model: str, n: int, days: int, seed: int) -> dict[str, Any]:
    """Run one measurement subprocess; add its whole-process wall and CPU time.

    A failed product run is tried once more (sim/ may be mid-edit by someone else).
    """
    gpus = cfg.servers if n == cfg.n else _servers(cfg.tpd_dir, n)
    cmd = [cfg.python, str(Path(__file__).resolve()), "--worker", model]
    for flag, value in (
        ("--n", n),
        ("--days", days),
        ("--seed", seed),
        ("--gpus", gpus),
        ("--tpd-dir", cfg.tpd_dir),
        ("--scenario", cfg.scenario),
    ):
        cmd += [flag, str(value)]
    for attempt in range(2 if model == "product" else 1):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
        process_s = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode == 0:
            break
        sys.stderr.write(proc.stdout + proc.stderr)
        _progress(f"{model} run (n={n}, days={days}, seed={seed}) failed (attempt {attempt + 1})")
        time.sleep(5.0)
    else:
        raise SystemExit(f"{model} run (n={n}, days={days}, seed={seed}) failed")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = process_s
    out["load_before"] = load
    out["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def _servers(tpd_dir: Path, n: int) -> int:
    """TPD's cluster size for ``n`` subscribers."""
    return int(_load_params(tpd_dir).servers_for(n))


def machine_info() -> dict[str, Any]:
    """Platform, CPU and package versions (no paths)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("tokensim", "numpy", "simpy", "numba", "pydantic"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "?"
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _finite(x: Any) -> Any:
    """Strict JSON has no NaN or infinity: write null instead."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isfinite(x):
        return None
    return x


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def warm_up(cfg: Config) -> dict[str, Any]:
    """Untimed small runs: compile/load the product's numba cache, warm the file cache."""
    _progress(f"warm-up: product N={WARMUP_PRODUCT_N}, {MONTH_DAYS} days (untimed)")
    digest = sources_digest()
    prod = run_worker(cfg, "product", WARMUP_PRODUCT_N, MONTH_DAYS, 0)
    prod["sim_digest"] = digest
    _progress(f"warm-up: plain N={WARMUP_PLAIN_N}, {WARMUP_PLAIN_DAYS} day (untimed)")
    plain = run_worker(cfg, "plain", WARMUP_PLAIN_N, WARMUP_PLAIN_DAYS, 0)
    return {"product": prod, "plain": plain}


def sources_digest() -> str:
    """Short SHA-256 of the product's sources (sim/*.py), to notice edits during a benchmark."""
    h = hashlib.sha256()
    for f in sorted((REPO / "sim").rglob("*.py")):
        h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def git_state() -> str:
    """The repository's HEAD commit and whether sim/ differs from it (or "unknown")."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sim"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"git {head}" + (", sim/ has uncommitted changes" if dirty else "")


def measure(cfg: Config) -> list[dict[str, Any]]:
    """The timed runs: for each seed and repeat, plain then product, each a fresh process.

    A product run that had to compile a numba kernel (its cache was invalidated, e.g. because
    sim/ was edited after the warm-up) is discarded and run again once; the discarded run is
    kept under ``recompiled_attempt``.
    """
    runs: list[dict[str, Any]] = []
    total = len(cfg.seeds) * cfg.repeats * 2
    for seed in cfg.seeds:
        for rep in range(cfg.repeats):
            for model in ("plain", "product"):
                _progress(
                    f"run {len(runs) + 1}/{total}: {model} N={cfg.n} days={cfg.days} "
                    f"seed={seed} repeat={rep}"
                )
                digest = sources_digest()
                r = run_worker(cfg, model, cfg.n, cfg.days, seed)
                if model == "product" and r["numba"]["cache_misses"]:
                    _progress(f"  numba compiled during the run ({r['engine_s']:.2f} s): run again")
                    digest = sources_digest()
                    again = run_worker(cfg, model, cfg.n, cfg.days, seed)
                    again["recompiled_attempt"] = r
                    r = again
                r["sim_digest"] = digest
                r["repeat"] = rep
                r["order"] = len(runs)
                runs.append(r)
                _progress(
                    f"  engine {r['engine_s']:.2f} s, process {r['process_s']:.2f} s, "
                    f"{r['requests']:,} requests, peak RSS {r['peak_rss_mib']:.0f} MiB"
                )
    return runs


# --------------------------------------------------------------------------- statistics


def t_interval(x: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean, standard error and Student-t half-width (NaN for fewer than two values)."""
    m = statistics.fmean(x)
    if len(x) < 2:
        return m, math.nan, math.nan
    from scipy import stats

    se = statistics.stdev(x) / math.sqrt(len(x))
    return m, se, float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * se


def agree(a: Sequence[float], b: Sequence[float]) -> tuple[bool, float]:
    """Whether two KPI samples over seeds agree, and the tolerance used.

    With two or more values each: |mean difference| <= 2 sqrt(se_a^2 + se_b^2). With one:
    within ONE_SEED_TOLERANCE of the larger magnitude.
    """
    ma, sa, _ = t_interval(a)
    mb, sb, _ = t_interval(b)
    if len(a) >= 2 and len(b) >= 2:
        tol = 2.0 * math.hypot(sa, sb)
    else:
        tol = ONE_SEED_TOLERANCE * max(abs(ma), abs(mb))
    return abs(ma - mb) <= tol, tol


def pair_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair each plain run with the product run of the same seed and repeat; their ratios."""
    by = {(r["model"], r["seed"], r["repeat"]): r for r in runs}
    pairs = []
    for r in runs:
        if r["model"] != "plain":
            continue
        q = by[("product", r["seed"], r["repeat"])]
        pairs.append(
            {
                "seed": r["seed"],
                "repeat": r["repeat"],
                "engine_ratio": r["engine_s"] / q["engine_s"],
                "engine_cpu_ratio": r["engine_cpu_s"] / q["engine_cpu_s"],
                "process_ratio": r["process_s"] / q["process_s"],
            }
        )
    return pairs


def kpi_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per KPI: both models' per-seed values (first repeat), means, intervals and verdict."""
    rows = []
    for key, label, _ in KPI_ROWS:
        vals: dict[str, list[float]] = {}
        for model in ("plain", "product"):
            vals[model] = [r["kpis"][key] for r in runs if r["model"] == model and r["repeat"] == 0]
        ok, tol = agree(vals["plain"], vals["product"])
        pm, _, ph = t_interval(vals["plain"])
        qm, _, qh = t_interval(vals["product"])
        rows.append(
            {
                "kpi": key,
                "label": label,
                "plain": vals["plain"],
                "product": vals["product"],
                "plain_mean": pm,
                "plain_ci95_half": ph,
                "product_mean": qm,
                "product_ci95_half": qh,
                "diff": qm - pm,
                "tolerance": tol,
                "agree": ok,
            }
        )
    return rows


def repeat_consistency(runs: list[dict[str, Any]]) -> list[str]:
    """KPIs that changed between repeats of the same model and seed (should be none)."""
    first = {(r["model"], r["seed"]): r["kpis"] for r in runs if r["repeat"] == 0}
    bad = []
    for r in runs:
        base = first[(r["model"], r["seed"])]
        for k, v in r["kpis"].items():
            same = v == base[k] or (math.isnan(v) and math.isnan(base[k]))
            if not same:
                bad.append(f"{r['model']} seed {r['seed']} repeat {r['repeat']}: {k}")
    return bad


# --------------------------------------------------------------------------- report


def _f(x: float, spec: str) -> str:
    return "nan" if isinstance(x, float) and math.isnan(x) else format(x, spec)


def _median(runs: list[dict[str, Any]], model: str, fn: Callable[[dict[str, Any]], float]) -> float:
    return statistics.median(fn(r) for r in runs if r["model"] == model)


def report(
    cfg: Config, machine: dict[str, Any], warm: dict[str, Any], runs: list[dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The printed report and the summary figures."""
    out: list[str] = []
    w = out.append
    pairs = pair_runs(runs)
    kt = kpi_table(runs)
    n_seeds = len(cfg.seeds)
    v = machine["versions"]
    w("TPD speed benchmark: tokensim (product) vs the plain SimPy reference model")
    w(
        f"workload   TPD, N={cfg.n:,} subscribers, {cfg.days} days, {cfg.servers} servers; "
        f"seeds {' '.join(map(str, cfg.seeds))}; {cfg.repeats} repeat(s)"
    )
    w(
        f"inputs     plain: {_rel(cfg.tpd_dir)}/baseline_simpy.py; product: {_rel(cfg.scenario)}"
        f"{'' if cfg.n == 10_000 and cfg.days == 30 else ' (scaled in code)'}"
    )
    w(f"machine    {machine['cpu']}, {machine['cpus']} CPUs, {machine['platform']}")
    w(
        f"software   Python {machine['python']}, tokensim {v['tokensim']}, numpy {v['numpy']}, "
        f"simpy {v['simpy']}, numba {v['numba']}"
    )
    wp, wq = warm["plain"], warm["product"]
    w(f"product    sim/ sources sha256 {wq['sim_digest']} ({machine['git']})")
    w(
        f"warm-up    untimed: product N={WARMUP_PRODUCT_N}, {MONTH_DAYS} days "
        f"({wq['process_s']:.1f} s; warms the numba cache); plain N={WARMUP_PLAIN_N}, "
        f"{WARMUP_PLAIN_DAYS} day ({wp['process_s']:.1f} s; warms the file cache)"
    )
    w(
        "method     per seed and repeat: plain then product, alternating, each in a fresh "
        "subprocess;"
    )
    w("           engine = simulation only (plain: `wall`, product: `engine_s`); process = whole")
    w("           subprocess (interpreter start, imports, set-up, run, KPIs), timed by the parent")
    w(
        "           engine CPU = CPU seconds of the engine; CPU share = the subprocess's CPU time /"
        " its wall"
    )
    w("           time (below 100%: the machine was busy); load = 1-min load average before it")
    w("")
    w("Runs")
    w(
        f"{'#':>2} {'seed':>4} {'rep':>3} {'model':<7} {'engine s':>9} {'eng CPU s':>9} "
        f"{'process s':>9} {'import s':>8} {'CPU':>4} {'load':>4} {'requests':>10} "
        f"{'sub-mo':>6} {'req/s':>9} {'sub-mo/s':>8} {'RSS MiB':>7}"
    )
    for r in runs:
        share = r["process_cpu_s"] / r["process_s"]
        w(
            f"{r['order']:>2} {r['seed']:>4} {r['repeat']:>3} {r['model']:<7} "
            f"{r['engine_s']:>9.2f} {r['engine_cpu_s']:>9.2f} {r['process_s']:>9.2f} "
            f"{r['import_s']:>8.2f} {share:>4.0%} {r['load_before']:>4.1f} {r['requests']:>10,} "
            f"{r['subscriber_months']:>6,.0f} {r['requests'] / r['engine_s']:>9,.0f} "
            f"{r['subscriber_months'] / r['engine_s']:>8,.0f} {r['peak_rss_mib']:>7.0f}"
        )
    w("(req/s and sub-mo/s per engine second)")
    w("")
    w("Paired ratios plain / product (> 1: the product is faster)")
    w(f"{'seed':>4} {'rep':>3} {'engine':>10} {'engine CPU':>10} {'process':>10}")
    for p in pairs:
        w(
            f"{p['seed']:>4} {p['repeat']:>3} {p['engine_ratio']:>9.1f}x "
            f"{p['engine_cpu_ratio']:>9.1f}x {p['process_ratio']:>9.1f}x"
        )
    eng = statistics.median(p["engine_ratio"] for p in pairs)
    eng_cpu = statistics.median(p["engine_cpu_ratio"] for p in pairs)
    proc = statistics.median(p["process_ratio"] for p in pairs)
    w(f"{'median':>8} {eng:>9.1f}x {eng_cpu:>9.1f}x {proc:>9.1f}x")
    w("")
    w("Throughput and memory (median over runs)")
    w(f"{'':<34} {'plain':>14} {'product':>14}")
    figures: dict[str, dict[str, float]] = {}
    metrics: list[tuple[str, str, Callable[[dict[str, Any]], float], str]] = [
        (
            "requests_per_s_engine",
            "requests/s (engine)",
            lambda r: r["requests"] / r["engine_s"],
            ",.0f",
        ),
        (
            "requests_per_s_process",
            "requests/s (whole process)",
            lambda r: r["requests"] / r["process_s"],
            ",.0f",
        ),
        (
            "submonths_per_s_engine",
            "subscriber-months/s (engine)",
            lambda r: r["subscriber_months"] / r["engine_s"],
            ",.0f",
        ),
        (
            "submonths_per_s_process",
            "subscriber-months/s (whole process)",
            lambda r: r["subscriber_months"] / r["process_s"],
            ",.0f",
        ),
        (
            "requests_per_cpu_s_engine",
            "requests/s (engine CPU)",
            lambda r: r["requests"] / r["engine_cpu_s"],
            ",.0f",
        ),
        ("engine_s", "engine time (s)", lambda r: r["engine_s"], ",.2f"),
        ("engine_cpu_s", "engine CPU time (s)", lambda r: r["engine_cpu_s"], ",.2f"),
        ("process_s", "whole-process time (s)", lambda r: r["process_s"], ",.2f"),
        ("peak_rss_mib", "peak RSS (MiB)", lambda r: r["peak_rss_mib"], ",.0f"),
    ]
    for key, label, fn, spec in metrics:
        a, b = _median(runs, "plain", fn), _median(runs, "product", fn)
        figures[key] = {"plain": a, "product": b}
        w(f"{label:<34} {_f(a, spec):>14} {_f(b, spec):>14}")
    w("")
    if n_seeds >= 2:
        w(
            f"KPIs: mean over {n_seeds} seeds +- 95% t-interval half-width; "
            "agree = |diff| <= 2 sqrt(se_plain^2 + se_product^2)"
        )
    else:
        w(f"KPIs: one seed; agree = within {ONE_SEED_TOLERANCE:.0%} of each other")
    w(f"{'KPI':<28} {'plain':>27} {'product':>27} {'diff %':>8}  verdict")
    for row, (_, _, spec) in zip(kt, KPI_ROWS, strict=True):
        cells = []
        for model in ("plain", "product"):
            m, h = row[f"{model}_mean"], row[f"{model}_ci95_half"]
            cells.append(_f(m, spec) + ("" if math.isnan(h) else " +- " + _f(h, spec)))
        pm = row["plain_mean"]
        rel = row["diff"] / abs(pm) * 100 if pm else math.nan
        verdict = "agree" if row["agree"] else "DIFFER"
        w(f"{row['label']:<28} {cells[0]:>27} {cells[1]:>27} {_f(rel, '+.2f'):>8}  {verdict}")
    n_agree = sum(r["agree"] for r in kt)
    w(
        f"{n_agree} of {len(kt)} KPIs agree. With few seeds the noise estimate is itself noisy: "
        "about one KPI in 20"
    )
    w("can read DIFFER by chance; a real difference repeats across seeds and grows with N.")
    bad = repeat_consistency(runs)
    if bad:
        w("WARNING: KPIs changed between repeats of the same seed: " + "; ".join(bad))
    changed = sorted(
        {r["sim_digest"] for r in runs if r["model"] == "product"} - {wq["sim_digest"]}
    )
    if changed:
        w(
            f"WARNING: sim/ sources changed during the benchmark (now {', '.join(changed)}): "
            "product runs may mix code versions."
        )
    redone = [r for r in runs if "recompiled_attempt" in r]
    for r in redone:
        w(
            f"NOTE: product seed {r['seed']} repeat {r['repeat']} compiled numba kernels "
            f"(cache invalidated); that attempt ({r['recompiled_attempt']['engine_s']:.2f} s) was "
            "discarded and the run repeated."
        )
    w("")
    w("Known semantic differences between the two models:")
    for d in KNOWN_DIFFERENCES:
        w(f"  - {d}")
    summary = {
        "median_engine_ratio": eng,
        "median_engine_cpu_ratio": eng_cpu,
        "median_process_ratio": proc,
        "pairs": pairs,
        "figures": figures,
        "kpis": kt,
        "kpis_agree": n_agree,
        "repeat_inconsistencies": bad,
        "sim_digests_changed": changed,
    }
    return "\n".join(out), summary


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line arguments of the benchmark."""
    p = argparse.ArgumentParser(
        prog="bench_tpd.py",
        description="Speed benchmark of tokensim against the plain SimPy model of TPD.",
    )
    p.add_argument("--n", type=int, default=10_000, help="subscribers at t=0 (default 10000)")
    p.add_argument("--days", type=int, default=30, help="simulated days, a multiple of 30")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (default 1 2 3)")
    p.add_argument("--repeats", type=int, default=1, help="timed pairs per seed (default 1)")
    p.add_argument(
        "--tpd-dir",
        type=Path,
        default=DEFAULT_TPD_DIR,
        help="folder with TPD's params.py and baseline_simpy.py (default: <repo>/../shared/bench)",
    )
    p.add_argument(
        "--scenario",
        type=Path,
        default=DEFAULT_SCENARIO,
        help="the product's TPD scenario (default: scenarios/tpd-10k-30d.yaml)",
    )
    p.add_argument("--json", type=Path, help="write every raw measurement to this JSON file")
    a = p.parse_args(argv)
    if a.days <= 0 or a.days % MONTH_DAYS:
        p.error(f"--days must be a positive multiple of {MONTH_DAYS} (TPD's billing month)")
    if a.n < 1 or a.repeats < 1:
        p.error("--n and --repeats must be >= 1")
    if len(set(a.seeds)) != len(a.seeds):
        p.error("--seeds must be distinct")
    for f in ("params.py", "baseline_simpy.py"):
        if not (a.tpd_dir / f).is_file():
            p.error(f"--tpd-dir: no {f} in {a.tpd_dir}")
    if not a.scenario.is_file():
        p.error(f"--scenario: no such file {a.scenario}")
    return a


def main(argv: Sequence[str]) -> int:
    """Run the benchmark and print its report; optionally write the raw measurements."""
    if "--worker" in argv:
        return worker_main(argv)
    a = parse_args(argv)
    tpd_dir = a.tpd_dir.resolve()
    cfg = Config(
        n=a.n,
        days=a.days,
        seeds=list(a.seeds),
        repeats=a.repeats,
        servers=_servers(tpd_dir, a.n),
        tpd_dir=tpd_dir,
        scenario=a.scenario.resolve(),
    )
    machine = machine_info()
    machine["git"] = git_state()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    warm = warm_up(cfg)
    runs = measure(cfg)
    text, summary = report(cfg, machine, warm, runs)
    print(text, flush=True)
    if a.json:
        conf = asdict(cfg)
        conf.update(
            tpd_dir=_rel(cfg.tpd_dir),
            scenario=_rel(cfg.scenario),
            python=os.path.basename(cfg.python),
        )
        doc = {
            "benchmark": "tpd",
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": "bench_tpd.py " + " ".join(argv),
            "config": conf,
            "machine": machine,
            "warmup": warm,
            "runs": runs,
            "summary": summary,
            "known_differences": KNOWN_DIFFERENCES,
        }
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(_finite(doc), indent=2, default=float) + "\n")
        _progress(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
