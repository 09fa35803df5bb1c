"""The tune folder written in one step, and the answer as lines for a terminal.

The folder's files are listed in :mod:`sim.pricing.journal`; :func:`write_tune` stages them
all beside the folder and swaps them in (sim.results.atomic), replacing the running folder
(its journal and tune.json) with the complete one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from sim.pricing import journal as jr
from sim.pricing.answer import Tuning
from sim.pricing.objectives import METRICS
from sim.results.atomic import atomic_folder

STATUS_COMPLETE = "complete"
"""tune.json's status once the folder holds the answer."""
SHOWN_FRONT_ROWS = 8
"""Rows of the Pareto front printed in the terminal (pareto.csv has them all)."""


def tune_summary(t: Tuning) -> dict[str, Any]:
    """The content of the complete tune.json."""
    return jr.manifest(
        t.question,
        STATUS_COMPLETE,
        budget=t.budget,
        sampler=t.sampler,
        answer=t.answer,
        notes=t.notes,
        horizon_months=t.base.horizon_months,
        currency=t.base.currency,
        points_searched=int((t.trials["role"] != "incumbent").sum()),
        simulations_run=t.simulations_run,
        simulations_reused=t.simulations_reused,
        wall_s=round(t.wall_s, 3),
    )


TUNE_FILES = (
    jr.TUNE_JSON,
    jr.REPLICATIONS_CSV,
    jr.TRIALS_CSV,
    jr.REEVALUATION_CSV,
    jr.PARETO_CSV,
    jr.PARETO_PNG,
    jr.SURFACE_PNG,
    jr.SCENARIO_YAML,
)
"""Every file a tune folder holds, running or complete."""


def tune_owned(path: Path) -> set[str]:
    """The files of a tune folder that tokensim wrote (none when it is not one).

    The complete folder replaces the running one only when it holds nothing else
    (sim.results.atomic).
    """
    return set(TUNE_FILES) if jr.is_tune_folder(path) else set()


def write_tune(t: Tuning, out: Path, plot: bool = True) -> Path:
    """Write the complete tune folder at ``out`` atomically (replacing the running one).

    A folder holding a file tokensim did not write is left alone
    (``sim.results.folder_checks.FolderChangedError``).
    """

    def fill(d: Path) -> None:
        t.replications.to_csv(d / jr.REPLICATIONS_CSV, index=False)
        t.trials.to_csv(d / jr.TRIALS_CSV, index=False)
        t.reevaluation.to_csv(d / jr.REEVALUATION_CSV, index=False)
        t.pareto.to_csv(d / jr.PARETO_CSV, index=False)
        (d / jr.SCENARIO_YAML).write_text(
            yaml.safe_dump(t.scenario.model_dump(mode="json"), sort_keys=False)
        )
        if plot:
            from sim.pricing.plots import plot_pareto, plot_surface

            plot_pareto(t, d / jr.PARETO_PNG)
            plot_surface(t, d / jr.SURFACE_PNG)
        (d / jr.TUNE_JSON).write_text(jr.json_text(tune_summary(t)))

    return atomic_folder(Path(out), fill, tune_owned)


def _fmt(x: Any) -> str:
    """A figure for the terminal: thousands with separators, small numbers to 4 digits."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    x = float(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def short_names(paths: list[str]) -> dict[str, str]:
    """Each path by its last part when those are unique (``price_per_month``), else in full."""
    leaves = [p.split(".")[-1] for p in paths]
    unique = len(set(leaves)) == len(leaves)
    return {p: (leaf if unique else p) for p, leaf in zip(paths, leaves, strict=True)}


def answer_lines(t: Tuning) -> list[str]:
    """The answer, the re-evaluation and the Pareto front as lines a person reads."""
    a = t.answer
    lines = [f"warning: {n}" for n in t.notes]
    lines.append(f"answer ({a['status']}): {a['reason']}")
    metric = t.objective.metric
    unit = a["unit"]
    lines.append(
        f"re-evaluation on {a['pairs']} fresh replications ({metric}, {unit}; difference vs"
        " the scenario as given, paired, 95% CI):"
    )
    paths = [p.path for p in t.parameters]
    name = short_names(paths)
    for r in t.reevaluation.to_dict(orient="records"):
        values = ", ".join(f"{name[k]}={_fmt(r[k])}" for k in paths)
        cons = "".join(
            f"; {c.metric} {_fmt(r[c.metric])}" for c in t.constraints if c.metric != metric
        )
        diff = (
            ""
            if r["role"] == "incumbent"
            else f"; difference {_fmt(r['difference'])} [{_fmt(r['difference ci95_low'])},"
            f" {_fmt(r['difference ci95_high'])}]"
        )
        mark = " <- chosen" if r["chosen"] else ""
        who = "as given" if r["role"] == "incumbent" else f"trial {r['trial']}"
        lines.append(
            f"  {who:>9}: {values}: {_fmt(r[metric])} [{_fmt(r[metric + ' ci95_low'])},"
            f" {_fmt(r[metric + ' ci95_high'])}]{cons}{diff}"
            f"{'' if r['feasible'] else ' (breaks a constraint)'}{mark}"
        )
    margin, churn = "gross_margin", "churn_rate_monthly"
    lines.append(
        f"Pareto front, {len(t.pareto)} point(s) (more {margin} in {t.base.currency},"
        f" less {churn}; on the search's replications):"
    )
    for r in t.pareto.head(SHOWN_FRONT_ROWS).to_dict(orient="records"):
        values = ", ".join(f"{name[k]}={_fmt(r[k])}" for k in paths)
        lines.append(f"  {values}: {margin} {_fmt(r[margin])}, {churn} {_fmt(r[churn])}")
    if len(t.pareto) > SHOWN_FRONT_ROWS:
        lines.append(f"  ... {len(t.pareto) - SHOWN_FRONT_ROWS} more in pareto.csv")
    return lines


def unit_of(metric: str, currency: str) -> str:
    """The metric's unit with the scenario's currency in place of ``currency``."""
    return METRICS[metric][0].replace("currency", currency)
