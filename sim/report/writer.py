"""``tokensim report``: one self-contained HTML file from a run, a sweep, or several runs.

The page has no external references: CSS is inline, figures are SVG data URIs
drawn by matplotlib (``sim.report.figures``), and there is no JavaScript. It is
written atomically (``sim.results.atomic.atomic_file``: a temporary file beside the
target, then ``os.replace``), so a failure leaves nothing behind.

* one run folder: headline KPIs with 95% confidence intervals, subscribers and
  churn by plan, revenue vs GPU cost and margin, token mix by model, latency
  percentiles and utilisation over the day, quota use per plan, scenario facts;
* several run folders: the side-by-side KPI table with paired differences
  against the first run (``sim.results.compare``) and the key series overlaid;
* a sweep folder (``sweep.json``, ``points.csv``, ``points/<point>/``): each KPI's
  response to each swept parameter (mean and 95% CI per value, marginal over the
  other parameters and the replications) and a table of the points.

The data functions (``quota_use_table``, ``token_mix``, ``sweep_response``, ...) are
public so that notebooks and tests get the numbers behind every figure.

The work is split by concept: ``sim.report.folders`` reads and checks folders,
``sim.report.data`` computes the numbers, ``sim.report.figures`` draws them,
``sim.report.html`` holds the HTML helpers and ``sim.report.pages`` the three pages.
This module picks the page for the folders given and writes the file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from sim.report.folders import (
    ReportError,
    RunFolder,
    SweepFolder,
    folder_kind,
)
from sim.report.pages import compare_report, run_report, sweep_report
from sim.results.atomic import atomic_file
from sim.results.folder_checks import output_problem
from sim.results.run_folder import REPORT_HTML


def build_report(paths: Sequence[Path]) -> str:
    """The report's HTML for one run folder, one sweep folder, or several run folders.

    Raises ReportError (naming the path) on anything that is not a complete run or sweep.
    """
    if not paths:
        raise ReportError("no folder given")
    paths = [Path(p) for p in paths]
    kinds = [folder_kind(p) for p in paths]
    if len(paths) == 1:
        if kinds[0] == "sweep":
            return sweep_report(SweepFolder.open(paths[0]))
        return run_report(RunFolder.open(paths[0]))
    for p, k in zip(paths, kinds, strict=True):
        if k == "sweep":
            raise ReportError(f"{p}: a sweep folder; a comparison takes run folders only")
    return compare_report([RunFolder.open(p) for p in paths])


def default_out(paths: Sequence[Path]) -> Path:
    """``<FOLDER>/report.html`` for one run or sweep; ``results/compare-TIMESTAMP.html`` else."""
    if len(paths) == 1:
        return Path(paths[0]) / REPORT_HTML
    return Path("results") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.html"


def write_report(paths: Sequence[Path], out: Path | None = None) -> Path:
    """Build the report and write it atomically to ``out`` (default: ``default_out``).

    The HTML is built completely before anything is written; it then goes to a temporary
    file beside ``out`` that replaces ``out`` in one step. An output that cannot be written
    (under a file, in a read-only folder) is refused before building. Returns the path
    written.
    """
    target = Path(out) if out is not None else default_out(paths)
    if target.is_dir():
        raise ReportError(f"{target}: is a folder; give a file name for the report")
    problem = output_problem(target, folder=False)
    if problem:
        raise ReportError(problem)
    html_text = build_report(paths)
    return atomic_file(target, html_text)
