"""Cross-reference checks of the book at t=0 and of the events: names, months, consistency."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.scenario.schema import Scenario

Add = Callable[[str, str], None]
"""Records one problem: (path of the field, message)."""


def first_sale_month(s: Scenario) -> dict[str, int | None]:
    """Month each plan first goes on sale: 0, a launch month, a trial's month, or None (never)."""
    launches: dict[str, list[int]] = {}
    for e in s.events:
        if e.kind in ("launch", "trial"):
            launches.setdefault(e.plan, []).append(e.month)
    return {p.name: (min(launches[p.name]) if p.name in launches else 0) for p in s.plans}


def trial_plans(s: Scenario) -> set[str]:
    """Plans named by a trial event (offered only while one runs)."""
    return {e.plan for e in s.events if e.kind == "trial"}


def check_book(s: Scenario, add: Add) -> None:
    """Book entries name known segments and plans those segments are offered, on sale at t=0.

    A segment's ``initial_subscribers`` is either left 0 or equal to the book's count, so the
    two can never silently disagree (a subscriber table is counted at load).
    """
    b = s.book
    if b is None:
        return
    segs = {g.name: g for g in s.segments}
    sale = first_sale_month(s)
    counts: dict[str, int] = {}
    for i, e in enumerate(b.entries):
        g = segs.get(e.segment)
        if g is None:
            add(f"book.entries[{i}].segment", f"unknown segment '{e.segment}'")
            continue
        counts[e.segment] = counts.get(e.segment, 0) + e.subscribers
        if e.plan not in sale:
            add(f"book.entries[{i}].plan", f"unknown plan '{e.plan}'")
        elif e.plan not in g.plans:
            add(f"book.entries[{i}].plan", f"plan '{e.plan}' is not offered to '{e.segment}'")
        elif sale[e.plan] != 0 and not b.rechoose:
            add(
                f"book.entries[{i}].plan",
                f"plan '{e.plan}' is not on sale at t=0 (first offered in month {sale[e.plan]})",
            )
    if b.entries:
        check_book_counts(s, counts, add)


def check_book_counts(s: Scenario, counts: dict[str, int], add: Add) -> None:
    """Each segment's ``initial_subscribers`` is 0 (taken from the book) or the book's count."""
    for k, g in enumerate(s.segments):
        n = counts.get(g.name, 0)
        if g.initial_subscribers not in (0, n):
            add(
                f"segments[{k}].initial_subscribers",
                f"{g.initial_subscribers} disagrees with the book's {n} for '{g.name}'"
                " (leave it 0 or give the same count)",
            )


def check_events(s: Scenario, add: Add) -> None:
    """Events name known plans and segments, fall inside the horizon, and do not collide."""
    plans = {p.name for p in s.plans}
    segs = {g.name: g for g in s.segments}
    trials = trial_plans(s)
    seen_price: set[tuple[str, int]] = set()
    for i, e in enumerate(s.events):
        at = f"events[{i}]"
        if e.month >= s.horizon_months:
            add(f"{at}.month", f"month {e.month} is past the horizon ({s.horizon_months} months)")
        until = getattr(e, "until_month", None)
        if until is not None and not e.month < until <= s.horizon_months:
            add(f"{at}.until_month", f"must lie after month {e.month} and within the horizon")
        if e.kind == "competitor_price":
            if e.segment not in segs:
                add(f"{at}.segment", f"unknown segment '{e.segment}'")
            continue
        if e.plan not in plans:
            add(f"{at}.plan", f"unknown plan '{e.plan}'")
            continue
        if e.kind == "price_change":
            if (e.plan, e.month) in seen_price:
                add(f"{at}.month", f"a second price change of '{e.plan}' in month {e.month}")
            seen_price.add((e.plan, e.month))
        if e.kind == "retire":
            _check_migration(s, i, e.plan, e.migrate_to, trials, add)
        if (
            e.kind in ("launch", "retire", "promotion", "price_change", "quota_change")
            and e.plan in trials
        ):
            add(f"{at}.plan", f"'{e.plan}' is a trial plan: only trial events may name it")


def _check_migration(
    s: Scenario, i: int, plan: str, target: str, trials: set[str], add: Add
) -> None:
    """A retired plan's subscribers move to a known, different, paid plan their segment has."""
    at = f"events[{i}].migrate_to"
    if target not in {p.name for p in s.plans}:
        add(at, f"unknown plan '{target}'")
        return
    if target == plan:
        add(at, "a plan cannot migrate to itself")
    if target in trials:
        add(at, f"'{target}' is a trial plan")
    for g in s.segments:
        if plan in g.plans and target not in g.plans:
            add(at, f"plan '{target}' is not offered to segment '{g.name}', which holds '{plan}'")
