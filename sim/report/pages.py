"""The three report pages: one run, a comparison of runs, and a sweep.

Each page is a list of sections (id, heading, inner HTML) built from a folder
(``sim.report.folders``), the numbers behind it (``sim.report.data``), figures
(``sim.report.figures``) and the HTML helpers (``sim.report.html``), then assembled into
one document. ``sim.report`` chooses the page for the folders given and writes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from sim.experiments.sweep import KEY_DESIGN, KEY_PARAMETERS, KEY_POINTS, POINTS_CSV
from sim.report.data import (
    QUOTA_PERCENTILES,
    busy_hour_series,
    busy_hour_table,
    churn_by_plan,
    cluster_day,
    day_peak,
    day_profile,
    deferred_by_hour,
    latency_table,
    month_series,
    plan_table,
    quota_use_table,
    subscribers_by_plan,
    sweep_points,
    sweep_response,
    token_mix,
    ttft_targets,
    window_table,
)
from sim.report.folders import ReportError, RunFolder, SweepFolder
from sim.report.html import (
    Cell,
    fig_html,
    fmt,
    fmt_ci,
    fmt_exact,
    page_html,
    para_html,
    table_html,
    unit_label,
)
from sim.results.busy_hour import ALL_CLASSES
from sim.results.kpis import KPIS
from sim.results.ledger_file import KEY_ROWS_SIMULATED
from sim.results.ledger_policy import LEDGER_NONE, LEDGER_SAMPLE
from sim.results.run_folder import (
    EVENTS,
    KEY_CREATED_UTC,
    KEY_LEDGER,
    KEY_REPLICATIONS,
    KEY_REQUESTS_SIMULATED,
    KEY_SCENARIO,
    KEY_SCENARIO_SHA256,
    KEY_SEED,
    KEY_STATUS,
    KEY_SUBSCRIBER_MONTHS,
    KEY_VERSION,
    KEY_WALL_S,
    SCENARIO,
    STATUS_COMPLETE,
)

RESPONSE_KPIS = (
    "revenue_total",
    "gross_margin",
    "gross_margin_share",
    "subscribers_end",
    "churn_rate_monthly",
    "exhausted_share",
    "ttft_p95_s",
    "busy_hour_ttft_p95_s",
    "gpu_utilisation",
    "busy_hour_utilisation",
)
"""KPIs shown in the sweep figures and tables (``sweep_response`` computes all of KPIS): the
busy-hour TTFT p95 and utilisation beside the whole-horizon ones, since the mean day hides
the peaks a capacity plan must carry."""
BEST_KPI = "gross_margin"
"""The sweep page's best point is the one with the highest mean of this KPI ..."""
BEST_LATENCY_KPI = "busy_hour_ttft_p95_s"
"""... among the points whose mean of this KPI (worst pool and month, SLA classes pooled) is
within the tightest TTFT target of the scenario's SLA classes; without targets the page names
no best point."""
SETTING_GROUP_DEPTH = 2
"""The comparison page groups the differing scenario settings by the first this many parts of
their dotted path (``plans.dev_70m``, ``cluster.pools``)."""


def _kpi_rows(summary: dict[str, Any], currency: str) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for name, (unit, desc) in KPIS.items():
        s = summary.get(name) or {}
        rows.append(
            [
                name,
                fmt(s.get("mean"), unit, currency),
                fmt(s.get("ci95_low"), unit, currency),
                fmt(s.get("ci95_high"), unit, currency),
                unit_label(unit, currency),
                (desc, "l"),
            ]
        )
    return rows


def _facts(run: RunFolder) -> str:
    m, s = run.manifest, run.scenario
    facts: list[list[Cell]] = [
        ["scenario", (str(m.get(KEY_SCENARIO)), "l")],
        ["description", (str(s.get("description") or ""), "l")],
        ["scenario SHA-256", (str(m.get(KEY_SCENARIO_SHA256, ""))[:16], "l")],
        ["seed", str(m.get(KEY_SEED))],
        ["replications", str(m.get(KEY_REPLICATIONS))],
        ["horizon", f"{s.get('horizon_months')} months of {s.get('days_per_month')} days"],
        ["currency", run.currency],
        ["requests simulated", fmt(m.get(KEY_REQUESTS_SIMULATED), "requests")],
        ["subscriber-months simulated", fmt(m.get(KEY_SUBSCRIBER_MONTHS))],
        ["wall time", fmt(m.get(KEY_WALL_S), "s")],
        ["tokensim version", str(m.get(KEY_VERSION))],
        ["created", str(m.get(KEY_CREATED_UTC))],
    ]
    out = [table_html(["fact", "value"], facts, f"Run folder {run.name}")]
    plans: list[list[Cell]] = []
    for p in s.get("plans", []):
        q = p.get("quota") or {}
        ex = dict(p.get("on_exhaustion") or {})
        rule = str(ex.pop("rule", ""))
        detail = ", ".join(f"{k}={fmt_exact(v)}" for k, v in ex.items() if v is not None)
        models = ", ".join(
            f"{k}×{v:g}" if isinstance(v, int | float) else str(k)
            for k, v in (p.get("models") or {}).items()
        )
        plans.append(
            [
                str(p.get("name")),
                fmt_exact(p.get("price_per_month"), run.currency),
                f"{fmt_exact(q.get('amount'))} {q.get('unit', '')}",
                (rule, "l"),
                (detail, "l"),
                (models, "l"),
                str(p.get("sla_class", "")),
            ]
        )
    out.append(
        table_html(
            [
                "plan",
                "price / month",
                "quota / month",
                "on exhaustion",
                "terms",
                "models × quota weight",
                "SLA class",
            ],
            plans,
            "Plans",
        )
    )
    segs: list[list[Cell]] = []
    for g in s.get("segments", []):
        acq = g.get("acquisition") or {}
        segs.append(
            [
                str(g.get("name")),
                str(g.get("kind", "")),
                (", ".join(map(str, g.get("plans", []))), "l"),
                fmt(g.get("initial_subscribers")),
                str(acq.get("model", "")),
                fmt(g.get("sessions_per_day")),
                fmt(g.get("requests_per_session")),
            ]
        )
    out.append(
        table_html(
            [
                "segment",
                "kind",
                "plans",
                "initial subscribers",
                "acquisition",
                "sessions / day",
                "requests / session",
            ],
            segs,
            "Segments",
        )
    )
    gpu_cost = {
        g.get("name"): g.get("cost_per_hour") for g in (s.get("catalog") or {}).get("gpus", [])
    }
    pools: list[list[Cell]] = []
    for p in (s.get("cluster") or {}).get("pools", []):
        sched = "; ".join(
            f"month {c.get('month')}: {c.get('gpus')} GPUs" for c in p.get("schedule") or []
        )
        pools.append(
            [
                str(p.get("name")),
                str(p.get("model")),
                str(p.get("gpu")),
                fmt(p.get("gpus")),
                (sched or "–", "l"),
                fmt_exact(gpu_cost.get(p.get("gpu")), run.currency),
            ]
        )
    out.append(
        table_html(
            ["pool", "model", "GPU", "GPUs", "capacity changes", "cost / GPU-hour"],
            pools,
            "GPU pools",
        )
    )
    return "\n".join(out)


def _pool_order(run: RunFolder) -> list[str]:
    return [str(p.get("name")) for p in (run.scenario.get("cluster") or {}).get("pools", [])]


def _hour_text(r: Any) -> str:
    """A busy_hour_table row's busy hour, with its range over replications when they differ."""
    text = f"{int(r.busy_hour)}:00"
    if r.busy_hour_low != r.busy_hour_high:
        text += f" ({int(r.busy_hour_low)}:00–{int(r.busy_hour_high)}:00)"
    return text


def _busy_hour_section(run: RunFolder, pools: list[str]) -> str:
    """The busy-hour section's inner HTML: figure and table, or a note for older folders."""
    from sim.report import figures

    busy = run.busy_hour
    if busy is None:
        return para_html(
            "This run folder was written before busy-hour tables existed (no busy_hour.csv):"
            " rerun the scenario to see the load and latency at each month's busy hour.",
            "note",
        )
    table = busy_hour_table(busy, pools)
    if table.empty:
        return para_html("No request reached a GPU pool: there is no busy hour.", "note")
    util, ttft = busy_hour_series(busy, pools)
    rows: list[list[Cell]] = [
        [
            str(r.pool),
            str(r.month),
            _hour_text(r),
            fmt(r.offered_load_ratio, "share"),
            fmt(r.utilisation, "share"),
            fmt(r.peak_hour_utilisation, "share"),
            fmt(r.ttft_p95_s, "s"),
            fmt(r.tpot_p95_s, "s"),
            fmt(r.goodput_share, "share"),
            fmt(r.slo_attainment_served, "share"),
        ]
        for r in table.itertuples()
    ]
    return "\n".join(
        [
            para_html(
                "The busy hour of a pool and month is the hour of the day with the most offered"
                " load summed over the month's days (ITU-T E.500 time-consistent busy hour)."
                " Utilisation there averages the month's days; the peak hour is the month's"
                " single busiest hour. Offered load ratio: work that reached the pool / its"
                " working slot capacity (above 100% no queue can keep up). Goodput share:"
                " requests served within every SLO target / requests offered (refusals count"
                " as misses); SLO attainment counts served requests only.",
                "note",
            ),
            fig_html(
                figures.busy_hour(util, ttft, ttft_targets(run.scenario)),
                "busy-hour utilisation and TTFT by month",
                "Per pool and month: utilisation at the busy hour and at the peak hour (left),"
                " TTFT p95 of the requests arriving in the busy hour per SLA class with its"
                " target dashed (right); shaded 95% CI over replications.",
            ),
            table_html(
                [
                    "pool",
                    "month",
                    "busy hour",
                    "offered load ratio",
                    "utilisation",
                    "peak-hour utilisation",
                    "TTFT p95",
                    "TPOT p95",
                    "goodput share",
                    "SLO attainment (served)",
                ],
                rows,
                f"At each month's busy hour, SLA classes pooled ({ALL_CLASSES}); means over"
                f" {run.replications} replication(s); busy hour: the most frequent over"
                " replications (their range in brackets when they differ)",
            ),
        ]
    )


def _events_section(run: RunFolder) -> tuple[str, str, str] | None:
    """The scenario's timeline of events (price changes, launches, ...), if it has one."""
    path = run.path / EVENTS
    if not path.exists():
        return None
    ev = pd.read_csv(path)
    rows: list[list[Cell]] = [
        [str(int(r.month)), str(r.kind), str(r.subject), str(r.description)]
        for r in ev.itertuples()
    ]
    return (
        "events",
        "Timeline of events",
        table_html(
            ["month", "event", "plan or segment", "what changes"],
            rows,
            "The scenario's events by calendar month (0 = the first); their effects are in the"
            " tables below (migrated, discounts, trial conversions by plan in"
            " monthly_by_plan_segment.csv)",
        ),
    )


WINDOWS_NOTE = (
    "A usage window caps what one subscriber may use in a stretch of time shorter than the"
    " month, beside the monthly quota: a rolling window counts the subscriber's own use over"
    " the last hours, a session window opens with the first request, a calendar window (a"
    " weekly cap) resets at fixed times. A limit hit is a request that found a window full; a"
    " lock-out begins when a subscriber first finds one full and lasts until it has room"
    " again. Users of a window that makes them wait may send the request again when it rolls"
    " (deferred) or give it up; a cut-off window refuses it (both: refused at a window); a"
    " throttling window serves it on a slow lane."
)
"""The plain-language explanation that opens the usage-windows section."""


def _window_terms(run: RunFolder) -> dict[str, dict[str, str]]:
    """Each plan's windows in the scenario's order: window name -> its terms as a reader says them.

    For example ``rolling 5 h: 1,200 requests; when full: wait``.
    """
    out: dict[str, dict[str, str]] = {}
    for p in run.scenario.get("plans", []):
        terms = {}
        for w in p.get("windows") or []:
            terms[str(w.get("name"))] = (
                f"{w.get('kind', 'rolling')} {fmt_exact(w.get('hours'))} h:"
                f" {fmt_exact(w.get('allowance'))} {w.get('unit', 'requests')};"
                f" when full: {w.get('on_limit', 'wait')}"
            )
        if terms:
            out[str(p.get("name"))] = terms
    return out


def _window_rows(table: pd.DataFrame, terms: dict[str, dict[str, str]]) -> list[list[Cell]]:
    """The usage-windows table's rows from :func:`sim.report.data.window_table`."""
    return [
        [
            str(r.plan),
            str(r.segment),
            str(r.window),
            (terms.get(str(r.plan), {}).get(str(r.window), ""), "l"),
            fmt(r.limit_hits, "requests"),
            fmt(r.lockouts),
            fmt(r.hours_per_lockout),
            fmt(r.deferred, "requests"),
            fmt(r.refused_window, "requests"),
        ]
        for r in table.itertuples()
    ]


def _deferred_figure(run: RunFolder) -> str:
    """The figure of requests deferred by hour of day, or a note when none was deferred."""
    from sim.report import figures

    hourly = run.hourly_deferred
    if not hourly["deferred"].to_numpy(dtype=float).any():
        return para_html(
            "No request was deferred: no window that lets users wait was full when they sent"
            " (or none of them waited), so there is no figure of deferrals by hour.",
            "note",
        )
    return fig_html(
        figures.deferred_by_hour(deferred_by_hour(hourly)),
        "requests deferred by usage windows by hour of day",
        "Requests that found a usage window full and were sent again when it rolled, by the"
        " hour of day they were first sent, all pools: mean per day over the horizon's days,"
        " shaded 95% CI over replications. Where the line rises the windows move demand"
        " later in the day.",
    )


def _windows_section(run: RunFolder) -> tuple[str, str, str] | None:
    """What the plans' usage windows did (table and deferrals by hour), if the run has windows."""
    windows = run.usage_windows
    if windows is None:
        return None
    terms = _window_terms(run)
    segments = [str(g.get("name")) for g in run.scenario.get("segments", [])]
    names = {plan: list(t) for plan, t in terms.items()}
    table = window_table(windows, run.window_requests, run.plan_order, segments, names)
    months = windows["month"].nunique()
    return (
        "windows",
        "Usage windows",
        "\n".join(
            [
                para_html(WINDOWS_NOTE, "note"),
                table_html(
                    [
                        "plan",
                        "segment",
                        "window",
                        "terms",
                        "limit hits",
                        "lock-outs",
                        "hours per lock-out",
                        "deferred requests",
                        "refused at a window",
                    ],
                    _window_rows(table, terms),
                    f"Plans with usage windows; per month, mean over {run.replications}"
                    f" replication(s) and {months} month(s). Hours per lock-out: hours locked"
                    " out / lock-outs. Deferred and refused count the plan and segment's"
                    " requests whichever window was full (the same on each of its windows)",
                ),
                _deferred_figure(run),
            ]
        ),
    )


def _ledger_absent(run: RunFolder) -> str:
    """Why the run folder holds no ledger, as the report's notes begin."""
    outputs = run.scenario.get("outputs")
    if isinstance(outputs, dict) and outputs.get("ledger") is False:
        return "The run kept no ledger (outputs.ledger: false)"
    entry = run.manifest.get(KEY_LEDGER)
    if isinstance(entry, dict) and entry.get(KEY_ROWS_SIMULATED) == 0:
        return "The run recorded no subscriber-month, so it has no ledger"
    return f"The run folder holds no ledger (tokensim run --ledger {LEDGER_NONE})"


def _ledger_sample_note(run: RunFolder) -> str:
    """The note above a ledger figure that comes from a sample of subscribers ('' when full)."""
    if run.ledger_mode != LEDGER_SAMPLE:
        return ""
    return para_html(
        f"From a sample: the ledger holds every month of a random {100 * run.ledger_fraction:.3g}%"
        f" of subscribers (tokensim run --ledger {LEDGER_SAMPLE}), so these figures are"
        " estimates; token totals are the sample's scaled up by its share.",
        "note",
    )


def run_sections(run: RunFolder) -> list[tuple[str, str, str]]:
    """The sections of a one-run report: (id, heading, inner HTML)."""
    from sim.report import figures

    cur, plans = run.currency, run.plan_order
    run.load()
    secs: list[tuple[str, str, str]] = []
    secs.append(
        (
            "kpis",
            "Headline KPIs",
            table_html(
                ["KPI", "mean", "95% CI low", "95% CI high", "unit", "what it is"],
                _kpi_rows(run.summary, cur),
                f"Whole horizon, mean over {run.replications} replication(s)",
            ),
        )
    )

    events = _events_section(run)
    if events is not None:
        secs.append(events)

    subs = subscribers_by_plan(run.by_plan, plans)
    churn = churn_by_plan(run.by_plan, plans)
    pt = plan_table(run.by_plan, plans)
    rows: list[list[Cell]] = [
        [
            str(plan),
            fmt(r.subscribers_end),
            fmt(r.new),
            fmt(r.churned),
            fmt(r.switched_in),
            fmt(r.switched_out),
            fmt(r.churn_rate, "share"),
            fmt(r.revenue_total, "currency", cur),
            fmt(r.revenue_per_submonth, "currency", cur),
        ]
        for plan, r in pt.iterrows()
    ]
    secs.append(
        (
            "plans",
            "Subscribers and churn by plan",
            "\n".join(
                [
                    fig_html(
                        figures.subscribers_churn_by_plan(subs, churn),
                        "subscribers and churn by plan",
                        "Left: active subscribers at each month's end, stacked by plan. Right: "
                        "share of "
                        "renewal decisions that ended in churn, by plan.",
                    ),
                    table_html(
                        [
                            "plan",
                            "subscribers at end",
                            "new",
                            "churned",
                            "switched in",
                            "switched out",
                            "churn rate",
                            "revenue",
                            "revenue / subscriber-month",
                        ],
                        rows,
                        "Over the horizon, mean per replication",
                    ),
                ]
            ),
        )
    )

    ms = run.months.groupby("month")[["revenue_fees", "revenue_overage", "revenue_topups"]].mean()
    ms = ms.join(month_series(run.months, ["gpu_cost", "gross_margin"]))
    k = run.summary
    money: list[list[Cell]] = [
        [
            name,
            fmt_ci(
                (k.get(name) or {}).get("mean"),
                (k.get(name) or {}).get("ci95_low"),
                (k.get(name) or {}).get("ci95_high"),
                KPIS[name][0],
                cur,
            ),
        ]
        for name in (
            "revenue_fees",
            "revenue_overage",
            "revenue_topups",
            "revenue_total",
            "gpu_cost",
            "gross_margin",
            "gross_margin_share",
            "effective_price_per_mtok",
            "api_list_value",
        )
    ]
    secs.append(
        (
            "money",
            "Revenue, GPU cost and margin",
            "\n".join(
                [
                    fig_html(
                        figures.revenue_cost_margin(ms, cur),
                        "revenue vs GPU cost and margin",
                        "Bars: revenue by source per month, each source's total over the"
                        " horizon in the legend. Lines: GPU cost and gross margin (revenue -"
                        " GPU cost), shaded 95% CI over replications; over fewer than"
                        f" {figures.SHORT_HORIZON_MONTHS} months, bars beside the revenue"
                        " with 95% CI error bars.",
                    ),
                    table_html(["KPI", "whole horizon, mean [95% CI]"], money),
                ]
            ),
        )
    )

    led = run.ledger
    if led is not None and any(c.startswith("tokens|") for c in led.columns):
        mix, share = token_mix(led, plans)
        if run.ledger_mode == LEDGER_SAMPLE and run.ledger_fraction > 0:
            mix = mix / run.ledger_fraction  # the sample's tokens, scaled up to all subscribers
        mrows: list[list[Cell]] = [
            [
                str(model),
                *(fmt(r[c], "tokens") for c in ("input_miss", "input_hit", "output")),
                fmt(r.sum(), "tokens"),
                fmt(r.sum() / mix.to_numpy().sum(), "share"),
            ]
            for model, r in mix.iterrows()
        ]
        inner = "\n".join(
            [
                _ledger_sample_note(run),
                fig_html(
                    figures.token_mix_by_model(mix, share),
                    "token mix by model",
                    "Left: tokens served per model over the horizon by class. Right: how each "
                    "plan's tokens split across models.",
                ),
                table_html(
                    [
                        "model",
                        "input (cache miss)",
                        "input (cache hit)",
                        "output",
                        "total",
                        "share",
                    ],
                    mrows,
                    "Tokens per replication over the horizon",
                ),
            ]
        )
    else:
        inner = para_html(
            f"{_ledger_absent(run)}, so tokens by model are not recorded; see the headline"
            " tokens_served KPI.",
            "note",
        )
    secs.append(("tokens", "Token mix by model", inner))

    pools = _pool_order(run)
    secs.append(("busy-hour", "Busy hour", _busy_hour_section(run, pools)))
    windows = _windows_section(run)
    if windows is not None:
        secs.append(windows)

    lat = latency_table(run.latency, pools)
    util, wait = day_profile(run.hourly, pools)
    peak = day_peak(run.hourly, pools)
    busy = None if run.busy_hour is None else busy_hour_table(run.busy_hour, pools)
    lrows: list[list[Cell]] = [
        [
            f"{r.pool} / {r.sla_class}",
            fmt(r.requests, "requests"),
            fmt(r.wait_mean_s, "s"),
            fmt(r.ttft_p50_s, "s"),
            fmt(r.ttft_p95_s, "s"),
            fmt(r.ttft_p99_s, "s"),
            fmt(r.e2e_p50_s, "s"),
            fmt(r.e2e_p95_s, "s"),
            fmt(r.e2e_p99_s, "s"),
            fmt(r.slo_attainment_served, "share"),
            fmt(r.goodput_share, "share"),
        ]
        for r in lat.itertuples()
    ]
    urows: list[list[Cell]] = []
    for pool, u in util.items():
        top = u["mean"].idxmax() if u["mean"].notna().any() else None
        p = peak[pool]["mean"] if pool in peak else None
        urows.append(
            [
                pool,
                fmt(u["mean"].mean(), "share"),
                fmt(u["mean"].max(), "share"),
                "–" if top is None else f"{top}:00",
                "–" if p is None else fmt(p.max(), "share"),
                "–" if p is None or p.isna().all() else f"{p.idxmax()}:00",
                fmt(wait[pool]["mean"].max(), "s"),
            ]
        )
    parts = []
    if len(lat):
        parts.append(
            fig_html(
                figures.latency_percentiles(lat),
                "latency percentiles",
                "Request-weighted means over months and replications of each month's "
                "percentiles, per pool and SLA class.",
            )
        )
    parts += [
        table_html(
            [
                "pool / SLA class",
                "requests",
                "mean wait",
                "TTFT p50",
                "TTFT p95",
                "TTFT p99",
                "e2e p50",
                "e2e p95",
                "e2e p99",
                "SLO attainment (served)",
                "goodput share",
            ],
            lrows,
            "Latency per pool and SLA class (requests per replication)",
        ),
        fig_html(
            figures.cluster_day(util, wait, peak, busy),
            "utilisation and wait over the day",
            "Left: busy / available slot-seconds by hour of day, the mean over the horizon's "
            "days (solid) and the busiest day's (dashed, the highest of that hour over the "
            "days), diamonds at each month's busy hour. Right: mean queue wait by hour of day. "
            "Shaded 95% CI over replications.",
        ),
        table_html(
            [
                "pool",
                "mean utilisation",
                "busiest hour of the mean day",
                "at",
                "peak utilisation (busiest day)",
                "at",
                "worst hourly mean wait",
            ],
            urows,
            "The cluster's day: the mean day hides the peaks a capacity plan must carry",
        ),
    ]
    secs.append(("latency", "Latency and utilisation over the day", "\n".join(parts)))

    if led is not None:
        qt = quota_use_table(led, plans)
        qrows: list[list[Cell]] = [
            [
                str(plan),
                fmt(r.subscriber_months),
                fmt(r["mean"], "share"),
                *(fmt(r[f"p{p:02d}"], "share") for p in QUOTA_PERCENTILES),
                fmt(r.over_quota, "share"),
                fmt(r.exhausted, "share"),
            ]
            for plan, r in qt.iterrows()
        ]
        inner = "\n".join(
            [
                _ledger_sample_note(run),
                fig_html(
                    figures.quota_use(qt),
                    "quota use per plan",
                    "Used / quota per closed subscriber-month (months still open at the end of "
                    "the horizon are left out), all replications pooled.",
                )
                if len(qt)
                else "",
                table_html(
                    [
                        "plan",
                        "subscriber-months",
                        "mean",
                        *(f"p{p}" for p in QUOTA_PERCENTILES),
                        "at or over quota",
                        "exhausted (ledger)",
                    ],
                    qrows,
                    "Quota use per subscriber-month",
                ),
            ]
        )
    else:
        inner = para_html(
            f"{_ledger_absent(run)}: quota use per subscriber-month is not recorded. The"
            " headline exhausted_share KPI still is.",
            "note",
        )
    secs.append(("quota", "Quota use per plan", inner))
    secs.append(("facts", "Scenario facts", _facts(run)))
    return secs


def run_report(run: RunFolder) -> str:
    """The HTML report of one run folder."""
    m = run.manifest
    sub = (
        f"Scenario {m.get(KEY_SCENARIO)} · seed {m.get(KEY_SEED)} · {run.replications} "
        f"replication(s) · {run.scenario.get('horizon_months')} months · run folder "
        f"{run.name}"
    )
    return page_html(f"tokensim report: {m.get(KEY_SCENARIO)}", sub, run_sections(run))


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
        out[prefix.rstrip(".")] = json.dumps(x) if isinstance(x, list) else fmt_exact(x)
    return out


def _setting_groups(
    flats: Sequence[dict[str, str]], paths: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """The differing ``paths`` grouped by their first :data:`SETTING_GROUP_DEPTH` parts.

    Each group: its path prefix and one cell per run listing ``rest = value`` a line each
    (the whole path for a setting no deeper than the prefix); in the order of ``paths``.
    """
    groups: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split(".")
        groups.setdefault(".".join(parts[:SETTING_GROUP_DEPTH]), []).append(path)
    out = []
    for group, members in groups.items():
        cells = []
        for f in flats:
            lines = []
            for path in members:
                rest = path[len(group) + 1 :] if path != group else ""
                value = f.get(path, "–")
                lines.append(f"{rest} = {value}" if rest else value)
            cells.append("\n".join(lines))
        out.append((group, cells))
    return out


def compare_report(runs: Sequence[RunFolder]) -> str:
    """The HTML report comparing run folders (the first is the reference)."""
    from sim.report import figures
    from sim.report.compare_sections import group_table, kpi_table
    from sim.results.compare import CompareError, compare_runs
    from sim.results.compare_groups import BY, compare_by

    for r in runs:
        r.load(ledger=False)
    try:
        table = compare_runs([r.path for r in runs])
        by_group = {by: compare_by([r.path for r in runs], by) for by in BY}
    except CompareError as e:
        raise ReportError(str(e)) from None
    labels = list(dict.fromkeys(table["label"]))
    cur = runs[0].currency
    unpaired = sorted(set(table.loc[~table["paired"].astype(bool), "label"]))
    notes = [
        para_html(
            "Differences are taken replication by replication against the first "
            "run (common random numbers: the same seed gives the same demand draws), so "
            "their intervals are narrower than the runs' own. Green: the interval is "
            "above 0; red: below 0.",
            "note",
        )
    ]
    if unpaired:
        notes.append(
            para_html(
                f"{', '.join(unpaired)} used another seed than {labels[0]}: their "
                "differences are unpaired.",
                "note",
            )
        )
    secs = [("kpis", "Headline KPIs side by side", kpi_table(table, cur) + "\n".join(notes))]
    for by in BY:
        secs.append((f"by-{by}", f"By {by}", group_table(by_group[by], by, cur)))

    cols = ["subscribers_end", "revenue_total", "gross_margin", "churn_rate", "ttft_p95_s"]
    months = {lab: month_series(r.months, cols) for lab, r in zip(labels, runs, strict=True)}
    day = {lab: cluster_day(r.hourly) for lab, r in zip(labels, runs, strict=True)}
    series = fig_html(
        figures.compare_series(months, day, cur),
        "key series of the runs overlaid",
        "Mean over replications per month (hour of day for utilisation), shaded 95% CI; over"
        f" fewer than {figures.SHORT_HORIZON_MONTHS} months, bars with 95% CI error bars.",
    )
    secs.append(("series", "Key series overlaid", series))

    flats = [_flatten(r.scenario) for r in runs]
    keys = sorted(set().union(*flats) - {"name", "description"})
    diff = [k for k in keys if len({f.get(k, "–") for f in flats}) > 1]
    facts: list[list[Cell]] = [
        ["run folder", *(r.name for r in runs)],
        ["scenario", *(str(r.manifest.get(KEY_SCENARIO)) for r in runs)],
        ["scenario SHA-256", *(str(r.manifest.get(KEY_SCENARIO_SHA256, ""))[:16] for r in runs)],
        ["seed", *(str(r.manifest.get(KEY_SEED)) for r in runs)],
        ["replications", *(str(r.replications) for r in runs)],
        ["created", *(str(r.manifest.get(KEY_CREATED_UTC)) for r in runs)],
    ]
    groups = _setting_groups(flats, diff)
    drows: list[list[Cell]] = [[group, *((c, "lines") for c in cells)] for group, cells in groups]
    inner = table_html(["fact", *labels], facts, "Runs")
    if drows:
        inner += table_html(
            ["scenario settings that differ", *labels],
            drows,
            f"{len(diff)} setting(s) differ between the scenarios, grouped by path"
            f" ({len(groups)} group(s); – : not in that scenario)",
        )
    else:
        inner += para_html("The scenarios are identical apart from their names.", "note")
    secs.append(("facts", "Scenario facts", inner))
    title = f"tokensim comparison: {' vs '.join(labels)}"
    sub = f"{len(runs)} run folders; differences are against {labels[0]}"
    return page_html(title, sub, secs)


def _values_text(values: Any) -> str:
    """A parameter's values: a list, or a range of a Latin hypercube ({low, high, ...})."""
    if isinstance(values, dict):
        low, high = values.get("low", values.get("min")), values.get("high", values.get("max"))
        return f"{fmt(low)} .. {fmt(high)}" if low is not None else json.dumps(values)
    if isinstance(values, list):
        return ", ".join(fmt_exact(v) for v in values)
    return str(values)


def _sweep_targets(sweep: SweepFolder) -> dict[str, float]:
    """TTFT targets (s) by SLA class of the sweep's first point (its scenario.yaml), if any."""
    import yaml

    from sim.experiments.sweep import point_folder

    for point in sorted(sweep.points["point"].unique()):
        path = point_folder(sweep.path, str(point)) / SCENARIO
        try:
            return ttft_targets(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError, AttributeError):
            continue
    return {}


def _best_point(
    pts: pd.DataFrame, params: Sequence[str], targets: dict[str, float], cur: str
) -> str:
    """The note naming the best point under its stated constraint (or why there is none)."""
    if not targets:
        return (
            "No best point: the scenario states no TTFT target, so there is no latency"
            f" constraint to choose under (the highest {BEST_KPI} alone would pick the point"
            " with the fewest GPUs whatever its latency)."
        )
    limit = min(targets.values())
    tight = ", ".join(c for c, t in targets.items() if t == limit)
    ok = pts[pts[BEST_LATENCY_KPI] <= limit]
    rule = (
        f"points whose busy-hour TTFT p95 (worst pool and month, SLA classes pooled;"
        f" mean over replications) is within the tightest TTFT target,"
        f" {fmt_exact(limit)} s ({tight})"
    )
    if ok.empty or not ok[BEST_KPI].notna().any():
        return f"No best point: none of the {len(pts)} points is among the {rule}."
    best = ok.loc[ok[BEST_KPI].idxmax()]
    setting = ", ".join(f"{p} = {fmt_exact(best[p])}" for p in params)
    return (
        f"Best point under a latency constraint: among the {len(ok)} of {len(pts)} {rule},"
        f" the highest mean {BEST_KPI} is point {best['point']} ({setting}):"
        f" {fmt(best[BEST_KPI], KPIS[BEST_KPI][0], cur)}, busy-hour TTFT p95"
        f" {fmt(best[BEST_LATENCY_KPI], 's')}, busy-hour utilisation"
        f" {fmt(best['busy_hour_utilisation'], 'share')}."
    )


def sweep_report(sweep: SweepFolder) -> str:
    """The HTML report of a sweep folder."""
    from sim.report import figures

    spec, cur = sweep.spec, sweep.currency
    # a parameter with one value is a setting of every point, not an axis: no section of its own
    fixed = [p for p in sweep.parameters if sweep.points[p].nunique(dropna=False) <= 1]
    params = [p for p in sweep.parameters if p not in fixed] or sweep.parameters[:1]
    fixed = [p for p in fixed if p not in params]
    resp = sweep_response(sweep.points, params)
    pts = sweep_points(sweep.points, params)
    planned = len(spec.get(KEY_POINTS) or [])
    done = sweep.points["point"].nunique()
    prow: list[list[Cell]] = [
        [str(p.get("path")), (_values_text(p.get("values")), "l")]
        for p in spec[KEY_PARAMETERS]
        if str(p.get("path")) not in fixed
    ]
    facts: list[list[Cell]] = [
        ["scenario", str(spec.get(KEY_SCENARIO))],
        ["design", str(spec.get(KEY_DESIGN))],
        ["points", f"{done} finished of {planned or done}"],
        ["replications per point", str(spec.get(KEY_REPLICATIONS))],
        ["seed", str(spec.get(KEY_SEED))],
        ["status", str(spec.get(KEY_STATUS, STATUS_COMPLETE))],
    ]
    inner = [table_html(["fact", "value"], facts), table_html(["swept parameter", "values"], prow)]
    if fixed:
        frow: list[list[Cell]] = [[p, (fmt_exact(sweep.points[p].iloc[0]), "l")] for p in fixed]
        inner.append(
            table_html(
                ["setting", "value"],
                frow,
                "Listed as swept but with one value: a setting of every point (an override),"
                " not an axis",
            )
        )
    if planned and done < planned:
        inner.append(
            para_html(
                f"{planned - done} planned point(s) have no results yet; the "
                "figures use the finished ones.",
                "note",
            )
        )
    inner.append(para_html(_best_point(pts, params, _sweep_targets(sweep), cur), "note"))
    secs = [("sweep", "The sweep", "\n".join(inner))]

    for i, par in enumerate(params):
        r = resp[(resp["parameter"] == par) & resp["kpi"].isin(RESPONSE_KPIS)]
        rows: list[list[Cell]] = []
        for value, g in r.groupby("value", sort=True):
            gi = g.set_index("kpi")
            rows.append(
                [
                    fmt_exact(value),
                    fmt(gi["n"].iloc[0]),
                    *(
                        fmt_ci(
                            gi.loc[k, "mean"],
                            gi.loc[k, "ci95_low"],
                            gi.loc[k, "ci95_high"],
                            KPIS[k][0],
                            cur,
                        )
                        for k in RESPONSE_KPIS
                    ),
                ]
            )
        secs.append(
            (
                f"param{i}",
                f"Response to {par}",
                "\n".join(
                    [
                        fig_html(
                            figures.sweep_response(r, par, RESPONSE_KPIS, cur),
                            f"KPI response to {par}",
                            f"Mean and 95% CI of each KPI at each value of {par}, over all points "
                            f"with "
                            "that value (the other parameters vary) and their replications.",
                        ),
                        table_html(
                            [par, "rows", *RESPONSE_KPIS],
                            rows,
                            "Mean [95% CI] per value; rows = points x replications",
                        ),
                    ]
                ),
            )
        )
    trows: list[list[Cell]] = [
        [
            str(r["point"]),
            *(fmt_exact(r[p]) for p in params),
            fmt(r["replications"]),
            *(fmt_ci(r[k], r[f"{k}_lo"], r[f"{k}_hi"], KPIS[k][0], cur) for k in RESPONSE_KPIS),
        ]
        for _, r in pts.iterrows()
    ]
    secs.append(
        (
            "points",
            "Points",
            table_html(
                ["point", *params, "replications", *RESPONSE_KPIS],
                trows,
                f"Mean [95% CI] over each point's replications; every KPI is in {POINTS_CSV}",
            ),
        )
    )
    sub = (
        f"Scenario {spec.get(KEY_SCENARIO)} · {spec.get(KEY_DESIGN)} design · {done} points × "
        f"{spec.get(KEY_REPLICATIONS)} replications · sweep folder {sweep.name}"
    )
    return page_html(f"tokensim sweep report: {spec.get(KEY_SCENARIO)}", sub, secs)
