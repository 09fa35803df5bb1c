"""``tokensim report``: one self-contained HTML file from a run, a sweep, or several runs.

The page has no external references: CSS is inline, figures are SVG data URIs
drawn by matplotlib (``sim.report_figures``), and there is no JavaScript. It is
written atomically (a temporary file beside the target, then ``os.replace``), so a
failure leaves nothing behind.

* one run folder: headline KPIs with 95% confidence intervals, subscribers and
  churn by plan, revenue vs GPU cost and margin, token mix by model, latency
  percentiles and utilisation over the day, quota use per plan, scenario facts;
* several run folders: the side-by-side KPI table with paired differences
  against the first run (``sim.compare``) and the key series overlaid;
* a sweep folder (``sweep.json``, ``points.csv``, ``points/<point>/``): each KPI's
  response to each swept parameter (mean and 95% CI per value, marginal over the
  other parameters and the replications) and a table of the points.

The data functions (``quota_use_table``, ``token_mix``, ``sweep_response``, ...) are
public so that notebooks and tests get the numbers behind every figure.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from sim import __version__
from sim.defaults import SECONDS_PER_HOUR
from sim.results import KPIS, mean_ci

RUN_FILES = ("manifest.json", "summary.json", "scenario.yaml", "kpis_by_replication.csv",
             "monthly.csv", "monthly_by_plan_segment.csv", "hourly_cluster.parquet",
             "latency.csv")  # fmt: skip
"""Files a run folder must hold for a report (``ledger.parquet`` is optional)."""

SWEEP_FILES = ("sweep.json", "points.csv")
"""Files a sweep folder must hold for a report."""

RESPONSE_KPIS = (
    "revenue_total",
    "gross_margin",
    "gross_margin_share",
    "subscribers_end",
    "churn_rate_monthly",
    "exhausted_share",
    "ttft_p95_s",
    "gpu_utilisation",
)
"""KPIs shown in the sweep figures and tables (``sweep_response`` computes all of KPIS)."""

HOURS_OF_DAY = 24


class ReportError(Exception):
    """A path that is not a complete run or sweep folder, or a file in it that cannot be read."""


# ---------------------------------------------------------------------- reading folders


def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(path)
    except FileNotFoundError:
        raise ReportError(f"{path}: missing") from None
    except Exception as e:  # a corrupt file of any kind: name it
        raise ReportError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


def _need_columns(path: Path, df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class RunFolder:
    """A tokensim run folder, its small files read eagerly and its tables on first use."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    scenario: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """Check that ``path`` is a complete run folder and read its manifest, summary, scenario.

        Raises ReportError naming the path when it is not.
        """
        path = Path(path)
        if not path.is_dir():
            raise ReportError(f"{path}: not a folder")
        missing = [f for f in RUN_FILES if not (path / f).is_file()]
        if "manifest.json" in missing:
            raise ReportError(f"{path}: not a tokensim run folder (no manifest.json)")
        manifest = _read(path / "manifest.json", _json)
        if not isinstance(manifest, dict) or manifest.get("package") != "tokensim":
            raise ReportError(f"{path / 'manifest.json'}: not written by tokensim")
        if manifest.get("status") != "complete":
            raise ReportError(f"{path}: run folder is not complete (status "
                              f"{manifest.get('status')!r})")  # fmt: skip
        listed = set(manifest.get("files", []))
        if "ledger.parquet" in listed and not (path / "ledger.parquet").is_file():
            missing.append("ledger.parquet")
        if missing:
            raise ReportError(f"{path}: run folder lacks {', '.join(missing)}")
        summary = _read(path / "summary.json", _json)
        scenario = _read(path / "scenario.yaml", lambda p: yaml.safe_load(p.read_text("utf-8")))
        if not isinstance(summary, dict) or not isinstance(scenario, dict):
            raise ReportError(f"{path}: summary.json or scenario.yaml is not a mapping")
        return cls(path, manifest, summary, scenario)

    @property
    def name(self) -> str:
        """The folder's name (reports never show the full path)."""
        return self.path.name

    @property
    def currency(self) -> str:
        """Currency code of money KPIs."""
        return str(self.manifest.get("currency") or self.scenario.get("currency") or "currency")

    @property
    def replications(self) -> int:
        """Number of replications in the run."""
        return int(self.manifest.get("replications") or 1)

    def _csv(self, name: str, cols: Sequence[str]) -> pd.DataFrame:
        p = self.path / name
        return _need_columns(p, _read(p, pd.read_csv), cols)

    @cached_property
    def kpis(self) -> pd.DataFrame:
        """kpis_by_replication.csv."""
        return self._csv("kpis_by_replication.csv", ["replication", *KPIS])

    @cached_property
    def months(self) -> pd.DataFrame:
        """monthly.csv (replication x month)."""
        return self._csv("monthly.csv", ["replication", "month", "subscribers_end", "churn_rate",
                                         "revenue_fees", "revenue_overage", "revenue_topups",
                                         "revenue_total", "gpu_cost", "gross_margin",
                                         "ttft_p95_s"])  # fmt: skip

    @cached_property
    def by_plan(self) -> pd.DataFrame:
        """monthly_by_plan_segment.csv (replication x month x plan x segment)."""
        return self._csv("monthly_by_plan_segment.csv",
                         ["replication", "month", "plan", "segment", "subscribers_end", "new",
                          "renewals", "churned", "switched_in", "switched_out", "submonths",
                          "revenue_fees", "revenue_overage", "revenue_topups"])  # fmt: skip

    @cached_property
    def hourly(self) -> pd.DataFrame:
        """The columns of hourly_cluster.parquet the report needs."""
        p = self.path / "hourly_cluster.parquet"
        cols = ["replication", "hour_of_day", "pool", "slots", "busy_slot_s", "wait_sum_s",
                "started"]  # fmt: skip
        df = _read(p, lambda q: pd.read_parquet(q))
        return _need_columns(p, df, cols)[cols]

    @cached_property
    def latency(self) -> pd.DataFrame:
        """latency.csv (replication x month x pool x SLA class)."""
        q = [f"{w}_p{n}_s" for w in ("ttft", "e2e") for n in (50, 95, 99)]
        return self._csv("latency.csv", ["replication", "month", "pool", "sla_class", "requests",
                                         "wait_mean_s", "slo_attainment", *q])  # fmt: skip

    @cached_property
    def ledger(self) -> pd.DataFrame | None:
        """The ledger's plan, status, quota, usage and per-model token columns, or None."""
        p = self.path / "ledger.parquet"
        if not p.is_file():
            return None
        import pyarrow.parquet as pq

        names = _read(p, lambda q: pq.read_schema(q).names)
        base = ["replication", "plan", "status", "quota_units", "used_units", "exhausted"]
        _need_columns(p, pd.DataFrame(columns=names), base)
        cols = base + [c for c in names if c.startswith("tokens|")]
        return _read(p, lambda q: pd.read_parquet(q, columns=cols))

    def load(self, ledger: bool = True) -> None:
        """Read (and check) every table now, so that a bad file fails before any drawing."""
        _ = (self.kpis, self.months, self.by_plan, self.hourly, self.latency)
        if ledger:
            _ = self.ledger

    @cached_property
    def plan_order(self) -> list[str]:
        """Plan names in the scenario's order."""
        return [str(p.get("name")) for p in self.scenario.get("plans", [])]


@dataclass
class SweepFolder:
    """A sweep folder: its specification (sweep.json) and tidy points table (points.csv)."""

    path: Path
    spec: dict[str, Any]
    points: pd.DataFrame
    parameters: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path) -> SweepFolder:
        """Check and read ``sweep.json`` and ``points.csv``; raise ReportError naming the path."""
        path = Path(path)
        missing = [f for f in SWEEP_FILES if not (path / f).is_file()]
        if missing:
            raise ReportError(f"{path}: sweep folder lacks {', '.join(missing)}")
        spec = _read(path / "sweep.json", _json)
        need = ("scenario", "design", "parameters", "points", "replications", "seed")
        if not isinstance(spec, dict) or any(k not in spec for k in need):
            raise ReportError(f"{path / 'sweep.json'}: needs keys {', '.join(need)}")
        try:
            params = [str(p["path"]) for p in spec["parameters"]]
        except (TypeError, KeyError):
            raise ReportError(f"{path / 'sweep.json'}: each parameter needs a 'path'") from None
        if not params:
            raise ReportError(f"{path / 'sweep.json'}: no swept parameters")
        p = path / "points.csv"
        if p.stat().st_size == 0 or not p.read_text(encoding="utf-8", errors="replace").strip():
            raise ReportError(f"{p}: no finished points")
        points = _need_columns(p, _read(p, pd.read_csv), ["point", "replication", *params, *KPIS])
        if points.empty:
            raise ReportError(f"{p}: no finished points")
        return cls(path, spec, points, params)

    @property
    def name(self) -> str:
        """The folder's name."""
        return self.path.name

    @property
    def currency(self) -> str:
        """Currency of the first point's run folder when readable, else 'currency'."""
        for point in self.points["point"].unique():
            try:
                m = _json(self.path / "points" / str(point) / "manifest.json")
                return str(m.get("currency") or "currency")
            except (OSError, ValueError, AttributeError):
                continue
        return "currency"


def folder_kind(path: Path) -> Literal["run", "sweep"]:
    """Whether ``path`` is a sweep folder (has sweep.json) or otherwise a run folder.

    Raises ReportError when it is neither.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such folder")
    if (path / "sweep.json").is_file():
        return "sweep"
    if (path / "manifest.json").is_file():
        return "run"
    raise ReportError(f"{path}: not a tokensim run or sweep folder (no manifest.json or "
                      "sweep.json)")  # fmt: skip


# ---------------------------------------------------------------------- the numbers


def _ci_table(df: pd.DataFrame, by: str | list[str], col: str) -> pd.DataFrame:
    """Mean and 95% CI of ``col`` over the rows of each group (columns mean, ci95_low/high)."""
    rows = {key: mean_ci(g[col].to_numpy(dtype=float)) for key, g in df.groupby(by, observed=True)}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "ci95_low", "ci95_high"])
    out.index.name = by if isinstance(by, str) else None
    return out


def _order(index: Sequence[Any], preferred: Sequence[str]) -> list[Any]:
    known = [p for p in preferred if p in set(index)]
    return known + sorted(str(i) for i in index if i not in set(known))


def month_series(months: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Per month: mean over replications of each column and its 95% CI (``col_lo``, ``col_hi``).

    ``months`` is a run's monthly.csv; units are those of the columns.
    """
    out = {}
    for c in cols:
        t = _ci_table(months, "month", c)
        out[c], out[f"{c}_lo"], out[f"{c}_hi"] = t["mean"], t["ci95_low"], t["ci95_high"]
    return pd.DataFrame(out)


def subscribers_by_plan(by_plan: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Month-end subscribers per month (rows) and plan (columns), mean over replications."""
    s = by_plan.groupby(["replication", "month", "plan"])["subscribers_end"].sum()
    t = s.groupby(["month", "plan"]).mean().unstack("plan").fillna(0.0)
    return t[_order(list(t.columns), plans)]


def churn_by_plan(by_plan: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Monthly churn rate (churned / renewal decisions) per month and plan, mean over replications.

    Months without renewal decisions are NaN.
    """
    g = by_plan.groupby(["replication", "month", "plan"])[["churned", "renewals"]].sum()
    rate = g["churned"] / g["renewals"].where(g["renewals"] > 0)
    t = rate.groupby(["month", "plan"]).mean().unstack("plan")
    return t[_order(list(t.columns), plans)]


def plan_table(by_plan: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Per plan over the horizon, mean per replication: subscribers, flows, churn, revenue.

    Columns: subscribers_end (last month), new, churned, switched_in, switched_out,
    churn_rate (churned / renewal decisions, share), revenue_fees, revenue_overage,
    revenue_topups, revenue_total (currency) and revenue_per_submonth (currency per
    subscriber-month).
    """
    reps = by_plan["replication"].nunique()
    last = by_plan[by_plan["month"] == by_plan["month"].max()]
    flows = ["new", "churned", "renewals", "switched_in", "switched_out", "submonths",
             "revenue_fees", "revenue_overage", "revenue_topups"]  # fmt: skip
    t = by_plan.groupby("plan")[flows].sum() / reps
    t.insert(0, "subscribers_end", last.groupby("plan")["subscribers_end"].sum() / reps)
    t["subscribers_end"] = t["subscribers_end"].fillna(0.0)
    t["churn_rate"] = t["churned"] / t["renewals"].where(t["renewals"] > 0)
    t["revenue_total"] = t["revenue_fees"] + t["revenue_overage"] + t["revenue_topups"]
    t["revenue_per_submonth"] = t["revenue_total"] / t["submonths"].where(t["submonths"] > 0)
    return t.drop(columns=["renewals"]).loc[_order(list(t.index), plans)]


def quota_use(ledger: pd.DataFrame) -> pd.DataFrame:
    """Quota use of every closed subscriber-month: columns replication, plan, use (share).

    use = used_units / quota_units. Months still open at the end of the horizon (a
    partial month) and months without a quota are left out.
    """
    closed = ledger[(ledger["status"].astype(str) != "open") & (ledger["quota_units"] > 0)]
    return pd.DataFrame(
        {
            "replication": closed["replication"].to_numpy(),
            "plan": closed["plan"].astype(str).to_numpy(),
            "use": (closed["used_units"] / closed["quota_units"]).to_numpy(dtype=float),
            "exhausted": closed["exhausted"].to_numpy(dtype=bool),
        }
    )


QUOTA_PERCENTILES = (5, 25, 50, 75, 95, 99)


def quota_use_table(ledger: pd.DataFrame, plans: Sequence[str] = ()) -> pd.DataFrame:
    """Distribution of quota use per plan over all closed subscriber-months of all replications.

    Columns: subscriber_months (count), mean, p05 ... p99 (shares of the quota; numpy's
    linear percentiles), over_quota (share of months with use >= 1) and exhausted (share
    of months the ledger marks as having crossed the quota).
    """
    q = quota_use(ledger)
    rows = {}
    for plan, g in q.groupby("plan"):
        u = g["use"].to_numpy()
        row = {"subscriber_months": len(u), "mean": float(u.mean())}
        for p, v in zip(QUOTA_PERCENTILES, np.percentile(u, QUOTA_PERCENTILES), strict=True):
            row[f"p{p:02d}"] = float(v)
        row["over_quota"] = float((u >= 1.0).mean())
        row["exhausted"] = float(g["exhausted"].mean())
        rows[plan] = row
    t = pd.DataFrame.from_dict(rows, orient="index")
    t.index.name = "plan"
    return t.loc[_order(list(t.index), plans)] if len(t) else t


def token_mix(ledger: pd.DataFrame, plans: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tokens by model and class, and each plan's split across models, from the ledger.

    Returns ``(mix, share_by_plan)``: ``mix`` has one row per model and columns input_miss,
    input_hit, output (tokens per replication over the horizon); ``share_by_plan`` has one
    row per plan and one column per model (shares of the plan's tokens, rows sum to 1).
    """
    cols = [c for c in ledger.columns if c.startswith("tokens|") and c.count("|") == 2]
    reps = max(ledger["replication"].nunique(), 1)
    sums = ledger[cols].sum()
    keys = [tuple(c.split("|")[1:]) for c in cols]
    mix = pd.Series(sums.to_numpy(), index=pd.MultiIndex.from_tuples(keys)).unstack() / reps
    mix = mix.reindex(columns=["input_miss", "input_hit", "output"]).fillna(0.0)
    by_plan = ledger.groupby(ledger["plan"].astype(str))[cols].sum()
    by_plan.columns = pd.MultiIndex.from_tuples(keys)
    per_model = by_plan.T.groupby(level=0).sum().T
    total = per_model.sum(axis=1)
    share = per_model.div(total.where(total > 0), axis=0).dropna(how="all")
    return mix, share.loc[_order(list(share.index), plans)]


def latency_table(latency: pd.DataFrame, pools: Sequence[str] = ()) -> pd.DataFrame:
    """Latency per pool and SLA class over the horizon.

    Columns: requests (per replication), and request-weighted means over months and
    replications of the mean wait, the TTFT and end-to-end percentiles (s) and the SLO
    attainment (share). Percentiles of different months cannot be merged exactly from
    latency.csv; the weighted mean of monthly percentiles is the summary shown.
    """
    reps = max(latency["replication"].nunique(), 1)
    vals = ["wait_mean_s", *[f"{w}_p{q}_s" for w in ("ttft", "e2e") for q in (50, 95, 99)],
            "slo_attainment"]  # fmt: skip
    rows = []
    for (pool, cls), g in latency.groupby(["pool", "sla_class"]):
        w = g["requests"].to_numpy(dtype=float)
        row: dict[str, Any] = {"pool": pool, "sla_class": cls, "requests": w.sum() / reps}
        for v in vals:
            x = g[v].to_numpy(dtype=float)
            ok = np.isfinite(x) & (w > 0)
            row[v] = float(np.average(x[ok], weights=w[ok])) if ok.any() else float("nan")
        rows.append(row)
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    rank = {p: i for i, p in enumerate(pools)}
    t["_r"] = t["pool"].map(lambda p: rank.get(p, len(rank)))
    return t.sort_values(["_r", "pool", "sla_class"]).drop(columns="_r").reset_index(drop=True)


def day_profile(
    hourly: pd.DataFrame, pools: Sequence[str] = ()
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Utilisation (share) and mean queue wait (s) by hour of day per pool, with 95% CIs.

    Utilisation of an hour of day = busy slot-seconds / available slot-seconds summed over
    the horizon's days; wait = queue wait seconds / requests started. The CI is over
    replications. Returns ``(utilisation, wait)``: pool -> frame indexed by hour of day.
    """
    g = hourly.groupby(["pool", "replication", "hour_of_day"], observed=True)[
        ["busy_slot_s", "slots", "wait_sum_s", "started"]
    ].sum().reset_index()  # fmt: skip
    cap = g["slots"] * SECONDS_PER_HOUR
    g["utilisation"] = g["busy_slot_s"] / cap.where(cap > 0)
    g["wait_mean_s"] = g["wait_sum_s"] / g["started"].where(g["started"] > 0)
    util, wait = {}, {}
    for pool in _order(list(g["pool"].astype(str).unique()), pools):
        gp = g[g["pool"].astype(str) == pool]
        util[pool] = _ci_table(gp, "hour_of_day", "utilisation")
        wait[pool] = _ci_table(gp, "hour_of_day", "wait_mean_s")
    return util, wait


def cluster_day(hourly: pd.DataFrame) -> pd.DataFrame:
    """The whole cluster's utilisation by hour of day (mean, 95% CI over replications)."""
    g = hourly.groupby(["replication", "hour_of_day"])[["busy_slot_s", "slots"]].sum()
    cap = g["slots"] * SECONDS_PER_HOUR
    g["utilisation"] = g["busy_slot_s"] / cap.where(cap > 0)
    return _ci_table(g.reset_index(), "hour_of_day", "utilisation")


def sweep_response(points: pd.DataFrame, parameters: Sequence[str]) -> pd.DataFrame:
    """Each KPI's response to each swept parameter, marginal over the others.

    For every parameter and each of its values: the mean of every KPI over all rows of
    points.csv with that value (all points with it, all their replications) and the
    Student-t 95% CI of that mean. Columns: parameter, value, kpi, n, mean, ci95_low,
    ci95_high (units of the KPI, see sim.results.KPIS).
    """
    rows = []
    for par in parameters:
        for value, g in points.groupby(par, sort=True):
            for kpi in KPIS:
                x = g[kpi].to_numpy(dtype=float)
                mean, lo, hi = mean_ci(x)
                rows.append({"parameter": par, "value": value, "kpi": kpi,
                             "n": int(np.isfinite(x).sum()), "mean": mean, "ci95_low": lo,
                             "ci95_high": hi})  # fmt: skip
    return pd.DataFrame(rows)


def sweep_points(points: pd.DataFrame, parameters: Sequence[str]) -> pd.DataFrame:
    """One row per point: its parameters, replications, and each KPI's mean and 95% CI.

    KPI columns are ``kpi``, ``kpi_lo`` and ``kpi_hi``.
    """
    rows = []
    for point, g in points.groupby("point", sort=True):
        row: dict[str, Any] = {"point": point}
        row.update({p: g[p].iloc[0] for p in parameters})
        row["replications"] = len(g)
        for kpi in KPIS:
            row[kpi], row[f"{kpi}_lo"], row[f"{kpi}_hi"] = mean_ci(g[kpi].to_numpy(dtype=float))
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- formatting


def fmt(x: Any, unit: str = "", currency: str = "", diff: bool = False) -> str:
    """A number for a person: shares in % (points for differences), money with separators."""
    if x is None or (isinstance(x, float | np.floating) and not np.isfinite(x)):
        return "–"
    if not isinstance(x, int | float | np.integer | np.floating):
        return str(x)
    v = float(x)
    sign = "+" if diff and v > 0 else ""
    if unit == "share":
        return f"{sign}{v * 100:.2f}{' pp' if diff else '%'}"
    if unit == "s":
        return f"{sign}{v:.3g} s"
    a = abs(v)
    if unit in ("tokens", "requests") and a >= 1e6:
        big = ((1e12, "T"), (1e9, "B"), (1e6, "M"))
        num = next(f"{v / d:.3g} {s}" for d, s in big if a >= d)
    elif a >= 100 or (v == int(v) and a < 1e15):
        num = f"{v:,.0f}"
    else:
        num = f"{v:,.4g}"
    cur = currency if unit.startswith("currency") else ""
    return f"{sign}{num}{' ' + cur if cur else ''}"


def fmt_ci(mean: Any, lo: Any, hi: Any, unit: str = "", currency: str = "",
           diff: bool = False) -> str:  # fmt: skip
    """``mean [lo, hi]``, or only the mean without an interval."""
    m = fmt(mean, unit, currency, diff)
    if lo is None or not np.isfinite(float(lo)):
        return m
    return f"{m} [{fmt(lo, unit, currency, diff)}, {fmt(hi, unit, currency, diff)}]"


Cell = str | tuple[str, str]
"""A table cell: text, or (text, CSS class)."""


def _table(header: Sequence[str], rows: Sequence[Sequence[Cell]], caption: str = "") -> str:
    def cell(c: Cell, tag: str = "td") -> str:
        text, cls = (c, "") if isinstance(c, str) else c
        attr = f' class="{cls}"' if cls else ""
        return f"<{tag}{attr}>{html.escape(text)}</{tag}>"

    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(cell(h, "th") for h in header)
    body = "\n".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return (f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")  # fmt: skip


def _figure(uri: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{uri}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def _fig(fig: Any, alt: str, caption: str) -> str:
    from sim.report_figures import svg_data_uri

    return _figure(svg_data_uri(fig), alt, caption)


def _p(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


CSS = """
:root { --ink:#1d2433; --muted:#5b6472; --line:#d9dee7; --accent:#2f5d9e; --bg:#fafbfc; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: var(--bg); }
header { background: var(--accent); color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; opacity: .9; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); margin-right: 16px; text-decoration: none; font-size: 14px; }
main { padding: 8px 32px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: 4px 20px 16px; margin: 18px 0; }
h2 { font-size: 19px; border-bottom: 2px solid var(--accent); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
figure { margin: 12px 0; }
figure img { display: block; width: 100%; max-width: 1200px; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.tw { overflow-x: auto; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: 4px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right;
         white-space: nowrap; }
th { background: #eef2f8; position: sticky; top: 0; }
th:first-child, td:first-child { text-align: left; }
td.l { text-align: left; white-space: normal; }
td.up { color: #1b7f3b; font-weight: 600; } td.down { color: #b3261e; font-weight: 600; }
.note { color: var(--muted); font-size: 13px; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
@media print { nav { display: none; } section { break-inside: avoid; border: 0; }
               body { background: #fff; } }
"""


def _page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole HTML document; ``sections`` are (id, heading, inner HTML)."""
    nav = "".join(f'<a href="#{sid}">{html.escape(h)}</a>' for sid, h, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{html.escape(h)}</h2>\n{inner}\n</section>'
        for sid, h, inner in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tokensim {html.escape(__version__)}">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>
<nav>{nav}</nav>
<main>
{body}
</main>
<footer>Written by tokensim {html.escape(__version__)} on \
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. Means are over replications; intervals in
brackets and shaded bands are 95% confidence intervals (Student t).</footer>
</body>
</html>
"""


# ---------------------------------------------------------------------- sections


def _kpi_rows(summary: dict[str, Any], currency: str) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for name, (unit, desc) in KPIS.items():
        s = summary.get(name) or {}
        rows.append([name, fmt(s.get("mean"), unit, currency),
                     fmt(s.get("ci95_low"), unit, currency),
                     fmt(s.get("ci95_high"), unit, currency),
                     _unit_label(unit, currency), (desc, "l")])  # fmt: skip
    return rows


def _unit_label(unit: str, currency: str) -> str:
    return unit.replace("currency", currency)


def _facts(run: RunFolder) -> str:
    m, s = run.manifest, run.scenario
    facts: list[list[Cell]] = [
        ["scenario", (str(m.get("scenario")), "l")],
        ["description", (str(s.get("description") or ""), "l")],
        ["scenario SHA-256", (str(m.get("scenario_sha256", ""))[:16], "l")],
        ["seed", str(m.get("seed"))],
        ["replications", str(m.get("replications"))],
        ["horizon", f"{s.get('horizon_months')} months of {s.get('days_per_month')} days"],
        ["currency", run.currency],
        ["requests simulated", fmt(m.get("requests_simulated"), "requests")],
        ["subscriber-months simulated", fmt(m.get("subscriber_months_simulated"))],
        ["wall time", fmt(m.get("wall_s"), "s")],
        ["tokensim version", str(m.get("version"))],
        ["created", str(m.get("created_utc"))],
    ]
    out = [_table(["fact", "value"], facts, f"Run folder {run.name}")]
    plans: list[list[Cell]] = []
    for p in s.get("plans", []):
        q = p.get("quota") or {}
        ex = dict(p.get("on_exhaustion") or {})
        rule = str(ex.pop("rule", ""))
        detail = ", ".join(f"{k}={v}" for k, v in ex.items() if v is not None)
        models = ", ".join(f"{k}×{v:g}" if isinstance(v, int | float) else str(k)
                           for k, v in (p.get("models") or {}).items())  # fmt: skip
        plans.append([str(p.get("name")), fmt(p.get("price_per_month"), "currency", run.currency),
                      f"{fmt(q.get('amount'))} {q.get('unit', '')}", (rule, "l"),
                      (detail, "l"), (models, "l"), str(p.get("sla_class", ""))])  # fmt: skip
    out.append(_table(["plan", "price / month", "quota / month", "on exhaustion", "terms",
                       "models × quota weight", "SLA class"], plans, "Plans"))  # fmt: skip
    segs: list[list[Cell]] = []
    for g in s.get("segments", []):
        acq = g.get("acquisition") or {}
        segs.append([str(g.get("name")), str(g.get("kind", "")),
                     (", ".join(map(str, g.get("plans", []))), "l"),
                     fmt(g.get("initial_subscribers")), str(acq.get("model", "")),
                     fmt(g.get("sessions_per_day")),
                     fmt(g.get("requests_per_session"))])  # fmt: skip
    out.append(_table(["segment", "kind", "plans", "initial subscribers", "acquisition",
                       "sessions / day", "requests / session"], segs, "Segments"))  # fmt: skip
    gpu_cost = {g.get("name"): g.get("cost_per_hour")
                for g in (s.get("catalog") or {}).get("gpus", [])}  # fmt: skip
    pools: list[list[Cell]] = []
    for p in (s.get("cluster") or {}).get("pools", []):
        sched = "; ".join(f"month {c.get('month')}: {c.get('gpus')} GPUs"
                          for c in p.get("schedule") or [])  # fmt: skip
        pools.append([str(p.get("name")), str(p.get("model")), str(p.get("gpu")),
                      fmt(p.get("gpus")), (sched or "–", "l"),
                      fmt(gpu_cost.get(p.get("gpu")), "currency", run.currency)])  # fmt: skip
    out.append(_table(["pool", "model", "GPU", "GPUs", "capacity changes", "cost / GPU-hour"],
                      pools, "GPU pools"))  # fmt: skip
    return "\n".join(out)


def _pool_order(run: RunFolder) -> list[str]:
    return [str(p.get("name")) for p in (run.scenario.get("cluster") or {}).get("pools", [])]


def run_sections(run: RunFolder) -> list[tuple[str, str, str]]:
    """The sections of a one-run report: (id, heading, inner HTML)."""
    from sim import report_figures as rf

    cur, plans = run.currency, run.plan_order
    run.load()
    secs: list[tuple[str, str, str]] = []
    secs.append(("kpis", "Headline KPIs", _table(
        ["KPI", "mean", "95% CI low", "95% CI high", "unit", "what it is"],
        _kpi_rows(run.summary, cur),
        f"Whole horizon, mean over {run.replications} replication(s)"),
    ))  # fmt: skip

    subs = subscribers_by_plan(run.by_plan, plans)
    churn = churn_by_plan(run.by_plan, plans)
    pt = plan_table(run.by_plan, plans)
    rows: list[list[Cell]] = [
        [str(plan), fmt(r.subscribers_end), fmt(r.new), fmt(r.churned), fmt(r.switched_in),
         fmt(r.switched_out), fmt(r.churn_rate, "share"), fmt(r.revenue_total, "currency", cur),
         fmt(r.revenue_per_submonth, "currency", cur)]
        for plan, r in pt.iterrows()
    ]  # fmt: skip
    secs.append(("plans", "Subscribers and churn by plan", "\n".join([
        _fig(rf.subscribers_churn_by_plan(subs, churn), "subscribers and churn by plan",
             "Left: active subscribers at each month's end, stacked by plan. Right: share of "
             "renewal decisions that ended in churn, by plan."),
        _table(["plan", "subscribers at end", "new", "churned", "switched in", "switched out",
                "churn rate", "revenue", "revenue / subscriber-month"], rows,
               "Over the horizon, mean per replication"),
    ])))  # fmt: skip

    ms = run.months.groupby("month")[["revenue_fees", "revenue_overage", "revenue_topups"]].mean()
    ms = ms.join(month_series(run.months, ["gpu_cost", "gross_margin"]))
    k = run.summary
    money: list[list[Cell]] = [
        [name, fmt_ci((k.get(name) or {}).get("mean"), (k.get(name) or {}).get("ci95_low"),
                      (k.get(name) or {}).get("ci95_high"), KPIS[name][0], cur)]
        for name in ("revenue_fees", "revenue_overage", "revenue_topups", "revenue_total",
                     "gpu_cost", "gross_margin", "gross_margin_share", "effective_price_per_mtok",
                     "api_list_value")
    ]  # fmt: skip
    secs.append(("money", "Revenue, GPU cost and margin", "\n".join([
        _fig(rf.revenue_cost_margin(ms, cur), "revenue vs GPU cost and margin",
             "Bars: revenue by source per month. Lines: GPU cost and gross margin (revenue - "
             "GPU cost), shaded 95% CI over replications."),
        _table(["KPI", "whole horizon, mean [95% CI]"], money),
    ])))  # fmt: skip

    led = run.ledger
    if led is not None and any(c.startswith("tokens|") for c in led.columns):
        mix, share = token_mix(led, plans)
        mrows: list[list[Cell]] = [
            [str(model), *(fmt(r[c], "tokens") for c in ("input_miss", "input_hit", "output")),
             fmt(r.sum(), "tokens"), fmt(r.sum() / mix.to_numpy().sum(), "share")]
            for model, r in mix.iterrows()
        ]  # fmt: skip
        inner = "\n".join([
            _fig(rf.token_mix_by_model(mix, share), "token mix by model",
                 "Left: tokens served per model over the horizon by class. Right: how each "
                 "plan's tokens split across models."),
            _table(["model", "input (cache miss)", "input (cache hit)", "output", "total",
                    "share"], mrows, "Tokens per replication over the horizon"),
        ])  # fmt: skip
    else:
        inner = _p("The run kept no ledger (outputs.ledger: false), so tokens by model are not "
                   "recorded; see the headline tokens_served KPI.", "note")  # fmt: skip
    secs.append(("tokens", "Token mix by model", inner))

    pools = _pool_order(run)
    lat = latency_table(run.latency, pools)
    util, wait = day_profile(run.hourly, pools)
    lrows: list[list[Cell]] = [
        [f"{r.pool} / {r.sla_class}", fmt(r.requests, "requests"), fmt(r.wait_mean_s, "s"),
         fmt(r.ttft_p50_s, "s"), fmt(r.ttft_p95_s, "s"), fmt(r.ttft_p99_s, "s"),
         fmt(r.e2e_p50_s, "s"), fmt(r.e2e_p95_s, "s"), fmt(r.e2e_p99_s, "s"),
         fmt(r.slo_attainment, "share")]
        for r in lat.itertuples()
    ]  # fmt: skip
    urows: list[list[Cell]] = []
    for pool, u in util.items():
        peak = u["mean"].idxmax() if u["mean"].notna().any() else None
        urows.append([pool, fmt(u["mean"].mean(), "share"),
                      fmt(u["mean"].max(), "share"), "–" if peak is None else f"{peak}:00",
                      fmt(wait[pool]["mean"].max(), "s")])  # fmt: skip
    parts = []
    if len(lat):
        parts.append(_fig(rf.latency_percentiles(lat), "latency percentiles",
                          "Request-weighted means over months and replications of each month's "
                          "percentiles, per pool and SLA class."))  # fmt: skip
    parts += [
        _table(["pool / SLA class", "requests", "mean wait", "TTFT p50", "TTFT p95", "TTFT p99",
                "e2e p50", "e2e p95", "e2e p99", "SLO attainment"], lrows,
               "Latency per pool and SLA class (requests per replication)"),
        _fig(rf.cluster_day(util, wait), "utilisation and wait over the day",
             "Busy / available slot-seconds and mean queue wait by hour of day over the whole "
             "horizon; shaded 95% CI over replications."),
        _table(["pool", "mean utilisation", "peak-hour utilisation", "peak hour",
                "worst hourly mean wait"], urows, "The cluster's day"),
    ]  # fmt: skip
    secs.append(("latency", "Latency and utilisation over the day", "\n".join(parts)))

    if led is not None:
        qt = quota_use_table(led, plans)
        qrows: list[list[Cell]] = [
            [str(plan), fmt(r.subscriber_months), fmt(r["mean"], "share"),
             *(fmt(r[f"p{p:02d}"], "share") for p in QUOTA_PERCENTILES),
             fmt(r.over_quota, "share"), fmt(r.exhausted, "share")]
            for plan, r in qt.iterrows()
        ]  # fmt: skip
        inner = "\n".join([
            _fig(rf.quota_use(qt), "quota use per plan",
                 "Used / quota per closed subscriber-month (months still open at the end of "
                 "the horizon are left out), all replications pooled.") if len(qt) else "",
            _table(["plan", "subscriber-months", "mean",
                    *(f"p{p}" for p in QUOTA_PERCENTILES), "at or over quota",
                    "exhausted (ledger)"], qrows, "Quota use per subscriber-month"),
        ])  # fmt: skip
    else:
        inner = _p(
            "The run kept no ledger (outputs.ledger: false): quota use per subscriber-month is"
            " not recorded. The headline exhausted_share KPI still is.",
            "note",
        )
    secs.append(("quota", "Quota use per plan", inner))
    secs.append(("facts", "Scenario facts", _facts(run)))
    return secs


def run_report(run: RunFolder) -> str:
    """The HTML report of one run folder."""
    m = run.manifest
    sub = (f"Scenario {m.get('scenario')} · seed {m.get('seed')} · {run.replications} "
           f"replication(s) · {run.scenario.get('horizon_months')} months · run folder "
           f"{run.name}")  # fmt: skip
    return _page(f"tokensim report: {m.get('scenario')}", sub, run_sections(run))


def _labels(runs: Sequence[RunFolder]) -> list[str]:
    names = [r.name for r in runs]
    return [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def _flatten(x: Any, prefix: str = "") -> dict[str, str]:
    """Dotted paths of a scenario mapping; lists of named items are keyed by name."""
    out: dict[str, str] = {}
    if isinstance(x, dict):
        for k, v in x.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(x, list) and x and all(isinstance(i, dict) and "name" in i for i in x):
        for i in x:
            out.update(_flatten(i, f"{prefix}{i['name']}."))
    else:
        out[prefix.rstrip(".")] = json.dumps(x) if isinstance(x, list) else str(x)
    return out


def compare_report(runs: Sequence[RunFolder]) -> str:
    """The HTML report comparing run folders (the first is the reference)."""
    from sim import report_figures as rf
    from sim.compare import CompareError, compare_runs

    labels = _labels(runs)
    for r in runs:
        r.load(ledger=False)
    try:
        table = compare_runs([r.path for r in runs])
    except CompareError as e:
        raise ReportError(str(e)) from None
    table["label"] = np.repeat(labels, len(KPIS))
    cur = runs[0].currency
    header = ["KPI", "unit", *(f"{lab}: mean [95% CI]" for lab in labels),
              *(f"{lab} − {labels[0]} [95% CI]" for lab in labels[1:])]  # fmt: skip
    rows: list[list[Cell]] = []
    for kpi, g in table.groupby("kpi", sort=False):
        unit = str(g["unit"].iloc[0])
        row: list[Cell] = [str(kpi), _unit_label(unit, cur)]
        row += [fmt_ci(r.mean, r.ci95_low, r.ci95_high, unit, cur) for r in g.itertuples()]
        for r in list(g.itertuples())[1:]:
            cls = ""
            if np.isfinite(r.diff_ci95_low) and r.diff_ci95_low > 0:
                cls = "up"
            elif np.isfinite(r.diff_ci95_high) and r.diff_ci95_high < 0:
                cls = "down"
            row.append((fmt_ci(r.diff_vs_first, r.diff_ci95_low, r.diff_ci95_high, unit, cur,
                               diff=True), cls))  # fmt: skip
        rows.append(row)
    unpaired = sorted(set(table.loc[~table["paired"].astype(bool), "label"]))
    notes = [_p("Differences are taken replication by replication against the first run "
                "(common random numbers: the same seed gives the same demand draws), so their "
                "intervals are narrower than the runs' own. Green: the interval is above 0; "
                "red: below 0.", "note")]  # fmt: skip
    if unpaired:
        notes.append(_p(f"{', '.join(unpaired)} used another seed than {labels[0]}: their "
                        "differences are unpaired.", "note"))  # fmt: skip
    secs = [("kpis", "Headline KPIs side by side", _table(header, rows) + "\n".join(notes))]

    cols = ["subscribers_end", "revenue_total", "gross_margin", "churn_rate", "ttft_p95_s"]
    months = {lab: month_series(r.months, cols) for lab, r in zip(labels, runs, strict=True)}
    day = {lab: cluster_day(r.hourly) for lab, r in zip(labels, runs, strict=True)}
    series = _fig(
        rf.compare_series(months, day, cur),
        "key series of the runs overlaid",
        "Mean over replications per month (hour of day for utilisation), shaded 95% CI.",
    )
    secs.append(("series", "Key series overlaid", series))

    flats = [_flatten(r.scenario) for r in runs]
    keys = sorted(set().union(*flats) - {"name", "description"})
    diff = [k for k in keys if len({f.get(k, "–") for f in flats}) > 1]
    facts: list[list[Cell]] = [
        ["scenario", *(str(r.manifest.get("scenario")) for r in runs)],
        ["scenario SHA-256", *(str(r.manifest.get("scenario_sha256", ""))[:16] for r in runs)],
        ["seed", *(str(r.manifest.get("seed")) for r in runs)],
        ["replications", *(str(r.replications) for r in runs)],
        ["created", *(str(r.manifest.get("created_utc")) for r in runs)],
    ]
    drows: list[list[Cell]] = [[k, *((f.get(k, "–"), "l") for f in flats)] for k in diff]
    inner = _table(["fact", *labels], facts, "Runs")
    if drows:
        inner += _table(["scenario setting that differs", *labels], drows,
                        f"{len(diff)} setting(s) differ between the scenarios")  # fmt: skip
    else:
        inner += _p("The scenarios are identical apart from their names.", "note")
    secs.append(("facts", "Scenario facts", inner))
    title = f"tokensim comparison: {' vs '.join(labels)}"
    sub = f"{len(runs)} run folders; differences are against {labels[0]}"
    return _page(title, sub, secs)


def _values_text(values: Any) -> str:
    """A parameter's values: a list, or a range of a Latin hypercube ({low, high, ...})."""
    if isinstance(values, dict):
        low, high = values.get("low", values.get("min")), values.get("high", values.get("max"))
        return f"{fmt(low)} .. {fmt(high)}" if low is not None else json.dumps(values)
    if isinstance(values, list):
        return ", ".join(fmt(v) for v in values)
    return str(values)


def sweep_report(sweep: SweepFolder) -> str:
    """The HTML report of a sweep folder."""
    from sim import report_figures as rf

    spec, params, cur = sweep.spec, sweep.parameters, sweep.currency
    resp = sweep_response(sweep.points, params)
    pts = sweep_points(sweep.points, params)
    planned = len(spec.get("points") or [])
    done = sweep.points["point"].nunique()
    prow: list[list[Cell]] = [
        [str(p.get("path")), (_values_text(p.get("values")), "l")] for p in spec["parameters"]
    ]
    facts: list[list[Cell]] = [
        ["scenario", str(spec.get("scenario"))], ["design", str(spec.get("design"))],
        ["points", f"{done} finished of {planned or done}"],
        ["replications per point", str(spec.get("replications"))], ["seed", str(spec.get("seed"))],
        ["status", str(spec.get("status", "complete"))],
    ]  # fmt: skip
    inner = [_table(["fact", "value"], facts), _table(["swept parameter", "values"], prow)]
    if planned and done < planned:
        inner.append(_p(f"{planned - done} planned point(s) have no results yet; the figures "
                        "use the finished ones.", "note"))  # fmt: skip
    best = pts.loc[pts["gross_margin"].idxmax()] if pts["gross_margin"].notna().any() else None
    if best is not None:
        setting = ", ".join(f"{p} = {fmt(best[p])}" for p in params)
        inner.append(_p(f"Highest mean gross margin: point {best['point']} ({setting}): "
                        f"{fmt(best['gross_margin'], 'currency', cur)}.", "note"))  # fmt: skip
    secs = [("sweep", "The sweep", "\n".join(inner))]

    for i, par in enumerate(params):
        r = resp[(resp["parameter"] == par) & resp["kpi"].isin(RESPONSE_KPIS)]
        rows: list[list[Cell]] = []
        for value, g in r.groupby("value", sort=True):
            gi = g.set_index("kpi")
            rows.append([fmt(value), fmt(gi["n"].iloc[0]),
                         *(fmt_ci(gi.loc[k, "mean"], gi.loc[k, "ci95_low"], gi.loc[k, "ci95_high"],
                                  KPIS[k][0], cur) for k in RESPONSE_KPIS)])  # fmt: skip
        secs.append((f"param{i}", f"Response to {par}", "\n".join([
            _fig(rf.sweep_response(r, par, RESPONSE_KPIS, cur), f"KPI response to {par}",
                 f"Mean and 95% CI of each KPI at each value of {par}, over all points with "
                 "that value (the other parameters vary) and their replications."),
            _table([par, "rows", *RESPONSE_KPIS], rows,
                   "Mean [95% CI] per value; rows = points x replications"),
        ])))  # fmt: skip
    trows: list[list[Cell]] = [
        [str(r["point"]), *(fmt(r[p]) for p in params), fmt(r["replications"]),
         *(fmt_ci(r[k], r[f"{k}_lo"], r[f"{k}_hi"], KPIS[k][0], cur) for k in RESPONSE_KPIS)]
        for _, r in pts.iterrows()
    ]  # fmt: skip
    secs.append(("points", "Points", _table(["point", *params, "replications", *RESPONSE_KPIS],
                                            trows, "Mean [95% CI] over each point's replications;"
                                            " every KPI is in points.csv")))  # fmt: skip
    sub = (f"Scenario {spec.get('scenario')} · {spec.get('design')} design · {done} points × "
           f"{spec.get('replications')} replications · sweep folder {sweep.name}")  # fmt: skip
    return _page(f"tokensim sweep report: {spec.get('scenario')}", sub, secs)


# ---------------------------------------------------------------------- entry points


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
        return Path(paths[0]) / "report.html"
    return Path("results") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.html"


def write_report(paths: Sequence[Path], out: Path | None = None) -> Path:
    """Build the report and write it atomically to ``out`` (default: ``default_out``).

    The HTML is built completely before anything is written; it then goes to a temporary
    file beside ``out`` that replaces ``out`` in one step. Returns the path written.
    """
    target = Path(out) if out is not None else default_out(paths)
    if target.is_dir():
        raise ReportError(f"{target}: is a folder; give a file name for the report")
    html_text = build_report(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    try:
        tmp.write_text(html_text, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
