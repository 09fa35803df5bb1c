"""No silent data loss (issue 14, point 3): locks, the final move's re-check, early output
checks, and the cleanup of killed writers' leftovers.

Each test fails when its promise breaks: a second writer into the same ``--out`` must be
refused naming the first (pid, host, start time), even when the first is a real
``tokensim run`` in another process, and a lock of a killed writer must not block; a file
that appears inside ``--out`` while a run goes must survive it, the run's result kept beside
it; an output that cannot be written must fail before any simulation; and the hidden
staging folders and temporary files of a ``kill -9``-ed writer must be removed by the next
writer into the same place (kept, and said, while their process lives).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.scenarios import small_dict

from sim.cli import main
from sim.results import folder_checks
from sim.results.atomic import atomic_folder
from sim.results.folder_checks import FolderChangedError, output_problem
from sim.results.leftovers import clean_leftovers, find_leftovers
from sim.results.locks import FolderLockedError, folder_lock, lock_path, read_holder
from sim.results.run_folder import MANIFEST, is_run_folder

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys
from pathlib import Path
from sim.results.locks import folder_lock
with folder_lock(Path(sys.argv[1]), "tokensim run --out (test holder)"):
    print("held", flush=True)
    sys.stdin.read()
"""
"""A child process that holds the lock of the folder argv[1] until its stdin closes."""

STAGE_AND_WAIT = """
import sys, time
from pathlib import Path
from sim.results.atomic import atomic_folder
def fill(stage):
    (stage / "half.csv").write_text("a,b")
    print(stage, flush=True)
    time.sleep(600)
atomic_folder(Path(sys.argv[1]), fill)
"""
"""A child process caught by ``kill -9`` in the middle of filling its staging folder."""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small scenario for one month, without ledger or plots (a run takes a second)."""
    d = small_dict(horizon_months=1)
    d["outputs"] = {"ledger": False, "plots": False}
    f = tmp_path_factory.mktemp("locks") / "s.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    return f


@pytest.fixture(scope="module")
def finished(scenario: Path) -> Path:
    """A finished run folder (copied by the tests that need an earlier run at --out)."""
    out = scenario.parent / "finished"
    assert main(["run", str(scenario), "--out", str(out), "-q"]) == 0
    return out


def _run(scenario: Path, out: Path, *more: str) -> list[str]:
    return ["run", str(scenario), "--out", str(out), "-q", *more]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start child processes holding a folder's lock; they are ended after the test."""
    children: list[subprocess.Popen[str]] = []

    def hold(folder: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        return child

    yield hold
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def dead_pid() -> int:
    """The process id of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(timeout=60)
    return p.pid


def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any simulation fail the test: the refusals must come before it."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("simulated although the output could not be written")

    monkeypatch.setattr("sim.experiments.runner.run_scenario", refuse)
    monkeypatch.setattr("sim.experiments.sweep.run_sweep", refuse)
    monkeypatch.setattr("sim.capacity.search.size", refuse)
    monkeypatch.setattr("sim.pricing.tune.tune", refuse)
    monkeypatch.setattr("sim.report.writer.build_report", refuse)


# ---------------------------------------------------------------------- the lock


def test_a_second_writer_is_refused_naming_the_holder(
    scenario: Path, tmp_path: Path, holder, capsys, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "out"
    child = holder(out)
    no_simulation(monkeypatch)
    assert main(_run(scenario, out)) == 2
    err = capsys.readouterr().err
    assert f"process {child.pid} on host {socket.gethostname()}" in err
    assert "started 20" in err  # the holder's UTC start time
    assert str(out) in err
    assert not out.exists()
    holding = read_holder(lock_path(out))
    assert holding["pid"] == child.pid
    monkeypatch.undo()
    child.stdin.close()  # the holder finishes: the folder is free again
    child.wait(timeout=30)
    assert not lock_path(out).exists()  # the holder removed its lock file
    assert main(_run(scenario, out)) == 0
    assert is_run_folder(out)
    assert not lock_path(out).exists()


def test_a_running_tokensim_run_locks_its_out_against_a_second_one(
    scenario: Path, tmp_path: Path, capsys
):
    d = yaml.safe_load(scenario.read_text())
    d["horizon_months"] = 4  # seconds of simulation: time to try a second writer
    longer = tmp_path / "longer.yaml"
    longer.write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    env = {**os.environ, "TOKENSIM_WORKERS": "1", "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(
        [sys.executable, "-m", "sim", *_run(longer, out, "-r", "3")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not lock_path(out).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert first.poll() is None, "the first run ended before its lock was seen"
    second = main(_run(scenario, out))  # in this process: no start-up delay
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second == 2
    assert f"process {first.pid} on host" in capsys.readouterr().err
    assert is_run_folder(out)
    assert json.loads((out / MANIFEST).read_text())["replications"] == 3  # the first's result


def test_the_lock_of_a_killed_writer_does_not_block(scenario: Path, tmp_path: Path, holder):
    out = tmp_path / "out"
    child = holder(out)
    os.kill(child.pid, signal.SIGKILL)  # no cleanup: the lock file stays, the kernel unlocks
    child.wait(timeout=30)
    assert lock_path(out).exists()
    assert main(_run(scenario, out)) == 0
    assert is_run_folder(out)
    assert not lock_path(out).exists()


def test_the_lock_is_reentrant_in_a_process_and_exclusive_between_processes(tmp_path: Path, holder):
    out = tmp_path / "out"
    with folder_lock(out) as f, folder_lock(out):  # the command line, then the atomic move
        assert read_holder(f)["pid"] == os.getpid()
        atomic_folder(out, lambda stage: (stage / "a.txt").write_text("a"))
    assert not f.exists()
    holder(out)
    with pytest.raises(FolderLockedError, match="is being written by process"):
        atomic_folder(out, lambda stage: (stage / "a.txt").write_text("b"))
    assert (out / "a.txt").read_text() == "a"
    assert not any(p.name.startswith(".out.staging") for p in tmp_path.iterdir())


def test_a_sweep_folder_is_locked_too(scenario: Path, tmp_path: Path, holder, capsys):
    out = tmp_path / "sweep"
    child = holder(out)
    argv = ["sweep", str(scenario), "--set", "plans.lite.price_per_month=9.9,19.9"]
    assert main([*argv, "--out", str(out), "-q"]) == 2
    assert f"process {child.pid}" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------- the final move


def test_a_file_created_inside_out_during_the_run_survives(
    scenario: Path, finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    import shutil

    from sim.experiments import runner

    out = Path(shutil.copytree(finished, tmp_path / "out"))
    before = (out / MANIFEST).read_bytes()
    real = runner.run_scenario

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        (out / "notes.txt").write_text("mine")  # the user writes while the run goes
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_scenario", meanwhile)
    assert main(_run(scenario, out)) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err
    assert "did not write" in err
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / MANIFEST).read_bytes() == before  # the earlier run untouched too
    kept = tmp_path / f"out.new-{os.getpid()}"
    assert str(kept) in err
    assert is_run_folder(kept)  # the new result, where the message says
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_folder_made_at_out_during_the_run_is_left_alone(
    scenario: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    from sim.experiments import runner

    out = tmp_path / "out"
    real = runner.run_scenario

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "data.csv").write_text("x")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_scenario", meanwhile)
    assert main(_run(scenario, out)) == 2
    assert (out / "sub" / "data.csv").read_text() == "x"
    assert "sub/data.csv" in capsys.readouterr().err
    assert is_run_folder(tmp_path / f"out.new-{os.getpid()}")


def test_atomic_folder_replaces_only_what_its_writer_owns(tmp_path: Path):
    out = tmp_path / "out"
    owned = lambda d: {"a.txt"}  # noqa: E731
    atomic_folder(out, lambda stage: (stage / "a.txt").write_text("1"), owned)
    atomic_folder(out, lambda stage: (stage / "a.txt").write_text("2"), owned)
    assert (out / "a.txt").read_text() == "2"
    (out / "user.txt").write_text("keep")
    with pytest.raises(FolderChangedError, match=r"user\.txt") as e:
        atomic_folder(out, lambda stage: (stage / "a.txt").write_text("3"), owned)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "user.txt"]
    assert (out / "a.txt").read_text() == "2"
    assert e.value.kept is not None
    assert (e.value.kept / "a.txt").read_text() == "3"


def test_a_run_folder_holding_a_user_file_is_refused_before_simulating(
    scenario: Path, finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    import shutil

    out = Path(shutil.copytree(finished, tmp_path / "out"))
    (out / "notes.txt").write_text("mine")
    no_simulation(monkeypatch)
    assert main(_run(scenario, out)) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    (out / "report.html").write_text("<html></html>")  # tokensim's own: may be replaced
    monkeypatch.undo()
    assert main(_run(scenario, out)) == 0
    assert not (out / "report.html").exists()


# ---------------------------------------------------------------------- outputs checked first


def _commands(scenario: Path, finished: Path, out: Path) -> dict[str, list[str]]:
    s = str(scenario)
    return {
        "run": ["run", s, "--out", str(out), "-q"],
        "sweep": ["sweep", s, "--set", "plans.lite.price_per_month=9.9,19.9", "--out", str(out)],
        "size": ["size", s, "--slo", "ttft_p95<=2", "--out", str(out), "-q"],
        "tune": ["tune", s, "--vary", "plans.lite.price_per_month=5..20", "--out", str(out)],
        "report": ["report", str(finished), "--out", str(out / "r.html")],
        "compare": ["compare", str(finished), str(finished), "--out", str(out / "c.csv")],
    }


COMMANDS = ("run", "sweep", "size", "tune", "report", "compare")


@pytest.mark.parametrize("command", COMMANDS)
def test_an_out_under_a_file_fails_at_once(
    command: str, scenario: Path, finished: Path, tmp_path: Path, monkeypatch, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    no_simulation(monkeypatch)
    argv = _commands(scenario, finished, blocker / "out")[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err
    assert "is a file" in err
    assert "Traceback" not in err
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_out_in_a_read_only_folder_fails_at_once(
    command: str, scenario: Path, finished: Path, tmp_path: Path, monkeypatch, capsys
):
    locked = tmp_path / "read-only"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: refuse as a read-only mount does

        def read_only(*args: Any, **kwargs: Any) -> Any:
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(folder_checks.tempfile, "mkstemp", read_only)
    locked.chmod(0o555)
    try:
        no_simulation(monkeypatch)
        argv = _commands(scenario, finished, locked / "out")[command]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"cannot write in {locked}" in err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_output_problem_names_the_path(tmp_path: Path):
    f = tmp_path / "f"
    f.write_text("x")
    assert output_problem(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert "exists and is not a folder" in str(output_problem(f))
    assert "is a folder" in str(output_problem(tmp_path, folder=False))
    assert f"{f} is a file" in str(output_problem(f / "a" / "b"))
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # the probe file is gone


# ---------------------------------------------------------------------- leftovers


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(scenario: Path, tmp_path: Path):
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", STAGE_AND_WAIT, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    stage = Path(child.stdout.readline().strip())
    assert stage.name == f".out.staging-{child.pid}"
    assert (stage / "half.csv").exists()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert stage.exists()  # kill -9: nobody cleaned
    err = subprocess.run(
        [sys.executable, "-m", "sim", *_run(scenario, out)],
        cwd=tmp_path,
        env={**os.environ, "TOKENSIM_WORKERS": "1", "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert err.returncode == 0, err.stderr
    assert f"removed {stage}" in err.stderr
    assert not stage.exists()
    assert is_run_folder(out)


def test_leftovers_of_dead_writers_go_and_those_of_live_ones_stay(
    scenario: Path, finished: Path, tmp_path: Path, holder, capsys
):
    import shutil

    out = Path(shutil.copytree(finished, tmp_path / "out"))
    gone = dead_pid()
    old = tmp_path / f".out.old-{gone}"
    old.mkdir()
    (old / MANIFEST).write_text("{}")
    tmp = out / f".report.html.tmp-{gone}"
    tmp.write_text("<html>")
    alive = holder(tmp_path / "elsewhere")  # a live process
    busy = tmp_path / f".out.staging-{alive.pid}"
    busy.mkdir()
    assert main(_run(scenario, out)) == 0
    err = capsys.readouterr().err
    assert not old.exists()
    assert not tmp.exists()
    assert f"removed {old}" in err
    assert f"removed {tmp}" in err
    assert busy.exists()
    assert f"kept {busy}: process {alive.pid}" in err
    assert is_run_folder(out)


def test_a_sweeps_temporary_files_are_found_inside_it(tmp_path: Path):
    sweep = tmp_path / "sw"
    (sweep / "points" / "p000").mkdir(parents=True)
    gone = dead_pid()
    left = [
        sweep / f".points.csv.tmp-{gone}",
        sweep / f".sweep.json.tmp-{gone}",
        sweep / "points" / f".p001.staging-{gone}",
        sweep / "points" / f".p000.old-{gone}",
    ]
    for p in left:
        p.mkdir() if "staging" in p.name or ".old-" in p.name else p.write_text("x")
    (sweep / "points.csv").write_text("point\n")
    (tmp_path / f".other.staging-{gone}").mkdir()  # another target's: not ours to clean
    assert sorted(p for p, _ in find_leftovers(sweep)) == sorted(left)
    cleaned = clean_leftovers(sweep)
    assert all(c.removed for c in cleaned)
    assert len(cleaned) == len(left)
    assert not any(p.exists() for p in left)
    assert (sweep / "points.csv").exists()
    assert (sweep / "points" / "p000").is_dir()
    assert (tmp_path / f".other.staging-{gone}").exists()
