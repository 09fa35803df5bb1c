"""The ``tokensim`` command: validate, run, sweep, size, compare, report, and more.

Exit codes: 0 success, 2 bad input (the scenario or the arguments), 1 any
other failure. A bad scenario writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sim import __version__
from sim.capacity import defaults as sizing
from sim.pricing import defaults as tuning
from sim.results import ledger_policy
from sim.scenario.adjust import adjust_scenario, parse_demand_scale, parse_set_values
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import json_schema, load_scenario
from sim.scenario.schema import Scenario

EXIT_BAD_INPUT = 2
MAX_REPLICATIONS = 1000
"""Upper bound on --replications (the scenario schema's bound)."""
DEFAULT_MAX_REPLICATIONS = 30
"""Default cap of the --ci-halfwidth stopping rule (replications)."""


def _report(err: ScenarioError, path: str) -> int:
    print(
        f"error: {path} is not a valid scenario ({len(err.problems)} problem(s)):", file=sys.stderr
    )
    for where, msg in err.problems:
        print(f"  {where}: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _refuse(err: ScenarioError) -> int:
    """Report problems that are not in the scenario file (options, output folder); exit 2."""
    for where, msg in err.problems:
        print(f"error: {where}: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _claim(a: argparse.Namespace, out: Path, option: str = "--out") -> None:
    """Make ``out`` this command's before any simulation; ScenarioError (exit 2) if it cannot be.

    Checks that it can be written (sim.results.folder_checks.output_problem), takes its lock
    until the command ends (sim.results.locks: a second writer is refused, naming this one),
    then removes the leftovers of killed writers there (sim.results.leftovers), saying so.
    """
    from sim.results.folder_checks import output_problem
    from sim.results.leftovers import clean_leftovers
    from sim.results.locks import folder_lock

    problem = output_problem(out, option)
    if problem:
        raise ScenarioError([(option, problem.removeprefix(f"{option} "))])
    a.held.enter_context(folder_lock(out, f"tokensim {a.command} {option} {out}"))
    for left in clean_leftovers(out):
        print(f"note: {left.describe()}", file=sys.stderr)


def _default_out(s: Scenario, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{s.name}-seed{seed}-{stamp}"


def cmd_validate(a: argparse.Namespace) -> int:
    """Validate a scenario file and report every problem with its path."""
    try:
        s = load_scenario(a.scenario)
    except ScenarioError as e:
        return _report(e, a.scenario)
    n_plans, n_segs = len(s.plans), len(s.segments)
    print(
        f"ok: {a.scenario}: scenario '{s.name}', {n_plans} plans, {n_segs} segments, "
        f"{s.horizon_months} months, sha256 {s.digest()[:12]}"
    )
    return 0


def _adjusted_scenario(
    a: argparse.Namespace, s: Scenario, sets: list[str] | None = None
) -> Scenario:
    """``s`` with the scenario options of ``a`` applied (see :func:`_scenario_options`).

    ``sets`` are the ``--set PATH=VALUE`` options to apply (default: ``a.set``). Raises
    ScenarioError naming the bad option; the caller refuses it with :func:`_refuse`.
    """
    return adjust_scenario(
        s,
        sets=parse_set_values((a.set or []) if sets is None else sets),
        demand_scale=parse_demand_scale(a.demand_scale or []),
        horizon_months=a.horizon_months,
    )


def _load_adjusted(a: argparse.Namespace, sets: list[str] | None = None) -> Scenario | int:
    """The scenario file of ``a`` with its scenario options applied, or the exit code (2).

    A bad file is reported with every problem's path; a bad option names the option.
    """
    try:
        s = load_scenario(a.scenario)
    except ScenarioError as e:
        return _report(e, a.scenario)
    try:
        return _adjusted_scenario(a, s, sets)
    except ScenarioError as e:
        return _refuse(e)


def cmd_run(a: argparse.Namespace) -> int:
    """Validate, apply the scenario options, simulate every replication, write the run folder."""
    s = _load_adjusted(a)
    if isinstance(s, int):
        return s
    from tqdm import tqdm

    from sim.experiments.runner import run_scenario
    from sim.results.number_format import kpi_lines
    from sim.results.run_folder import write_run

    horizon_days = s.horizon_months * s.days_per_month
    if a.export_days and a.export_days[0] >= horizon_days:
        print(
            f"error: --export-requests: day {a.export_days[0]} is past the horizon"
            f" ({horizon_days} days)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    from sim.experiments.runner import Precision, relative_halfwidth

    seed = s.seed if a.seed is None else a.seed
    reps = s.replications if a.replications is None else a.replications
    precision = None
    if a.ci_halfwidth is not None:
        precision = Precision(a.ci_kpi, a.ci_halfwidth, a.max_replications)
    out = Path(a.out) if a.out else _default_out(s, seed)
    _claim(a, out)
    days = s.horizon_months * s.days_per_month * (a.max_replications if precision else reps)
    workers = a.workers
    if workers is None and a.scheduler is None:
        from sim.experiments.distributed import run_workers

        try:  # one per core, at most one per replication
            workers = run_workers(a.max_replications if precision else reps)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
    distributed = a.scheduler is not None or (workers or 1) > 1
    with (
        _maybe_client(distributed, a.scheduler, workers) as client,
        tqdm(total=days, unit="day", desc=s.name, disable=a.quiet or None, file=sys.stderr) as bar,
    ):
        result = run_scenario(
            s,
            seed=seed,
            replications=reps,
            progress=bar.update,
            export_days=a.export_days,
            client=client,
            precision=precision,
        )
    write_run(result, out, seed, plots=s.outputs.plots and not a.no_plots, ledger=a.ledger_policy)
    summ = result.summary()
    if not a.quiet:
        print(f"wrote {out} ({len(result.replications)} replications)")
        if precision is not None:
            rhw = relative_halfwidth(result.kpis()[precision.kpi].to_numpy(dtype=float))
            met = "met" if rhw <= precision.rel_halfwidth else "NOT met (cap reached)"
            print(
                f"  stopping rule {precision.kpi} rel. half-width {rhw:.4g}"
                f" <= {precision.rel_halfwidth:g}: {met}"
            )
        for line in kpi_lines(summ, RUN_SHOWN_KPIS, s.currency):
            print(line)
    return 0


RUN_SHOWN_KPIS = (
    "subscribers_end",
    "churn_rate_monthly",
    "revenue_total",
    "gpu_cost",
    "gross_margin",
    "ttft_p95_s",
    "busy_hour_ttft_p95_s",
    "slo_attainment_served",
    "goodput_share",
    "gpu_utilisation",
    "busy_hour_utilisation",
)
"""KPIs printed after a run, in this order (summary.json has them all)."""


@contextmanager
def _maybe_client(wanted: bool, scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A dask client when ``wanted`` (see sim.experiments.distributed), else None."""
    if not wanted:
        yield None
        return
    from sim.experiments.distributed import open_client

    with open_client(scheduler, workers) as client:
        yield client


SWEEP_SHOWN_KPIS = (
    "subscribers_end",
    "churn_rate_monthly",
    "revenue_total",
    "gross_margin",
    "busy_hour_ttft_p95_s",
    "busy_hour_utilisation",
)
"""KPIs printed per point after a sweep (points.csv has them all): money and subscribers,
and the busy hour's TTFT p95 and utilisation (worst pool and month) that capacity must carry."""


def _split_sweep_sets(options: list[str]) -> tuple[list[str], list[str]]:
    """Sweep's ``--set`` options as (overrides, axes): one value overrides, several sweep.

    ``PATH=VALUE`` sets the base scenario; ``PATH=V1,V2,...`` or ``PATH=LOW..HIGH`` is an axis.
    Raises ScenarioError naming ``--set`` for a malformed option.
    """
    from sim.experiments.sweep import parse_set

    overrides: list[str] = []
    axes: list[str] = []
    for opt in options:
        _path, values = parse_set(opt)
        (overrides if isinstance(values, list) and len(values) == 1 else axes).append(opt)
    return overrides, axes


def cmd_sweep(a: argparse.Namespace) -> int:
    """Run a scenario at every point of its sweep block or --set axes, on dask."""
    try:
        overrides, axes = _split_sweep_sets(a.set or [])
    except ScenarioError as e:
        return _refuse(e)
    s = _load_adjusted(a, overrides)
    if isinstance(s, int):
        return s
    from tqdm import tqdm

    from sim.experiments.sweep import check_folder, points, run_sweep, sweep_manifest, sweep_spec

    try:
        spec = sweep_spec(s, axes, a.design, a.samples)
        pts = points(s, spec)
    except ScenarioError as e:
        return _report(e, a.scenario)
    seed = s.seed if a.seed is None else a.seed
    reps = s.replications if a.replications is None else a.replications
    out = Path(a.out) if a.out else Path("results") / f"{s.name}-sweep"
    try:  # before starting any cluster
        _claim(a, out)
        check_folder(out, sweep_manifest(s, spec, pts, seed, reps), a.resume)
    except ScenarioError as e:
        return _refuse(e)
    with (
        _maybe_client(True, a.scheduler, a.workers) as client,
        tqdm(
            total=len(pts),
            unit="point",
            desc=f"{s.name} sweep",
            disable=a.quiet or None,
            file=sys.stderr,
        ) as bar,
    ):
        try:
            res = run_sweep(s, spec, out, client, seed, reps, a.resume, a.plots, bar.update)
        except ScenarioError as e:
            return _refuse(e)
    if not a.quiet:
        print(
            f"wrote {out}: {len(pts)} points x {reps} replications"
            f" ({len(res.ran)} run, {len(res.reused)} reused) in {res.wall_s:.1f} s"
        )
        cols = ["point", *spec.parameters, *SWEEP_SHOWN_KPIS]
        mean = res.table.groupby("point", sort=True)[cols[1:]].mean(numeric_only=True)
        print(mean.to_string(float_format=lambda x: f"{x:.4g}"))
    return 0


def cmd_size(a: argparse.Namespace) -> int:
    """Size GPU pools for SLO targets at every month's busy hour (sim.capacity.search)."""
    s = _load_adjusted(a)
    if isinstance(s, int):
        return s
    from sim.capacity.output import answer_lines, is_size_folder, write_size
    from sim.capacity.search import SizingError, size

    out = Path(a.out) if a.out else Path("results") / f"{s.name}-size"
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_size_folder(out))):
        print(
            f"error: --out {out} exists and is not a tokensim sizing folder;"
            " refusing to replace it",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    _claim(a, out)
    say = None if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        with _maybe_client(
            a.scheduler is not None or (a.workers or 1) > 1, a.scheduler, a.workers
        ) as client:
            sz = size(
                s,
                a.slo or [],
                pools=a.pool,
                by_month=a.by_month,
                lead_months=a.lead_months,
                seed=a.seed,
                replications=a.replications,
                max_replications=a.max_replications,
                max_replicas=a.max_replicas,
                client=client,
                log=say,
            )
    except SizingError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = {
        "slo": a.slo,
        "pools": a.pool,
        "by_month": a.by_month,
        "lead_months": a.lead_months,
        "seed": s.seed if a.seed is None else a.seed,
        "replications": a.replications,
        "max_replications": a.max_replications,
        "max_replicas": a.max_replicas,
        "demand_scale": a.demand_scale,
        "set": a.set,
        "horizon_months": s.horizon_months,
    }
    write_size(sz, out, options, plot=not a.no_plots)
    print(f"wrote {out}")
    print(
        f"sized {', '.join(dict.fromkeys(sz.answer['pool']))} for"
        f" {', '.join(t.label for t in sz.targets)} at every month's busy hour"
        f" ({sz.replications_run} replications, {sz.simulated_months} simulated months,"
        f" {sz.wall_s:.0f} s):"
    )
    for line in answer_lines(sz):
        print(line)
    for note in sz.notes:
        print(f"  note: {note}")
    return 0


def cmd_tune(a: argparse.Namespace) -> int:
    """Search scenario fields for the best objective under constraints (sim.pricing.tune)."""
    s = _load_adjusted(a)
    if isinstance(s, int):
        return s
    from sim.pricing.journal import check_folder
    from sim.pricing.objectives import TuneError
    from sim.pricing.output import answer_lines
    from sim.pricing.question import prepare
    from sim.pricing.tune import tune

    out = Path(a.out) if a.out else Path("results") / f"{s.name}-tune"
    options: dict[str, Any] = {
        "objective": a.objective,
        "constraints": a.constraint or [],
        "budget": a.budget,
        "replications": a.replications,
        "final_replications": a.final_replications,
        "top": a.top,
        "batch": a.batch,
        "seed": a.seed,
    }
    if a.workers is not None and a.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:  # the whole question, and the folder, before starting any cluster
        ask = prepare(s, a.vary or [], **options)
        _claim(a, out)
        check_folder(out, ask.record, a.resume)
    except TuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say = None if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    with _maybe_client(
        a.scheduler is not None or a.workers is None or a.workers > 1, a.scheduler, a.workers
    ) as client:
        t = tune(
            s,
            a.vary,
            **options,
            client=client,
            out=out,
            resume=a.resume,
            plots=not a.no_plots,
            log=say,
        )
    print(f"wrote {out}")
    print(
        f"tuned {', '.join(p.path for p in t.parameters)} for {t.objective.words}"
        f"{' subject to ' + ', '.join(c.label for c in t.constraints) if t.constraints else ''}"
        f" ({t.simulations_run} replications run, {t.simulations_reused} reused,"
        f" {t.wall_s:.0f} s):"
    )
    for line in answer_lines(t):
        print(line)
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    """Print KPIs of run folders (or per plan/segment) side by side with paired differences."""
    from sim.results.compare import CompareError, compare_runs, write_table
    from sim.results.compare_groups import compare_by
    from sim.results.compare_text import format_groups, format_table
    from sim.results.folder_checks import output_problem

    runs = [Path(p) for p in a.runs]
    if a.out and Path(a.out).is_dir():
        print(f"error: --out {a.out}: is a folder; give a file name", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = output_problem(Path(a.out), folder=False) if a.out else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        table = compare_by(runs, a.by) if a.by else compare_runs(runs)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    stem = f"compare-by-{a.by}" if a.by else "compare"
    out = Path(a.out) if a.out else Path("results") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    print(format_groups(table, a.by) if a.by else format_table(table))
    write_table(table, out)
    print(f"wrote {out}")
    return 0


def cmd_fit_churn(a: argparse.Namespace) -> int:
    """Fit segments' churn intercepts to target monthly churn; report, optionally update files."""
    try:
        s = load_scenario(a.scenario)
    except ScenarioError as e:
        return _report(e, a.scenario)
    import yaml

    from sim.experiments.churn_fit import fit_churn, parse_targets, update_scenario_file

    try:
        targets = parse_targets(a.target or [])
        if not targets:
            raise ValueError("give at least one --target SEGMENT=SHARE")
        fit = fit_churn(
            s,
            targets,
            tolerance=a.tol,
            max_iterations=a.max_iter,
            seed=a.seed,
            replications=a.replications,
            log=None if a.quiet else lambda m: print(m, file=sys.stderr),
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = yaml.safe_dump(fit.report(), sort_keys=False)
    if a.out:
        Path(a.out).write_text(text)
    else:
        sys.stdout.write(text)
    if a.update:
        for f in a.update:
            update_scenario_file(Path(f), fit.intercepts)
            print(f"updated {f}", file=sys.stderr)
    return 0 if fit.converged else 1


def cmd_report(a: argparse.Namespace) -> int:
    """Write one self-contained HTML report of a run, a sweep, or several runs compared."""
    from sim.report.folders import ReportError
    from sim.report.writer import write_report

    try:
        out = write_report([Path(p) for p in a.folders], Path(a.out) if a.out else None)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {out}")
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    """Say what each package buys each segment, from the scenario's demand model (no run)."""
    s = _load_adjusted(a)
    if isinstance(s, int):
        return s
    from sim.pricing.explain import UnknownPlanError, explain
    from sim.pricing.explain_text import explanation_dict, explanation_text
    from sim.report.explain_page import output_problem, write_explanation

    json_file, out_dir = (Path(a.json) if a.json else None), (Path(a.out) if a.out else None)
    problem = output_problem(json_file, out_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        data = explanation_dict(explain(s, a.plan))
    except UnknownPlanError as e:
        print(f"error: --plan: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ScenarioError as e:
        return _report(e, a.scenario)
    if not a.quiet:
        sys.stdout.write(explanation_text(data))
    for path in write_explanation(data, json_file, out_dir):
        print(f"wrote {path}")
    return 0


def cmd_schema(a: argparse.Namespace) -> int:
    """Print (or write) the JSON Schema of scenario files."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    """Fit workload presets on trace files; write them (and the validation report)."""
    from sim.calibration.calibrate import calibrate, data_files
    from sim.calibration.fit import CalibrationError
    from sim.calibration.presets import use_presets, write_presets

    if a.presets and not a.report:
        print("error: --presets compares presets with traces: give --report FILE", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        presets = calibrate([Path(f) for f in a.files])
        if a.presets:
            presets = use_presets(presets, Path(a.presets))
    except CalibrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    files = " ".join(Path(f).as_posix() for f in data_files([Path(f) for f in a.files]))
    if not a.presets:
        for path in write_presets(presets, Path(a.out)):
            print(f"wrote {path}")
    if a.report:
        from sim.calibration.fidelity import write_report

        target = f"--presets {a.presets}" if a.presets else f"--out {Path(a.out).as_posix()}"
        command = f"tokensim calibrate {files} {target} --report {a.report}"
        write_report(presets, Path(a.report), command, fitted_here=not a.presets)
        print(f"wrote {a.report}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``tokensim``."""
    p = argparse.ArgumentParser(prog="tokensim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"tokensim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a scenario file; exit 2 naming every bad field")
    v.add_argument("scenario")
    v.set_defaults(fn=cmd_validate)
    r = sub.add_parser("run", help="simulate a scenario into a results folder")
    r.add_argument("scenario")
    r.add_argument("--seed", type=int, help="override the scenario's seed")
    r.add_argument("--replications", "-r", type=int, help="override the number of replications")
    r.add_argument(
        "--out",
        help="run folder (default: results/NAME-seedN-TIMESTAMP); an earlier run folder there is"
        " replaced unless it holds a file tokensim did not write, any other non-empty folder is"
        " refused; a second command writing there meanwhile is refused",
    )
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.add_argument(
        "--export-requests",
        metavar="DAY[:DAYS]",
        help="write the first replication's requests arriving on days DAY..DAY+DAYS-1"
        " (default 1 day) as requests_azure.csv and requests_mooncake.jsonl",
    )
    r.add_argument(
        "--ledger",
        choices=ledger_policy.LEDGER_MODES,
        default=ledger_policy.DEFAULT_LEDGER_MODE,
        help="what ledger.parquet keeps: every subscriber-month (full, the default), every month"
        " of a seeded random sample of subscribers (sample), or no file (none)",
    )
    r.add_argument(
        "--ledger-fraction",
        type=float,
        metavar="SHARE",
        help="share of subscribers --ledger sample keeps, > 0 and <= 1"
        f" (default {ledger_policy.DEFAULT_SAMPLE_FRACTION:g})",
    )
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    _scenario_options(r)
    _cluster_options(r, default_workers=None)
    r.add_argument(
        "--ci-halfwidth",
        type=float,
        metavar="REL",
        help="stopping rule: add replications until the 95%% CI half-width of --ci-kpi is at"
        " most REL x |mean| (e.g. 0.01), or --max-replications is reached",
    )
    r.add_argument(
        "--ci-kpi", default="revenue_total", help="KPI of the stopping rule (default revenue_total)"
    )
    r.add_argument(
        "--max-replications",
        type=int,
        default=DEFAULT_MAX_REPLICATIONS,
        help=f"cap of the stopping rule (default {DEFAULT_MAX_REPLICATIONS})",
    )
    r.set_defaults(fn=cmd_run)
    sw = sub.add_parser(
        "sweep", help="run a scenario over a grid or Latin hypercube of parameters (on dask)"
    )
    sw.add_argument("scenario")
    _scenario_options(sw, sweep_axes=True)
    sw.add_argument("--design", choices=("factorial", "lhs"), help="override the sweep block's")
    sw.add_argument("--samples", type=int, help="points of a Latin hypercube design")
    sw.add_argument("--seed", type=int, help="override the scenario's seed (all points share it)")
    sw.add_argument("--replications", "-r", type=int, help="replications per point")
    sw.add_argument("--out", help="sweep folder (default: results/NAME-sweep)")
    sw.add_argument(
        "--resume", action="store_true", help="continue a sweep folder, reusing finished points"
    )
    sw.add_argument("--plots", action="store_true", help="write PNG plots in every point folder")
    sw.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    _cluster_options(sw, default_workers=None)
    sw.set_defaults(fn=cmd_sweep)
    sz = sub.add_parser(
        "size",
        help="the fewest GPUs per pool (whole replicas) meeting SLO targets at every month's"
        " busy hour",
        description="Size GPU pools: per pool, the smallest count in whole replicas whose"
        " simulated busy-hour latency meets every --slo target in every month (or each month"
        " with --by-month), with renewal, churn and acquisition running. Starts from an"
        " analytic M/G/c estimate, then searches on simulations with common random numbers"
        " and 95%% intervals. See docs/capacity.md.",
    )
    sz.add_argument("scenario")
    sz.add_argument(
        "--slo",
        action="append",
        metavar="EXPR",
        help="a target METRIC_pQ<=SECONDS, METRIC one of wait, ttft, tpot, e2e;"
        " e.g. ttft_p95<=1.0; repeatable (every target must hold)",
    )
    sz.add_argument(
        "--pool",
        action="append",
        help="size this pool only (repeatable; default all pools); a disaggregated pool's"
        " NAME means both its sides, NAME:prefill or NAME:decode one of them",
    )
    sz.add_argument(
        "--by-month",
        action="store_true",
        help="a count for each month (a procurement schedule) instead of one for the horizon",
    )
    sz.add_argument(
        "--lead-months",
        type=int,
        default=0,
        help="months from ordering cards to their serving: orders are dated this much earlier",
    )
    sz.add_argument("--seed", type=int, help="override the scenario's seed")
    sz.add_argument(
        "--replications",
        "-r",
        type=int,
        default=sizing.DEFAULT_REPLICATIONS,
        help=f"replications per count (default {sizing.DEFAULT_REPLICATIONS}; doubled while a"
        " verdict is unsure)",
    )
    sz.add_argument(
        "--max-replications",
        type=int,
        default=sizing.DEFAULT_MAX_REPLICATIONS,
        help=f"replications a count may grow to (default {sizing.DEFAULT_MAX_REPLICATIONS})",
    )
    sz.add_argument(
        "--max-replicas",
        type=int,
        default=sizing.DEFAULT_MAX_REPLICAS,
        help="largest replica count tried per pool before the target is called unreachable"
        f" (default {sizing.DEFAULT_MAX_REPLICAS})",
    )
    sz.add_argument("--out", help="sizing folder (default: results/NAME-size)")
    sz.add_argument("--no-plots", action="store_true", help="skip size.png")
    sz.add_argument("--quiet", "-q", action="store_true", help="no progress log")
    _scenario_options(sz)
    _cluster_options(sz, default_workers=1)
    sz.set_defaults(fn=cmd_size)
    tu = sub.add_parser(
        "tune",
        help="search scenario fields (prices, quotas, GPUs) for the best margin, revenue,"
        " subscribers or LTV under constraints, coping with simulation noise",
        description="Tune scenario fields: optuna's seeded TPE sampler asks for points, each"
        " simulated on the same replications (common random numbers); the best few and the"
        " scenario as given are re-evaluated on fresh replications and the answer is reported"
        " as a paired difference against the scenario as given, with its 95% interval, plus"
        " the response surface and the Pareto front of margin against churn. See docs/tune.md.",
    )
    tu.add_argument("scenario")
    tu.add_argument(
        "--vary",
        action="append",
        metavar="PATH=LOW..HIGH[:STEP]",
        help="a numeric field by dotted path and its range, e.g."
        " plans.dev_70m.price_per_month=120..260; repeatable",
    )
    tu.add_argument(
        "--objective",
        default="margin",
        help="what to maximise: margin, revenue, subscribers or ltv (default margin)",
    )
    tu.add_argument(
        "--constraint",
        action="append",
        metavar="METRIC<=VALUE",
        help="a bound on a KPI's mean, e.g. 'churn_rate_monthly<=0.06'; repeatable",
    )
    tu.add_argument(
        "--budget",
        type=int,
        default=tuning.DEFAULT_BUDGET,
        help=f"points searched besides the scenario as given (default {tuning.DEFAULT_BUDGET})",
    )
    tu.add_argument(
        "--replications",
        "-r",
        type=int,
        default=tuning.DEFAULT_REPLICATIONS,
        help=f"replications per point in the search (default {tuning.DEFAULT_REPLICATIONS})",
    )
    tu.add_argument(
        "--final-replications",
        type=int,
        default=tuning.DEFAULT_FINAL_REPLICATIONS,
        help="fresh replications of the best points and the scenario as given"
        f" (default {tuning.DEFAULT_FINAL_REPLICATIONS})",
    )
    tu.add_argument(
        "--top",
        type=int,
        default=tuning.DEFAULT_TOP,
        help=f"best points re-evaluated (default {tuning.DEFAULT_TOP})",
    )
    tu.add_argument(
        "--batch",
        type=int,
        default=tuning.DEFAULT_BATCH,
        help=f"points asked at once and simulated in parallel (default {tuning.DEFAULT_BATCH})",
    )
    tu.add_argument("--seed", type=int, help="override the scenario's seed (and the sampler's)")
    tu.add_argument("--out", help="tune folder (default: results/NAME-tune)")
    tu.add_argument(
        "--resume", action="store_true", help="continue a tune folder, reusing its replications"
    )
    tu.add_argument("--no-plots", action="store_true", help="skip pareto.png and surface.png")
    tu.add_argument("--quiet", "-q", action="store_true", help="no progress log")
    _scenario_options(tu)
    _cluster_options(tu, default_workers=None)
    tu.set_defaults(fn=cmd_tune)
    cp = sub.add_parser(
        "compare",
        help="headline KPIs (or figures by plan or segment) of run folders side by side,"
        " paired differences vs the first",
    )
    cp.add_argument("runs", nargs="+", help="run folders; the first is the reference")
    cp.add_argument(
        "--by",
        choices=("plan", "segment"),  # sim.results.compare_groups.BY (not imported at start-up)
        help="figures per plan or per segment (subscribers, churn, revenue, tokens, refusals)"
        " instead of the headline KPIs",
    )
    cp.add_argument(
        "--out",
        help="CSV file, or Parquet if it ends in .parquet (default:"
        " results/compare[-by-plan|-by-segment]-TIMESTAMP.csv)",
    )
    cp.set_defaults(fn=cmd_compare)
    fc = sub.add_parser(
        "fit-churn", help="fit segments' churn_intercept so monthly churn hits targets"
    )
    fc.add_argument("scenario")
    fc.add_argument(
        "--target",
        action="append",
        metavar="SEGMENT=SHARE",
        help="target monthly churn of a segment, e.g. chat=0.07 or chat=7%%; repeatable",
    )
    fc.add_argument("--tol", type=float, default=0.005, help="stop within this share (0.005)")
    fc.add_argument("--max-iter", type=int, default=8, help="simulation runs at most (8)")
    fc.add_argument("--seed", type=int, help="override the scenario's seed")
    fc.add_argument("--replications", "-r", type=int, help="replications per run")
    fc.add_argument("--out", help="write the fit report (YAML) here instead of stdout")
    fc.add_argument(
        "--update",
        nargs="+",
        metavar="FILE",
        help="write the fitted intercepts into these scenario files (comments kept)",
    )
    fc.add_argument("--quiet", "-q", action="store_true", help="no per-iteration log")
    fc.set_defaults(fn=cmd_fit_churn)
    rp = sub.add_parser(
        "report", help="one self-contained HTML report of a run, a sweep, or runs compared"
    )
    rp.add_argument(
        "folders", nargs="+", help="a run folder, a sweep folder, or run folders to compare"
    )
    rp.add_argument(
        "--out",
        help="HTML file (default: FOLDER/report.html for one folder,"
        " results/compare-TIMESTAMP.html for a comparison)",
    )
    rp.set_defaults(fn=cmd_report)
    ex = sub.add_parser(
        "explain",
        help="what each package buys each segment, in plain words and numbers (no simulation)",
        description="For every plan (or each --plan) and every segment offered it: how many"
        " requests, sessions and documents the quota covers at the segment's typical sizes,"
        " the distribution of monthly demand as a share of the quota, the share exhausting it,"
        " what happens past it, and the effective price per 1M tokens used against the API"
        " list price of the same token mix; computed from the scenario's own demand model."
        " See docs/explain.md.",
    )
    ex.add_argument("scenario")
    ex.add_argument(
        "--plan",
        action="append",
        metavar="NAME",
        help="explain this plan only (repeatable; default every plan)",
    )
    ex.add_argument("--json", metavar="FILE", help="also write the numbers as JSON to FILE")
    ex.add_argument(
        "--out", metavar="DIR", help="also write explain.json and the page explain.html in DIR"
    )
    ex.add_argument("--quiet", "-q", action="store_true", help="no text on stdout")
    _scenario_options(ex)
    ex.set_defaults(fn=cmd_explain)
    ca = sub.add_parser(
        "calibrate",
        help="fit workload presets on real traces; write them as YAML (and a validation report)",
        description="Fit workload presets (segment fragments) on the trace files given:"
        " Azure 2023 code/conv CSV, Mooncake JSONL, ServeGen arrivals + token PMF (+ client"
        " tokens), the digitised Azure 2024 hourly profile, published_aggregates.json"
        " (recognised by their headers; .gz accepted). See docs/calibration.md.",
    )
    ca.add_argument(
        "files",
        nargs="+",
        help="trace and table files (e.g. data/traces/*; files other than .csv, .jsonl, .json,"
        " optionally .gz, are passed over)",
    )
    ca.add_argument("--out", default="scenarios/presets", help="folder of the preset YAML files")
    ca.add_argument(
        "--report", help="also simulate every preset and write the validation report here"
    )
    ca.add_argument(
        "--presets",
        metavar="DIR",
        help="out-of-sample check: simulate the presets already in DIR (not new fits) against"
        " these traces; writes only the report",
    )
    ca.set_defaults(fn=cmd_calibrate)
    sc = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    sc.add_argument("--out", help="write it to this file")
    sc.set_defaults(fn=cmd_schema)
    return p


def _scenario_options(p: argparse.ArgumentParser, sweep_axes: bool = False) -> None:
    """Add ``--set``, ``--demand-scale`` and ``--horizon-months`` (see sim.scenario.adjust).

    ``sweep_axes``: ``--set`` with several values (or a range) is a sweep axis, with one value
    an override of the base scenario. :func:`_adjusted_scenario` applies the options.
    """
    if sweep_axes:
        p.add_argument(
            "--set",
            action="append",
            metavar="PATH=V1,V2,...",
            help="sweep a dotted path over values (or PATH=LOW..HIGH for --design lhs); with one"
            " value, set it in the base scenario of every point instead; repeatable;"
            " e.g. plans.dev_pro.price_per_month=99,159.9,199",
        )
    else:
        p.add_argument(
            "--set",
            action="append",
            metavar="PATH=VALUE",
            help="set one field by dotted path, e.g. plans.dev_pro.price_per_month=159.9;"
            " repeatable",
        )
    p.add_argument(
        "--demand-scale",
        action="append",
        metavar="X|SEGMENT=X",
        help="multiply initial subscribers and acquisition (Bass market size, constant sign-ups"
        " per month) of every segment, or of SEGMENT, by X > 0 (after --set); repeatable",
    )
    p.add_argument(
        "--horizon-months",
        type=int,
        metavar="N",
        help="override the scenario's horizon (calendar months)",
    )


def _cluster_options(p: argparse.ArgumentParser, default_workers: int | None) -> None:
    default = "one per core" if default_workers is None else str(default_workers)
    if p.prog.endswith(" run"):
        default = "one per core, at most one per replication, or $TOKENSIM_WORKERS"
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers,
        help=f"worker processes of a local dask cluster (default {default}; 1 runs in-process"
        " for run, with the same numbers)",
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="use an existing dask scheduler (tcp://host:8786)"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    p = parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad arguments, 0 on --help
        return int(e.code or 0)
    if a.command == "size":
        problem = _size_argument_problem(a)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if a.command in ("run", "sweep"):
        problem = _run_argument_problem(a)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
    with ExitStack() as held:  # output folders' locks (_claim), released when the command ends
        a.held = held
        try:
            return int(a.fn(a))
        except ScenarioError as e:  # an output refused (locked by another writer, changed)
            return _refuse(e)


def _run_argument_problem(a: argparse.Namespace) -> str | None:
    """Why ``run``'s (or ``sweep``'s) arguments cannot be used, or None."""
    if a.replications is not None and not 1 <= a.replications <= MAX_REPLICATIONS:
        return f"--replications must be between 1 and {MAX_REPLICATIONS}"
    if a.seed is not None and a.seed < 0:
        return "--seed must be >= 0"
    if a.workers is not None and a.workers < 1:
        return "--workers must be >= 1"
    if a.command == "sweep":
        if a.samples is not None and a.samples < 2:
            return "--samples must be >= 2"
        return None
    return _precision_problem(a) or _export_problem(a) or _ledger_problem(a) or _out_problem(a)


def _size_argument_problem(a: argparse.Namespace) -> str | None:
    """Why ``size``'s numeric options cannot be used, or None (the SLOs are checked by size)."""
    if a.seed is not None and a.seed < 0:
        return "--seed must be >= 0"
    if a.workers is not None and a.workers < 1:
        return "--workers must be >= 1"
    if not 1 <= a.max_replications <= MAX_REPLICATIONS:
        return f"--max-replications must be between 1 and {MAX_REPLICATIONS}"
    if not 1 <= a.replications <= a.max_replications:
        return "--replications must be between 1 and --max-replications"
    if a.lead_months < 0:
        return "--lead-months must be >= 0"
    if a.max_replicas < 1:
        return "--max-replicas must be >= 1"
    if not a.slo:
        return "--slo: give at least one target, e.g. --slo 'ttft_p95<=1.0'"
    return None


def _precision_problem(a: argparse.Namespace) -> str | None:
    """Why the stopping rule's options (``--ci-halfwidth`` and friends) are unusable, or None."""
    if a.ci_halfwidth is None:
        return None
    if not a.ci_halfwidth > 0:
        return "--ci-halfwidth must be > 0"
    from sim.results.kpis import KPIS

    if a.ci_kpi not in KPIS:
        return f"--ci-kpi: unknown KPI '{a.ci_kpi}' (known: {', '.join(KPIS)})"
    if not 2 <= a.max_replications <= MAX_REPLICATIONS:
        return f"--max-replications must be between 2 and {MAX_REPLICATIONS}"
    return None


def _export_problem(a: argparse.Namespace) -> str | None:
    """Parse ``--export-requests DAY[:DAYS]`` into ``a.export_days``; why not, or None."""
    a.export_days = None
    if not a.export_requests:
        return None
    try:
        first, _, days = a.export_requests.partition(":")
        a.export_days = (int(first), int(days or 1))
    except ValueError:
        return "--export-requests takes DAY or DAY:DAYS (whole numbers)"
    if a.export_days[0] < 0 or a.export_days[1] < 1:
        return "--export-requests: DAY must be >= 0 and DAYS >= 1"
    return None


def _ledger_problem(a: argparse.Namespace) -> str | None:
    """Parse ``--ledger`` and ``--ledger-fraction`` into ``a.ledger_policy``; why not, or None."""
    a.ledger_policy = None
    if a.ledger_fraction is not None and a.ledger != ledger_policy.LEDGER_SAMPLE:
        return f"--ledger-fraction needs --ledger {ledger_policy.LEDGER_SAMPLE}"
    fraction = ledger_policy.DEFAULT_SAMPLE_FRACTION
    if a.ledger_fraction is not None:
        fraction = a.ledger_fraction
    try:
        a.ledger_policy = ledger_policy.LedgerPolicy(a.ledger, fraction)
    except ledger_policy.LedgerPolicyError as e:
        return str(e)
    return None


def _out_problem(a: argparse.Namespace) -> str | None:
    """Why ``--out`` cannot be written, or None.

    A file; under a file or in a folder that cannot be written
    (sim.results.folder_checks.output_problem); a foreign non-empty folder; or a run folder
    holding a file tokensim did not write (a new run would delete it).
    """
    if not a.out:
        return None
    from sim.results.folder_checks import foreign_files, foreign_problem, output_problem
    from sim.results.leftovers import LEFTOVER
    from sim.results.run_folder import owned_files

    out = Path(a.out)
    problem = output_problem(out)
    if problem:
        return problem
    if out.is_dir() and any(out.iterdir()) and not _replaceable(out):
        return (
            f"--out {out} is a non-empty folder that is not a tokensim run folder;"
            " refusing to replace it"
        )
    foreign = foreign_files(out, owned_files) if out.is_dir() and _replaceable(out) else []
    foreign = [f for f in foreign if not LEFTOVER.match(Path(f).name)]  # cleaned by _claim
    if foreign:
        return f"--out {out} {foreign_problem(out, foreign)}; refusing to replace it"
    return None


def _replaceable(path: Path) -> bool:
    """True when ``path`` is a run folder written by tokensim, complete or not.

    Such a folder is only ever tokensim's own output, so ``run --out`` may replace it.
    Completeness does not matter here (``sim.results.run_folder.is_run_folder`` checks it
    for the readers); anything else, a sweep folder included, is the user's and is refused.
    """
    from sim.results.run_folder import RunFolderError, read_manifest

    try:
        read_manifest(path)
    except RunFolderError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
