"""Compare run folders plan by plan or segment by segment, with paired differences.

``compare --by plan`` (or ``segment``) computes, for every replication of every run, the
figures of each plan (segment) from the run's ``monthly_by_plan_segment.csv``: subscribers
at the end, sign-ups, churn, revenue by source and per subscriber-month, requests, tokens,
refusals, ... (:data:`GROUP_KPIS`). Each run's mean with its 95% interval inside the
figure's range, and its difference against the first run paired replication by replication
(common random numbers,
``sim.results.compare.paired_stats``) with the interval of those differences, as for the
market totals.

The counts and money (:data:`ADDITIVE`) add up over the plans (or segments) of a
replication to the run's market totals (``kpis_by_replication.csv``, ``monthly.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim.engine.metrics import MONTHLY
from sim.results.compare import ComparedRun, CompareError, open_runs, paired_stats
from sim.results.kpis import KPIS, bounds_of_unit
from sim.results.run_folder import KEY_SEED, MONTHLY_BY_PLAN_SEGMENT, read_table
from sim.results.table_checks import TableError
from sim.units import TOKENS_PER_MTOK

BY = ("plan", "segment")
"""What ``compare --by`` groups by: the columns of ``monthly_by_plan_segment.csv``."""

GROUP_KPIS: dict[str, tuple[str, str]] = {
    "subscribers_end": KPIS["subscribers_end"],
    "new": ("subscribers", "signed up over the horizon"),
    "churned": ("subscribers", "left at a renewal over the horizon"),
    "churn_rate_monthly": KPIS["churn_rate_monthly"],
    "switched_in": ("subscribers", "moved to this plan at a renewal over the horizon"),
    "switched_out": ("subscribers", "moved away from this plan at a renewal over the horizon"),
    "subscriber_months": ("subscriber-months", MONTHLY["submonths"][1]),
    "revenue_fees": KPIS["revenue_fees"],
    "revenue_overage": KPIS["revenue_overage"],
    "revenue_topups": KPIS["revenue_topups"],
    "revenue_total": KPIS["revenue_total"],
    "fees_per_subscriber_month": ("currency", "revenue_fees / subscriber_months"),
    "revenue_per_subscriber_month": ("currency", "revenue_total / subscriber_months (ARPU)"),
    "requests": KPIS["requests"],
    "tokens_served": KPIS["tokens_served"],
    "refused_share": KPIS["refused_share"],
    "abandoned_share": KPIS["abandoned_share"],
    "throttled_share": KPIS["throttled_share"],
    "exhausted_share": KPIS["exhausted_share"],
    "effective_price_per_mtok": KPIS["effective_price_per_mtok"],
    "api_list_value": KPIS["api_list_value"],
}
"""Figure -> (unit, description) per plan or segment; names shared with the headline KPIs
(``sim.results.kpis.KPIS``) mean the same, restricted to the plan's (segment's) subscribers."""

PLAN_ONLY = ("switched_in", "switched_out")
"""Figures of plans only (a segment's switches in and out are the same moves)."""

ADDITIVE = (
    "subscribers_end",
    "new",
    "churned",
    "subscriber_months",
    "revenue_fees",
    "revenue_overage",
    "revenue_topups",
    "revenue_total",
    "requests",
    "tokens_served",
    "api_list_value",
)
"""Figures whose values over all plans (or all segments) sum to the market's."""

_SUMMED = {
    "new": "new",
    "churned": "churned",
    "switched_in": "switched_in",
    "switched_out": "switched_out",
    "subscriber_months": "submonths",
    "exhausted": "exhausted",
    "requests": "requests",
    "served": "served",
    "throttled": "throttled",
    "abandoned": "abandoned",
    "tokens_served": "tokens_served",
    "revenue_fees": "revenue_fees",
    "revenue_overage": "revenue_overage",
    "revenue_topups": "revenue_topups",
    "api_list_value": "api_list_value",
}
"""Sums over the horizon (figure -> counter of ``sim.engine.metrics.MONTHLY``)."""
LATER_COUNTERS = (
    "switched_in",
    "switched_out",
    "exhausted",
    "throttled",
    "abandoned",
    "api_list_value",
)
"""Counters a per-plan table of an earlier version may lack: their figures are then blank (NaN)."""
_NEEDED = (
    "replication",
    "month",
    *BY,
    "subscribers_end",
    "renewals",
    *(c for c in _SUMMED.values() if c not in LATER_COUNTERS),
)


def group_kpis(by: str) -> list[str]:
    """The figures compared per ``by`` (a value of :data:`BY`)."""
    return [k for k in GROUP_KPIS if by == "plan" or k not in PLAN_ONLY]


def _check_by(by: str) -> None:
    if by not in BY:
        raise CompareError(f"--by {by!r}: give one of {', '.join(BY)}")


def _group_names(scenario: dict[str, Any], by: str) -> list[str]:
    """The scenario's plans (or segments), in its order."""
    items = scenario.get(f"{by}s") or []
    return [str(i["name"]) for i in items if isinstance(i, dict) and "name" in i]


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


def group_values(run: ComparedRun, by: str) -> pd.DataFrame:
    """Per (replication, plan or segment) the :data:`GROUP_KPIS` of one run.

    Indexed by ``replication`` and ``by``; every plan (segment) of the run's scenario has a
    row in every replication (zero counts where it had no subscriber). Raises CompareError
    naming the file when the run's per-plan table lacks a column.
    """
    _check_by(by)
    f = run.path / MONTHLY_BY_PLAN_SEGMENT
    try:
        df = read_table(f, LATER_COUNTERS)  # NaN where an earlier version lacks them
    except TableError as e:  # a damaged cell: the message names the file, column and line
        raise CompareError(str(e)) from None
    except (OSError, ValueError) as e:
        raise CompareError(f"{f}: cannot be read ({e})") from None
    missing = [c for c in _NEEDED if c not in df]
    if missing:
        raise CompareError(f"{f}: no per-{by} figures (lacks column(s) {', '.join(missing)})")
    df[by] = df[by].astype(str)
    keys = ["replication", by]
    t = pd.DataFrame({k: df.groupby(keys)[c].sum() for k, c in _SUMMED.items()})
    last = int(run.scenario.get("horizon_months", df["month"].max() + 1)) - 1
    t["subscribers_end"] = df[df["month"] == last].groupby(keys)["subscribers_end"].sum()
    monthly = df.groupby([*keys, "month"])[["churned", "renewals"]].sum()
    t["churn_rate_monthly"] = (
        _ratio(monthly["churned"], monthly["renewals"]).groupby(level=keys).mean()
    )
    groups = list(dict.fromkeys([*_group_names(run.scenario, by), *df[by]]))
    reps = sorted(df["replication"].unique())
    full = pd.MultiIndex.from_product([reps, groups], names=keys)
    t = t.reindex(full)
    counts = [c for c in t if c != "churn_rate_monthly"]
    t[counts] = t[counts].fillna(0.0)  # a plan without subscribers in a replication
    lacking = [k for k, c in _SUMMED.items() if df[c].isna().all()]
    t[lacking] = float("nan")  # a counter the table does not hold
    t["revenue_total"] = t["revenue_fees"] + t["revenue_overage"] + t["revenue_topups"]
    t["fees_per_subscriber_month"] = _ratio(t["revenue_fees"], t["subscriber_months"])
    t["revenue_per_subscriber_month"] = _ratio(t["revenue_total"], t["subscriber_months"])
    refused = t["requests"] - t["served"] - t["abandoned"]
    t["refused_share"] = _ratio(refused, t["requests"])
    t["abandoned_share"] = _ratio(t["abandoned"], t["requests"])
    t["throttled_share"] = _ratio(t["throttled"], t["requests"])
    t["exhausted_share"] = _ratio(t["exhausted"], t["subscriber_months"])
    t["effective_price_per_mtok"] = _ratio(t["revenue_total"] * TOKENS_PER_MTOK, t["tokens_served"])
    return t[list(GROUP_KPIS)]


def compare_by(paths: Sequence[Path], by: str) -> pd.DataFrame:
    """One row per (plan or segment, run, figure): mean, 95% CI, paired difference vs the first.

    Columns: ``by`` (the plan or segment), the run's identity (``run``, ``label``,
    scenario, seed, currency), ``kpi``, ``unit``, the statistics of
    ``sim.results.compare.STAT_COLUMNS``, ``paired`` (same seed as the first run),
    ``present`` (the plan or segment is in the run's scenario) and ``changes``. Plans
    (segments) come in the first run's order, then those only later runs have. Raises
    CompareError (nothing computed) on an unknown ``by`` or a folder that is not a complete
    run folder with per-plan figures.
    """
    _check_by(by)
    runs = open_runs(paths)
    values = [group_values(r, by) for r in runs]
    groups = list(dict.fromkeys(g for v in values for g in v.index.get_level_values(by)))
    base_seed = runs[0].manifest.get(KEY_SEED)
    empty = pd.Series(dtype=float)
    rows = []
    for g in groups:
        per_run = [v.xs(g, level=by) if g in v.index.get_level_values(by) else None for v in values]
        base = per_run[0]
        for run, vals in zip(runs, per_run, strict=True):
            for kpi in group_kpis(by):
                unit = GROUP_KPIS[kpi][0]
                stats = paired_stats(
                    empty if vals is None else vals[kpi],
                    empty if base is None else base[kpi],
                    bounds_of_unit(unit),
                )
                rows.append(
                    {
                        by: g,
                        **run.identity(),
                        "kpi": kpi,
                        "unit": unit,
                        **stats,
                        "paired": run.manifest.get(KEY_SEED) == base_seed,
                        "present": vals is not None,
                        "changes": run.label.changes_text(),
                    }
                )
    return pd.DataFrame(rows)
