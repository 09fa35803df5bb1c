"""The README's Python example runs as written (from the repository root), and the tests its
promises name exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_api_example_runs(monkeypatch: pytest.MonkeyPatch, capsys):
    api = [b for b in _python_blocks() if "sim.run_scenario" in b]
    assert api, "the README shows the Python API"
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(api[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert len(result.replications) == 2
    months = result.months()
    assert (months["subscribers_end"] > 0).all()
    assert result.scenario.plans[0].price_per_month == 12.9
    summary = result.summary()["gross_margin"]
    assert summary["ci95_low"] <= summary["mean"] <= summary["ci95_high"]
    assert "subscribers_end" in capsys.readouterr().out
    assert os.getcwd() == str(ROOT)


@pytest.mark.slow
def test_readme_sweep_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    block = [b for b in _python_blocks() if "sim.run_sweep" in b]
    assert block, "the README shows a sweep from Python"
    code = block[0].replace('"results/', f'"{tmp_path}/')
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    t = namespace["sweep"].table
    assert len(t) == 3 * 2
    assert namespace["dear"].plans[4].price_per_month == 199
    fees = t.groupby("plans.dev_70m.price_per_month")["revenue_fees"].mean()
    assert fees.nunique() == 3  # the swept price reaches the bills


def test_readme_size_example_runs(monkeypatch: pytest.MonkeyPatch, capsys):
    """The README's capacity-planning example runs and prints an answer in whole replicas."""
    block = [b for b in _python_blocks() if "sim.size" in b]
    assert block, "the README shows sim.size"
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(block[0], "README.md", "exec"), namespace)
    answer = namespace["sizing"].answer
    assert list(answer["pool"]) == ["telechat"]
    assert (answer["gpus"] == answer["replicas"] * 2).all()  # telechat replicas are 2 GPUs
    assert "simulated months" in capsys.readouterr().out


def test_every_promise_in_the_readme_names_a_test_that_exists():
    """'What you can rely on': each ``file.py::test_name`` it cites is a test in tests/."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## What you can rely on") : text.index("## Outputs")]
    cited = re.findall(r"(test_\w+\.py)::(test_\w+)", section)
    assert len(cited) >= 10
    for file, name in cited:
        found = list((ROOT / "tests").rglob(file))
        assert found, f"README cites {file}, which is not in tests/"
        assert f"def {name}(" in found[0].read_text(), f"README cites {file}::{name}: no such test"
