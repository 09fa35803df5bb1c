"""Plan terms by calendar month, and the book at t=0, as plain arrays.

The scenario's ``events`` become tables indexed by [month, plan] (list fee, quota, on sale,
promotion, migration target) plus the list of price changes with the day from which each
reaches existing subscribers; ``book`` becomes one row per initial subscriber. Built from
plain dictionaries (the events' ``model_dump()``), so this module never imports the schema.

Conventions (docs/model.md, "The book and events"):

* a billing month that starts in calendar month m is priced and sized by row m: a new
  subscriber pays ``fee[m]`` (less any promotion) and gets ``quota[m]``; a renewing one gets
  ``quota[m]`` and keeps its own fee unless a price change has reached it;
* a price change in month m with ``existing: next_renewal`` reaches existing subscribers at
  their first renewal on or after day m * days_per_month; ``grandfathered`` N months later;
  ``new_only`` never. The latest change that has reached a subscriber sets its fee;
* a retired plan's subscribers move to its target at their first renewal in or after the
  retirement month (chains of retirements are followed to a plan still on sale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class Timeline:
    """Plan terms by month; every [M, P] table is row m = calendar month m."""

    base_fee: F64  # [P] fee before any event: what the book at t=0 pays (currency/month)
    base_quota: F64  # [P] quota before any event (units/month)
    fee: F64  # [M, P] list fee of billing months a new subscriber starts in month m
    quota: F64  # [M, P] quota of billing months starting in month m (units)
    on_sale: B  # [M, P] new subscribers and ladder moves may take the plan in month m
    promo_share: F64  # [M, P] share of the fee waived for subscribers joining in month m
    promo_months: I64  # [M, P] billing months that discount lasts
    trial_months: I64  # [P] billing months of a free trial plan (0: a paid plan)
    migrate_to: I64  # [M, P] plan a renewal in month m moves to (-1: none)
    price_plan: I64  # [K] price changes, in order of month (then file order)
    price_fee: F64  # [K] new fee (currency/month)
    price_day: I64  # [K] first day new subscribers pay it
    price_existing_day: F64  # [K] first renewal day existing subscribers pay it (inf: never)
    epoch_at: I64  # [M, P] latest price change in force for newcomers in month m (-1: none)
    reference: F64  # [M, S] market reference price per segment (nan: none)
    events: list[tuple[int, str, str, str]] = field(default_factory=list)
    """(month, kind, plan or segment, description) per event, for tables and the report."""

    @property
    def active(self) -> bool:
        """Any event or reference price at all (otherwise the engine skips this bookkeeping)."""
        return bool(self.events) or bool(np.isfinite(self.reference).any())


@dataclass(frozen=True)
class Book:
    """One row per subscriber at t=0 (index = id in the book)."""

    seg: I64
    plan: I64  # -1: choose by the logit at t=0 (rechoose)
    tenure_months: I64  # -1: draw geometric with tenure_mean
    tenure_mean: F64  # months
    monthly_tokens: F64  # mean monthly tokens from billing (nan: draw the intensity)


def _trial_windows(
    events: Sequence[Mapping[str, Any]], n_m: int, p_idx: Mapping[str, int], on_sale: B
) -> I64:
    """Trial plans are on sale only inside their trial windows; returns trial months per plan."""
    trial_months = np.zeros(on_sale.shape[1], dtype=np.int64)
    trials = [e for e in events if e["kind"] == "trial"]
    for e in trials:
        on_sale[:, p_idx[e["plan"]]] = False
    for e in trials:
        p = p_idx[e["plan"]]
        on_sale[e["month"] : e["until_month"] or n_m, p] = True
        trial_months[p] = e["trial_months"]
    return trial_months


def _resolve_migrations(migrate_to: I64) -> None:
    """Follow chains (a -> b retired later -> c) so each row names a plan's final target."""
    n_m, n_p = migrate_to.shape
    for m in range(n_m):
        for p in range(n_p):
            seen = {p}
            t = migrate_to[m, p]
            while t >= 0 and migrate_to[m, t] >= 0:
                if t in seen:
                    raise ValueError(f"retirements form a cycle in month {m}")
                seen.add(int(t))
                t = migrate_to[m, t]
            migrate_to[m, p] = t


def build_timeline(
    events: Sequence[Mapping[str, Any]],
    plan_names: list[str],
    base_fee: F64,
    base_quota: F64,
    seg_names: list[str],
    reference0: F64,
    horizon_months: int,
    days_per_month: int,
) -> Timeline:
    """Fold the events (plain dicts, validated) into month x plan tables."""
    n_m, n_p = horizon_months, len(plan_names)
    p_idx = {n: i for i, n in enumerate(plan_names)}
    s_idx = {n: i for i, n in enumerate(seg_names)}
    order = sorted(range(len(events)), key=lambda i: events[i]["month"])
    evs = [events[i] for i in order]
    fee = np.tile(base_fee, (n_m, 1))
    quota = np.tile(base_quota, (n_m, 1))
    on_sale = np.ones((n_m, n_p), dtype=bool)
    promo_share = np.zeros((n_m, n_p))
    promo_months = np.zeros((n_m, n_p), dtype=np.int64)
    migrate_to = np.full((n_m, n_p), -1, dtype=np.int64)
    reference = np.tile(reference0, (n_m, 1))
    price: list[tuple[int, float, int, float]] = []
    described: list[tuple[int, str, str, str]] = []
    for e in evs:
        if e["kind"] == "launch":
            on_sale[: e["month"], p_idx[e["plan"]]] = False
    trial_months = _trial_windows(evs, n_m, p_idx, on_sale)
    for e in evs:
        m, kind = e["month"], e["kind"]
        subject = e.get("plan") or e.get("segment") or ""
        if kind == "price_change":
            p = p_idx[subject]
            fee[m:, p] = e["price_per_month"]
            day = m * days_per_month
            later = {"next_renewal": 0, "new_only": None}.get(
                e["existing"], e["grandfather_months"]
            )
            existing = np.inf if later is None else float(day + later * days_per_month)
            price.append((p, e["price_per_month"], day, existing))
            text = f"fee {e['price_per_month']:g}; existing subscribers: " + (
                "at their next renewal"
                if e["existing"] == "next_renewal"
                else "never (new subscribers only)"
                if e["existing"] == "new_only"
                else f"after {e['grandfather_months']} months"
            )
        elif kind == "quota_change":
            quota[m:, p_idx[subject]] = e["amount"]
            text = f"quota {e['amount']:g} per month from the next renewal"
        elif kind == "launch":
            text = "on sale"
        elif kind == "retire":
            on_sale[m:, p_idx[subject]] = False
            migrate_to[m:, p_idx[subject]] = p_idx[e["migrate_to"]]
            text = f"off sale; subscribers move to {e['migrate_to']} at their next renewal"
        elif kind == "promotion":
            end = e["until_month"] or n_m
            promo_share[m:end, p_idx[subject]] = e["discount"]
            promo_months[m:end, p_idx[subject]] = e["discounted_months"]
            text = (
                f"{e['discount']:.0%} off the first {e['discounted_months']} months"
                f" for subscribers joining until month {end - 1}"
            )
        elif kind == "trial":
            end = e["until_month"] or n_m
            text = f"free trial of {e['trial_months']} months offered until month {end - 1}"
        else:  # competitor_price
            reference[m:, s_idx[subject]] = e["reference_price"]
            text = f"market reference price {e['reference_price']:g} per month"
        described.append((m, kind, subject, text))
    fee[:, trial_months > 0] = 0.0
    _resolve_migrations(migrate_to)
    k = len(price)
    epoch_at = np.full((n_m, n_p), -1, dtype=np.int64)
    for i, (p, _, day, _) in enumerate(price):
        epoch_at[day // days_per_month :, p] = i
    return Timeline(
        base_fee=np.where(trial_months > 0, 0.0, base_fee),
        base_quota=base_quota.copy(),
        fee=fee,
        quota=quota,
        on_sale=on_sale,
        promo_share=promo_share,
        promo_months=promo_months,
        trial_months=trial_months,
        migrate_to=migrate_to,
        price_plan=np.array([x[0] for x in price], dtype=np.int64).reshape(k),
        price_fee=np.array([x[1] for x in price], dtype=np.float64).reshape(k),
        price_day=np.array([x[2] for x in price], dtype=np.int64).reshape(k),
        price_existing_day=np.array([x[3] for x in price], dtype=np.float64).reshape(k),
        epoch_at=epoch_at,
        reference=reference,
        events=described,
    )


def build_book(
    entries: Sequence[Mapping[str, Any]],
    table: Any,
    rechoose: bool,
    plan_names: list[str],
    seg_names: list[str],
) -> Book:
    """One row per initial subscriber, from counts (``entries``) or a subscriber table.

    ``table`` is a pandas DataFrame with columns segment, plan, tenure_months and optionally
    monthly_tokens (or None when the book gives counts).
    """
    p_idx = {n: i for i, n in enumerate(plan_names)}
    s_idx = {n: i for i, n in enumerate(seg_names)}
    if table is not None:
        n = len(table)
        seg = table["segment"].map(s_idx).to_numpy(np.int64)
        plan = table["plan"].map(p_idx).to_numpy(np.int64)
        tenure = table["tenure_months"].to_numpy(np.int64)
        mean = np.zeros(n)
        tokens = (
            table["monthly_tokens"].to_numpy(np.float64)
            if "monthly_tokens" in table.columns
            else np.full(n, np.nan)
        )
    else:
        counts = [e["subscribers"] for e in entries]
        seg = np.repeat([s_idx[e["segment"]] for e in entries], counts).astype(np.int64)
        plan = np.repeat([p_idx[e["plan"]] for e in entries], counts).astype(np.int64)
        mean = np.repeat([float(e["tenure_mean_months"]) for e in entries], counts)
        tenure = np.full(len(seg), -1, dtype=np.int64)
        tokens = np.full(len(seg), np.nan)
    if rechoose:
        plan = np.full(len(seg), -1, dtype=np.int64)
    return Book(seg=seg, plan=plan, tenure_months=tenure, tenure_mean=mean, monthly_tokens=tokens)
