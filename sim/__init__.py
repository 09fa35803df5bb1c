"""tokensim: discrete-event simulator of LLM token-package demand.

The public API (imported lazily so that ``tokensim validate`` stays fast):

* :func:`load_scenario` / :func:`validate_data` - read and validate a scenario;
* :func:`run_scenario` - run its replications, returning a :class:`RunResult` whose
  methods give pandas DataFrames (``months()``, ``monthly()``, ``hourly()``,
  ``latency()``, ``ledger()``, ``kpis()``) and ``summary()``;
* :func:`write_run` - write a run folder atomically;
* :func:`apply_overrides` - a changed copy of a scenario, by dotted paths;
* :class:`Sweep`, :func:`run_sweep`, :func:`open_client` - sweeps on a dask cluster;
* :func:`size` - the fewest GPUs per pool meeting SLO targets at the busy hour (a
  :class:`Sizing` with the answer, the evaluations and the procurement schedule).
* :func:`tune` - search scenario fields (prices, quotas, GPUs) for the best margin, revenue,
  subscribers or LTV under constraints, on replications with common random numbers (a
  :class:`Tuning` with the trials, the re-evaluation, the Pareto front and the answer).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "load_scenario": "sim.scenario.loading",
    "validate_data": "sim.scenario.loading",
    "Scenario": "sim.scenario.schema",
    "ScenarioError": "sim.scenario.errors",
    "run_scenario": "sim.experiments.runner",
    "RunResult": "sim.results.tables",
    "write_run": "sim.results.run_folder",
    "apply_overrides": "sim.scenario.overrides",
    "Sweep": "sim.scenario.schema",
    "run_sweep": "sim.experiments.sweep",
    "open_client": "sim.experiments.distributed",
    "size": "sim.capacity.search",
    "Sizing": "sim.capacity.search",
    "tune": "sim.pricing.tune",
    "Tuning": "sim.pricing.answer",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
