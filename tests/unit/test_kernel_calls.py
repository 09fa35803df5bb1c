"""The compiled kernels are called by keyword, with exactly their parameter names.

``serve_day`` and ``tally_day`` take some forty arrays each, many of one dtype: passed by
position, two swapped arrays would run silently. Every Python call site passes them by
keyword, so a renamed, misspelt or reordered parameter fails loudly instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from support import kernel_harness
from support.kernel_harness import Harness
from support.scenarios import small_scenario

from sim.engine import metrics, replication
from sim.engine.accounting import tally_day
from sim.engine.admission import serve_day
from sim.engine.replication import run_replication
from sim.world.build import build

Call = tuple[tuple[Any, ...], dict[str, Any]]


def _params(kernel: Any) -> list[str]:
    """The kernel's parameter names, in order (from the Python function numba compiled)."""
    return list(inspect.signature(kernel.py_func).parameters)


def _recording(kernel: Any, calls: list[Call]) -> Callable[..., Any]:
    """The kernel, recording each call's positional and keyword arguments before running it."""

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, dict(kwargs)))
        return kernel(*args, **kwargs)

    return record


def _harness_kwargs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One valid keyword set for serve_day, taken from a tiny kernel-harness batch."""
    calls: list[Call] = []
    monkeypatch.setattr(kernel_harness, "serve_day", _recording(serve_day, calls))
    Harness(slots=[2]).run(t=[0.0, 1.0], sub=[0, 0], sub_plan=[0], quota=[10.0])
    assert len(calls) == 1
    return calls[0][1]


@pytest.fixture(scope="module")
def tiny_run_calls() -> dict[str, list[Call]]:
    """Every serve_day and tally_day call of one short replication of the small scenario."""
    calls: dict[str, list[Call]] = {"serve_day": [], "tally_day": []}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(replication, "serve_day", _recording(serve_day, calls["serve_day"]))
        mp.setattr(metrics, "tally_day", _recording(tally_day, calls["tally_day"]))
        world = build(small_scenario(horizon_months=1, days_per_month=3))
        run_replication(world, seed=1)
    return calls


@pytest.mark.parametrize(("name", "kernel"), [("serve_day", serve_day), ("tally_day", tally_day)])
def test_the_engine_passes_exactly_the_kernel_parameters_by_keyword(tiny_run_calls, name, kernel):
    calls = tiny_run_calls[name]
    assert calls, f"the run never called {name}"
    for args, kwargs in calls:
        assert args == ()
        assert sorted(kwargs) == sorted(_params(kernel))


def test_the_kernel_harness_passes_exactly_the_serve_day_parameters(monkeypatch):
    kwargs = _harness_kwargs(monkeypatch)
    assert sorted(kwargs) == sorted(_params(serve_day))


def _copied(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword set with every array copied (a kernel call fills some in place)."""
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def test_serve_day_rejects_a_misspelt_keyword(monkeypatch):
    kwargs = _harness_kwargs(monkeypatch)
    serve_day(**_copied(kwargs))  # the names as recorded are accepted
    kwargs["concurrency"] = kwargs.pop("conc")  # the Plans field's name, not the kernel's
    with pytest.raises(TypeError, match="conc"):
        serve_day(**_copied(kwargs))


def test_tally_day_rejects_a_misspelt_keyword(tiny_run_calls):
    kwargs = tiny_run_calls["tally_day"][0][1]
    tally_day(**_copied(kwargs))  # the names as recorded are accepted
    kwargs = dict(kwargs)
    kwargs["tpot_s"] = kwargs.pop("tpot")  # the Pools field's name, not the kernel's
    with pytest.raises(TypeError, match="tpot"):
        tally_day(**_copied(kwargs))


def test_a_missing_or_extra_keyword_is_refused(monkeypatch, tiny_run_calls):
    for kernel, kwargs in [
        (serve_day, _harness_kwargs(monkeypatch)),
        (tally_day, tiny_run_calls["tally_day"][0][1]),
    ]:
        last = _params(kernel)[-1]
        with pytest.raises(TypeError):
            kernel(**_copied({k: v for k, v in kwargs.items() if k != last}))
        with pytest.raises(TypeError):
            kernel(**_copied(kwargs), extra=None)
