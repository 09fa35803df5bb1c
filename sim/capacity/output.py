"""The sizing folder: the answer, the evidence and a plot, written atomically.

::

    size.json         options, the answer per pool (and month), confidence, notes, the
                      simulated months and wall time spent
    answer.csv        one row per sized cell (pool, or pool x month with --by-month; a
                      disaggregated pool's parts ``POOL:prefill`` and ``POOL:decode`` are
                      pools here, with NaN for the targets that do not judge them)
    evaluations.csv   one row per simulated count vector x cell: busy-hour quantiles with
                      95% intervals, goodput, utilisation, GPU cost, margin, churn
    schedule.yaml     the ``schedule:`` block of each pool (or part) and the orders,
                      ``lead_months`` ahead
    scenario.yaml     the scenario at the answer (runs as is with ``tokensim run``)
    size.png          per pool (or part): GPUs -> each target judging it, its busy-hour
                      quantile (with the bound and the analytic estimate's curve), goodput
                      and utilisation, and the run's GPU cost, gross margin and churn
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim import __version__
from sim.capacity.search import Sizing
from sim.results.atomic import atomic_folder

SIZE_JSON = "size.json"
"""The question and the answer (see the module docstring)."""
ANSWER_CSV = "answer.csv"
"""One row per sized cell."""
EVALUATIONS_CSV = "evaluations.csv"
"""One row per simulated count vector x cell."""
SCHEDULE_YAML = "schedule.yaml"
"""The procurement schedule and the order dates."""
SCENARIO_YAML = "scenario.yaml"
"""The scenario at the answer."""
SIZE_PNG = "size.png"
"""The plot of the evidence."""
KIND_SIZE = "size"
"""Value of size.json's ``kind``, telling a sizing folder from run and sweep folders."""


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def is_size_folder(path: Path) -> bool:
    """True when ``path`` holds a size.json written by tokensim (so it may be replaced)."""
    try:
        return json.loads((Path(path) / SIZE_JSON).read_text()).get("kind") == KIND_SIZE
    except (OSError, ValueError, AttributeError):
        return False


SIZE_FILES = (SIZE_JSON, ANSWER_CSV, EVALUATIONS_CSV, SCHEDULE_YAML, SCENARIO_YAML, SIZE_PNG)
"""Every file :func:`write_size` writes."""


def size_owned(path: Path) -> set[str]:
    """The files of a sizing folder that tokensim wrote (none when it is not one).

    A new sizing replaces the folder only when it holds nothing else (sim.results.atomic).
    """
    return set(SIZE_FILES) if is_size_folder(path) else set()


def size_summary(sz: Sizing, options: dict[str, Any]) -> dict[str, Any]:
    """The content of size.json."""
    return _clean(
        {
            "kind": KIND_SIZE,
            "package": "tokensim",
            "version": __version__,
            "scenario": sz.scenario.name,
            "targets": [t.label for t in sz.targets],
            "options": options,
            "answer": sz.answer.to_dict(orient="records"),
            "notes": sz.notes,
            "replications_run": sz.replications_run,
            "simulated_months": sz.simulated_months,
            "wall_s": round(sz.wall_s, 3),
        }
    )


def write_size(sz: Sizing, out: Path, options: dict[str, Any], plot: bool = True) -> Path:
    """Write the sizing folder at ``out`` atomically (replacing an earlier one).

    An earlier folder holding a file tokensim did not write is left alone
    (``sim.results.folder_checks.FolderChangedError``).
    """

    def fill(d: Path) -> None:
        sz.answer.to_csv(d / ANSWER_CSV, index=False)
        sz.evaluations.to_csv(d / EVALUATIONS_CSV, index=False)
        sched = {
            "schedule": sz.schedule,
            "orders": sz.orders.to_dict(orient="records"),
            "lead_months": options.get("lead_months", 0),
        }
        (d / SCHEDULE_YAML).write_text(yaml.safe_dump(_clean(sched), sort_keys=False))
        (d / SCENARIO_YAML).write_text(
            yaml.safe_dump(sz.scenario.model_dump(mode="json"), sort_keys=False)
        )
        if plot:
            plot_size(sz, d / SIZE_PNG)
        (d / SIZE_JSON).write_text(json.dumps(size_summary(sz, options), indent=2) + "\n")

    return atomic_folder(Path(out), fill, size_owned)


def plot_size(sz: Sizing, path: Path) -> None:
    """Per pool: GPUs -> each target's busy-hour quantile (95% CI, analytic curve), and load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ev = sz.evaluations
    ev = ev[ev["month"] == -1] if (ev["month"] == -1).any() else ev
    pools = list(dict.fromkeys(ev["pool"]))
    fig, axes = plt.subplots(3, len(pools), figsize=(max(5.5 * len(pools), 7.0), 11), squeeze=False)
    currency = sz.scenario.currency
    for k, pool in enumerate(pools):
        g = ev[ev["pool"] == pool].sort_values("replications").groupby("gpus").last()
        g = g.reset_index().sort_values("gpus")
        ax = axes[0][k]
        for t in [t for t in sz.targets if g[t.label].notna().any()]:  # those judging the pool
            low = (g[t.label] - g[f"{t.label} ci95_low"]).clip(lower=0)
            high = (g[f"{t.label} ci95_high"] - g[t.label]).clip(lower=0)
            line = ax.errorbar(
                g["gpus"],
                g[t.label],
                yerr=[low, high],
                marker="o",
                capsize=3,
                label=f"{t.label} simulated (95% CI)",
            )
            analytic = g[f"{t.label} analytic"].replace(np.inf, np.nan)
            if analytic.notna().any():
                ax.plot(
                    g["gpus"],
                    analytic,
                    linestyle=":",
                    color=line[0].get_color(),
                    label=f"{t.label} analytic M/G/c",
                )
            ax.axhline(t.bound_s, linestyle="--", color="grey", linewidth=1)
        chosen = sz.answer[sz.answer["pool"] == pool]["gpus"].max()
        ax.axvline(chosen, color="green", linewidth=1, label=f"answer: {chosen} GPUs")
        ax.set(title=f"{pool}: busy-hour latency, worst month", xlabel="GPUs", ylabel="s")
        ax.legend(fontsize=7)
        ax2 = axes[1][k]
        ax2.plot(g["gpus"], g["busy_hour_goodput"], marker="o", label="busy-hour goodput")
        ax2.plot(g["gpus"], g["busy_hour_utilisation"], marker="s", label="busy-hour utilisation")
        ax2.set(xlabel="GPUs", ylabel="share", ylim=(0, 1.05), title=f"{pool}: service and load")
        ax2.legend(fontsize=7)
        ax3 = axes[2][k]
        ax3.plot(g["gpus"], g["gpu_cost"], marker="o", label="GPU cost")
        ax3.plot(g["gpus"], g["gross_margin"], marker="s", label="gross margin")
        ax3.set(
            xlabel="GPUs",
            ylabel=f"{currency} over the horizon",
            title=f"{pool}: money and churn of the whole run",
        )
        ax3.legend(fontsize=7, loc="upper left")
        churn = ax3.twinx()
        churn.plot(g["gpus"], g["churn_rate_monthly"], color="tab:red", marker="^", label="churn")
        churn.set_ylabel("monthly churn (share)", color="tab:red")
        churn.legend(fontsize=7, loc="upper right")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.suptitle(f"{sz.scenario.name}: sizing for {', '.join(t.label for t in sz.targets)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def answer_lines(sz: Sizing) -> list[str]:
    """The answer as lines a person reads in a terminal."""
    lines = []
    for r in sz.answer.to_dict(orient="records"):
        when = "" if r["month"] == -1 else f" month {r['month']}"
        figures = ", ".join(
            f"{t.metric} p{t.quantile * 100:g} {r[t.label]:.3g} s"
            f" [{r[t.label + ' ci95_low']:.3g}, {r[t.label + ' ci95_high']:.3g}]"
            for t in sz.targets
            if not _is_nan(r[t.label])  # NaN: a target that does not judge this part
        )
        guess = r["analytic_replicas"]
        lines.append(
            f"  {r['pool']}{when}: {r['replicas']} replicas = {r['gpus']} GPUs ({figures};"
            f" {r['fails_at_replicas']} replicas fail; confidence {r['confidence']};"
            f" analytic estimate {'-' if guess is None or guess != guess else int(guess)})"
        )
    return lines
