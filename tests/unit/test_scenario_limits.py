"""Issue 14 (reliability): every finding of the scenario fuzzing review, one regression test each.

Numbers: inf/NaN and absurd magnitudes are refused at the edge, naming the field; bounds still
take what a real operator writes. YAML: duplicate keys, deep nesting, large files, alias
bombs, devices as replay or book files. Names: not empty. A run that cannot be held in memory
is refused before simulating. The engine never reports a table holding inf or NaN.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from support.scenario_fuzz import all_paths, dump, get, load_data, replaced

from sim.cli import main
from sim.scenario import limits, run_size, yaml_reader
from sim.scenario.errors import ScenarioError
from sim.scenario.loading import load_scenario, validate_data

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
TPD = ROOT / "scenarios" / "tpd-10k-30d.yaml"


@pytest.fixture(scope="module")
def base() -> Any:
    return load_data(BASELINE)


def _problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as e:
        validate_data(data)
    return e.value.problems


def _paths(problems: list[tuple[str, str]]) -> set[str]:
    return {p for p, _ in problems}


def _numeric_paths(data: Any) -> list[tuple[str | int, ...]]:
    """Every number of the data outside the x- anchor blocks (their aliases are checked)."""
    out = []
    for p in all_paths(data):
        v = get(data, p)
        if (
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and not str(p[0]).startswith("x-")
        ):
            out.append(p)
    return out


def _dotted(p: tuple[str | int, ...]) -> str:
    out = ""
    for part in p:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _load_text(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_is_refused_in_every_numeric_field(base: Any, bad: float):
    """Finding: inf passed validation in 24 of 32 numeric fields; now none, naming the field."""
    paths = _numeric_paths(base)
    assert len(paths) > 100
    for p in paths:
        problems = _problems(replaced(base, p, bad))
        assert _dotted(p) in _paths(problems), (p, problems)


def test_1e308_is_refused_in_every_numeric_field(base: Any):
    """Finding: 1e308 passed in 18 of 23 fields; now every field has an upper bound."""
    for p in _numeric_paths(base):
        problems = _problems(replaced(base, p, 1e308))
        assert _dotted(p) in _paths(problems), (p, problems)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("segments", 0, "sessions_per_day"), 1e308),
        (("cluster", "pools", 0, "gpus"), 10**12),
        (("segments", 0, "initial_subscribers"), 10**12),
        (("segments", 0, "members"), 10**12),
        (("segments", 0, "requests_per_session"), 10**12),
        (("segments", 0, "input_tokens", "median"), 10**12),
        (("plans", 0, "price_per_month"), 10**13),
        (("plans", 0, "quota", "amount"), 10**19),
        (("catalog", "models", 0, "serving", 0, "gpus_per_replica"), 10**12),
        (("catalog", "models", 0, "serving", 0, "batch_slots_per_replica"), 10**12),
    ],
)
def test_absurd_magnitudes_are_refused(base: Any, field: tuple[str | int, ...], value: float):
    """Finding: 10^12 or more passed in 26 of 30 count, rate, token, price and GPU fields."""
    problems = _problems(replaced(base, field, value))
    assert _dotted(field) in _paths(problems)
    assert any("upper bound" in m for _, m in problems)


def test_infinite_output_median_is_refused(base: Any):
    """Finding: ``output_tokens: {median: .inf}`` corrupted memory in a compiled kernel and left
    a run folder 'complete' with tokens_served = inf."""
    problems = _problems(replaced(base, ("segments", 0, "output_tokens", "median"), math.inf))
    assert ("segments[0].output_tokens.median", "Input should be a finite number") in problems


def test_inf_in_hour_profile_is_refused(base: Any):
    """Finding: one ``.inf`` in a segment's hour_profile silently wiped out its demand."""
    data = replaced(base, ("segments", 0, "hour_profile"), [1.0] * 23 + [math.inf])
    assert "segments[0].hour_profile[23]" in _paths(_problems(data))


def test_nan_churn_coefficient_is_refused(base: Any):
    """Finding: ``.nan`` in a churn coefficient was accepted and turned churn off."""
    data = copy.deepcopy(base)
    data["churn"] = {"refused": math.nan}
    assert "churn.refused" in _paths(_problems(data))
    assert "segments[0].churn_intercept" in _paths(
        _problems(replaced(base, ("segments", 0, "churn_intercept"), math.nan))
    )


def test_huge_sessions_gpus_acquisition_and_market_are_refused(base: Any):
    """Finding: sessions_per_day 1e308, gpus 1e12, acquisition 1e12/month and Bass market_size
    1e12 passed validation and then ended in tracebacks or unbounded memory."""
    cases = {
        ("segments", 0, "sessions_per_day"): 1e308,
        ("cluster", "pools", 0, "gpus"): 10**12,
    }
    for field, value in cases.items():
        assert _dotted(field) in _paths(_problems(replaced(base, field, value)))
    constant = replaced(
        base, ("segments", 0, "acquisition"), {"model": "constant", "per_month": 1e12}
    )
    assert "segments[0].acquisition.per_month" in _paths(_problems(constant))
    bass = replaced(base, ("segments", 0, "acquisition"), {"model": "bass", "market_size": 1e12})
    assert "segments[0].acquisition.market_size" in _paths(_problems(bass))


def test_bounds_take_what_a_real_operator_writes(base: Any):
    """China Mobile's ~1 billion subscribers and 2M-token context windows validate."""
    data = replaced(base, ("segments", 0, "initial_subscribers"), 1_000_000_000)
    data = replaced(data, ("segments", 0, "acquisition"), {"model": "bass", "market_size": 2e9})
    data = replaced(data, ("segments", 0, "input_tokens", "max"), 2_000_000)
    data = replaced(data, ("cluster", "pools", 0, "gpus"), 1_000_000)
    data = replaced(data, ("plans", 0, "price_per_month"), 4.2e8)  # $10,000 in Iranian rials
    validate_data(data)


def test_every_bound_is_a_documented_limit():
    """The limits are named constants, each with a docstring, listed in docs/parameters.md."""
    from sim.scenario.docgen import limit_docs

    docs = limit_docs()
    names = [n for n in dir(limits) if n.startswith(("MAX_", "MIN_"))]
    assert sorted(docs) == sorted(names)
    assert all(why for _, why in docs.values())
    text = (ROOT / "docs" / "parameters.md").read_text()
    assert all(f"`{n}`" in text for n in names)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["", " ", "  chat", "chat "])
@pytest.mark.parametrize(
    "where", [("segments", 0, "name"), ("cluster", "pools", 0, "name"), ("plans", 0, "name")]
)
def test_empty_or_blank_names_are_refused(base: Any, name: str, where: tuple[str | int, ...]):
    """Finding: empty names for segments and pools were accepted."""
    assert _dotted(where) in _paths(_problems(replaced(base, where, name)))


# --------------------------------------------------------------------------- YAML


def test_duplicate_key_is_an_error_naming_the_path(tmp_path: Path):
    """Finding: duplicate keys were accepted, last wins (a second price_per_month: 0 made a
    plan free)."""
    text = BASELINE.read_text().replace(
        "price_per_month: 9.9,", "price_per_month: 9.9, price_per_month: 0,", 1
    )
    with pytest.raises(ScenarioError) as e:
        load_scenario(_load_text(tmp_path, text))
    ((where, msg),) = e.value.problems
    assert where == "plans[0].price_per_month"
    assert "duplicate key 'price_per_month'" in msg


def test_duplicate_key_in_block_style(tmp_path: Path):
    text = "name: a\nhorizon_months: 1\nhorizon_months: 2\n"
    with pytest.raises(ScenarioError) as e:
        load_scenario(_load_text(tmp_path, text))
    assert e.value.problems[0][0] == "horizon_months"


def test_merge_keys_may_still_be_overridden(tmp_path: Path):
    """A ``<<`` merge's keys are defaults: an explicit key overriding one is no duplicate."""
    assert yaml_reader.parse_yaml("x: &a {p: 1, q: 2}\ny: {<<: *a, p: 3}\n")["y"] == {
        "p": 3,
        "q": 2,
    }


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused_without_a_traceback(tmp_path: Path, style: str):
    """Finding: 1,000-level nesting ended in a RecursionError traceback."""
    if style == "flow":
        text = "name: x\nfoo: " + "[" * 1000 + "]" * 1000 + "\n"
    else:
        text = "name: x\n" + "".join("  " * i + f"k{i}:\n" for i in range(1000))
    with pytest.raises(ScenarioError) as e:
        load_scenario(_load_text(tmp_path, text))
    # ours (at MAX_YAML_DEPTH levels) or libyaml's own, whose flow scanner looks ahead
    assert "nest" in e.value.problems[0][1]
    if style == "block":
        assert f"nested more than {limits.MAX_YAML_DEPTH} levels" in e.value.problems[0][1]


def test_a_large_file_is_refused_before_parsing(tmp_path: Path):
    """Finding: no file-size limit (a 50 MB comment took 99 s to read)."""
    f = tmp_path / "big.yaml"
    f.write_text("name: x\n#" + "a" * (limits.MAX_SCENARIO_BYTES + 1) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert time.perf_counter() - t0 < 2.0
    assert "more than the limit" in e.value.problems[0][1]


def test_a_long_list_is_refused_quickly(tmp_path: Path):
    """Finding: a 10.5 M-item list did not finish in 400 s."""
    f = tmp_path / "list.yaml"
    f.write_text("name: x\nfoo: [" + ",".join(["1"] * 10_500_000) + "]\n")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError):
        load_scenario(f)
    assert time.perf_counter() - t0 < 2.0


def test_an_alias_bomb_is_refused(tmp_path: Path):
    """Aliases of aliases expand exponentially; the expanded count is bounded."""
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as e:
        load_scenario(_load_text(tmp_path, "\n".join(lines) + "\n"))
    assert time.perf_counter() - t0 < 5.0
    assert "values (aliases expanded)" in e.value.problems[0][1]


@pytest.mark.parametrize("path", ["/dev/zero", "/tmp"])
def test_the_scenario_must_be_a_regular_file(path: str):
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert e.value.problems == [("(file)", f"{path} is not a regular file")]


def _with_replay(tmp_path: Path, file: str) -> Path:
    data = load_data(TPD)
    data["segments"][0]["replay"] = {"file": file, "format": "azure"}
    return _load_text(tmp_path, dump(data))


def test_a_replay_file_of_dev_zero_is_refused_before_reading(tmp_path: Path):
    """Finding: a ``replay`` file of /dev/zero was read without limit."""
    with pytest.raises(ScenarioError) as e:
        load_scenario(_with_replay(tmp_path, "/dev/zero"))
    assert e.value.problems == [("segments[0].replay.file", "/dev/zero is not a regular file")]


def test_a_replay_file_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch):
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "1.0,10,10\n" * 100)
    monkeypatch.setattr("sim.scenario.loading.MAX_REPLAY_BYTES", 100)
    with pytest.raises(ScenarioError) as e:
        load_scenario(_with_replay(tmp_path, str(trace)))
    ((where, msg),) = e.value.problems
    assert where == "segments[0].replay.file"
    assert "more than the limit of 100" in msg


def test_a_book_file_must_be_a_regular_file(tmp_path: Path):
    data = load_data(ROOT / "scenarios" / "pricing-dev70m.yaml")
    data["book"]["file"] = "/dev/zero"
    with pytest.raises(ScenarioError) as e:
        load_scenario(_load_text(tmp_path, dump(data)))
    assert e.value.problems == [("book.file", "/dev/zero is not a regular file")]


def test_shipped_scenarios_have_no_duplicate_keys_and_stay_within_limits():
    for f in sorted((ROOT / "scenarios").glob("*.yaml")):
        yaml_reader.parse_yaml(f.read_text())
        load_scenario(f)


# --------------------------------------------------------------------------- a run's size


def test_a_run_too_large_for_memory_is_refused_naming_the_fields(tmp_path: Path, capsys):
    """Finding: validation said yes to runs that then grew memory without bound."""
    data = replaced(load_data(BASELINE), ("segments", 0, "initial_subscribers"), 1_000_000_000)
    f = _load_text(tmp_path, dump(data))
    assert main(["validate", str(f)]) == 0  # a real market: the file is valid
    out = tmp_path / "out"
    rc = main(["run", str(f), "--horizon-months", "1", "--workers", "1", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert not out.exists()
    assert "one replication would hold about" in err
    assert "error: segments[0]: 'chat': up to 1,000,0" in err
    assert "--demand-scale" in err
    assert limits.MEMORY_LIMIT_ENV in err
    # the documented ways past: a smaller demand, or a higher limit on a larger machine
    s = load_scenario(f)
    from sim.scenario.adjust import scale_demand

    run_size.check_run_size(scale_demand(s, {None: 0.001}))


def test_the_memory_limit_follows_the_environment(monkeypatch):
    s = load_scenario(BASELINE)
    monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, "0.001")
    with pytest.raises(ScenarioError) as e:
        run_size.check_run_size(s)
    assert e.value.problems[0][0] == "(scenario)"
    monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, "abc")
    with pytest.raises(ScenarioError) as e:
        run_size.check_run_size(s)
    assert e.value.problems[0][0] == limits.MEMORY_LIMIT_ENV
    monkeypatch.delenv(limits.MEMORY_LIMIT_ENV)
    size = run_size.check_run_size(s)
    assert 0 < size.memory_bytes < 1e9  # the shipped baseline: well under a GB


def test_the_estimate_scales_with_subscribers_sessions_and_gpus(base: Any):
    s = validate_data(base)
    one = run_size.estimate(s)
    sessions = s.segments[0].sessions_per_day
    assert sessions is not None
    busier = replaced(base, ("segments", 0, "sessions_per_day"), 10.0 * sessions)
    more = run_size.estimate(validate_data(busier))
    assert more.requests_per_day[0] == pytest.approx(10 * one.requests_per_day[0])
    bigger = replaced(base, ("cluster", "pools", 0, "gpus"), 10 * s.cluster.pools[0].gpus)
    gpus = run_size.estimate(validate_data(bigger))
    assert gpus.slots[0] == pytest.approx(10 * one.slots[0])


# --------------------------------------------------------------------------- the engine


def test_the_engine_refuses_to_report_a_non_finite_table():
    """A run can never be marked complete with inf: the replication checks its tables."""
    from sim.engine.metrics import NonFiniteResultError
    from sim.engine.replication import run_replication
    from sim.scenario.adjust import adjust_scenario
    from sim.world.build import build

    s = adjust_scenario(load_scenario(TPD), sets={}, demand_scale={None: 0.001}, horizon_months=1)
    r = run_replication(build(s), seed=1)
    r.acc.check_finite()  # a normal run passes
    r.acc.monthly["tokens_served"][0, 0, 0] = np.inf
    with pytest.raises(NonFiniteResultError, match=r"monthly\.tokens_served"):
        r.acc.check_finite()
    r.acc.monthly["tokens_served"][0, 0, 0] = 0.0
    r.acc.hourly_filled[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteResultError, match="hourly"):
        r.acc.check_finite()


def test_yaml_numbers_parse_as_expected():
    """YAML's .inf/.nan spellings are what the fuzzing used; they reach the schema as floats."""
    assert math.isinf(yaml.safe_load("a: .inf")["a"])
    assert math.isnan(yaml.safe_load("a: .nan")["a"])
