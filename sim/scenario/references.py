"""Cross-reference checks: every name a scenario uses refers to something it defines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.scenario.errors import ScenarioError
from sim.scenario.timeline_checks import check_book, check_events

if TYPE_CHECKING:
    from sim.scenario.schema import Scenario


class _Problems:
    """Collects cross-reference problems with their paths, raised together."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, msg: str) -> None:
        self.items.append((path, msg))


def _dupes(names: list[str]) -> set[str]:
    seen: set[str] = set()
    return {n for n in names if n in seen or seen.add(n)}  # type: ignore[func-returns-value]


def check_references(s: Scenario) -> None:
    """Check every name a scenario uses refers to something it defines; raise all problems."""
    pr = _Problems()
    _check_unique_names(s, pr)
    _check_catalog(s, pr)
    pooled = _check_pools(s, pr)
    _check_replicas(s, pr)
    _check_plans(s, pooled, pr)
    _check_segments(s, pr)
    check_book(s, pr.add)
    check_events(s, pr.add)
    if pr.items:
        raise ScenarioError(pr.items)


def _check_unique_names(s: Scenario, pr: _Problems) -> None:
    """Names are unique within each collection (they are how other entries refer to them)."""
    for coll, items in (
        ("catalog.models", [m.name for m in s.catalog.models]),
        ("catalog.gpus", [g.name for g in s.catalog.gpus]),
        ("plans", [p.name for p in s.plans]),
        ("segments", [g.name for g in s.segments]),
        ("cluster.pools", [p.name for p in s.cluster.pools]),
        ("cluster.sla_classes", [c.name for c in s.cluster.sla_classes]),
    ):
        for d in sorted(_dupes(items)):
            pr.add(coll, f"duplicate name '{d}'")


def _check_catalog(s: Scenario, pr: _Problems) -> None:
    """Every serving entry names a GPU type of the catalog."""
    gpus = {g.name for g in s.catalog.gpus}
    for i, m in enumerate(s.catalog.models):
        for j, sv in enumerate(m.serving):
            if sv.gpu not in gpus:
                pr.add(f"catalog.models[{i}].serving[{j}].gpu", f"unknown GPU type '{sv.gpu}'")


def _check_pools(s: Scenario, pr: _Problems) -> dict[str, int]:
    """Pools serve known models on GPUs those models run on, one pool each: model -> pool index.

    A pool's capacity schedule must have strictly increasing months.
    """
    models = {m.name: m for m in s.catalog.models}
    gpus = {g.name for g in s.catalog.gpus}
    pooled: dict[str, int] = {}
    for i, p in enumerate(s.cluster.pools):
        if p.model not in models:
            pr.add(f"cluster.pools[{i}].model", f"unknown model '{p.model}'")
            continue
        if p.gpu not in gpus:
            pr.add(f"cluster.pools[{i}].gpu", f"unknown GPU type '{p.gpu}'")
        elif not any(sv.gpu == p.gpu for sv in models[p.model].serving):
            pr.add(
                f"cluster.pools[{i}].gpu", f"model '{p.model}' has no serving entry for '{p.gpu}'"
            )
        elif p.serving == "batched":
            sv = next(v for v in models[p.model].serving if v.gpu == p.gpu)
            if sv.step_time is None:
                pr.add(
                    f"cluster.pools[{i}].serving",
                    f"batched serving needs a step_time in model '{p.model}''s serving entry"
                    f" for '{p.gpu}'",
                )
        if p.model in pooled:
            pr.add(f"cluster.pools[{i}].model", f"model '{p.model}' already has a pool")
        pooled[p.model] = i
        months = [c.month for c in p.schedule]
        if months != sorted(months) or len(set(months)) != len(months):
            pr.add(f"cluster.pools[{i}].schedule", "months must be strictly increasing")
        if p.disaggregated is not None:
            if p.serving != "batched":
                pr.add(
                    f"cluster.pools[{i}].disaggregated",
                    "separate prefill and decode replicas need serving: batched",
                )
            months = [c.month for c in p.disaggregated.decode_schedule]
            if months != sorted(months) or len(set(months)) != len(months):
                pr.add(
                    f"cluster.pools[{i}].disaggregated.decode_schedule",
                    "months must be strictly increasing",
                )
    return pooled


def _check_replicas(s: Scenario, pr: _Problems) -> None:
    """A pool with cards has at least one replica of its model on its GPU type.

    Only whole replicas serve (``sim.world.build``: floor(gpus / gpus_per_replica)), so 0 < gpus
    < gpus_per_replica, at t=0 or at any schedule step, pays for cards that serve no request.
    0 cards stay allowed (a model switched off). Pools with an unknown model or GPU type, or no
    serving entry for it, are reported by ``_check_pools``.
    """
    models = {m.name: m for m in s.catalog.models}
    for i, p in enumerate(s.cluster.pools):
        llm = models.get(p.model)
        sv = next((v for v in llm.serving if v.gpu == p.gpu), None) if llm else None
        if sv is None:
            continue
        need = sv.gpus_per_replica
        levels = [(f"cluster.pools[{i}].gpus", p.gpus)] + [
            (f"cluster.pools[{i}].schedule[{k}].gpus", c.gpus) for k, c in enumerate(p.schedule)
        ]
        if p.disaggregated is not None:
            d, at = p.disaggregated, f"cluster.pools[{i}].disaggregated"
            levels += [(f"{at}.decode_gpus", d.decode_gpus)] + [
                (f"{at}.decode_schedule[{k}].gpus", c.gpus) for k, c in enumerate(d.decode_schedule)
            ]
        for path, gpus in levels:
            if 0 < gpus < need:
                pr.add(
                    path,
                    f"{gpus} GPUs is less than one replica of {p.model} on {p.gpu} ({need} GPUs):"
                    f" no request could be served; use 0 or at least {need}",
                )


def _check_plans(s: Scenario, pooled: dict[str, int], pr: _Problems) -> None:
    """Plans use known, pooled models and known SLA classes; a downgrade goes to a pooled model."""
    models = {m.name for m in s.catalog.models}
    classes = {c.name for c in s.cluster.sla_classes}
    for i, plan in enumerate(s.plans):
        for mname in plan.models:
            if mname not in models:
                pr.add(f"plans[{i}].models.{mname}", f"unknown model '{mname}'")
            elif mname not in pooled:
                pr.add(
                    f"plans[{i}].models.{mname}", f"model '{mname}' has no pool in cluster.pools"
                )
        if plan.sla_class not in classes:
            pr.add(f"plans[{i}].sla_class", f"unknown SLA class '{plan.sla_class}'")
        ex = plan.on_exhaustion
        if ex.rule == "throttle" and ex.mode == "downgrade":
            dm = ex.downgrade_model
            if dm not in models:
                pr.add(f"plans[{i}].on_exhaustion.downgrade_model", f"unknown model '{dm}'")
            elif dm not in pooled:
                pr.add(f"plans[{i}].on_exhaustion.downgrade_model", f"model '{dm}' has no pool")


def _check_segments(s: Scenario, pr: _Problems) -> None:
    """Segments are offered known plans, prefer known models, and can use one under each plan."""
    models = {m.name for m in s.catalog.models}
    plans = {p.name: p for p in s.plans}
    for i, g in enumerate(s.segments):
        for j, pn in enumerate(g.plans):
            if pn not in plans:
                pr.add(f"segments[{i}].plans[{j}]", f"unknown plan '{pn}'")
        for mname in g.model_preference:
            if mname not in models:
                pr.add(f"segments[{i}].model_preference.{mname}", f"unknown model '{mname}'")
        for pn in g.plans:
            pl = plans.get(pn)
            if pl is None:
                continue
            usable = [m for m in pl.models if g.model_preference.get(m, 0) > 0]
            if not usable:
                pr.add(
                    f"segments[{i}].model_preference",
                    f"no preferred model is usable under plan '{pn}'",
                )
