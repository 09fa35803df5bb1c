"""The run folder's one model: declared names match a real run, readers agree, writes are atomic.

``sim.results.run_folder`` declares the run folder's file names and manifest keys beside the
writer, ``sim.experiments.sweep`` the sweep folder's, and ``sim.results.atomic`` is the one
atomic writer. These tests fail when a declaration drifts from what is written, when a reader
accepts an incomplete folder, or when a failed write leaves a half-written output behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from support.run_folders import set_manifest
from support.scenarios import small_dict

from sim import __version__
from sim.cli import main
from sim.experiments import sweep
from sim.report.folders import ReportError, RunFolder, SweepFolder, folder_kind
from sim.results import atomic, run_folder
from sim.results.atomic import atomic_file, atomic_folder
from sim.results.compare import CompareError, load_run
from sim.results.run_folder import (
    KEY_PACKAGE,
    KEY_REPLICATIONS,
    KEY_SCENARIO_SHA256,
    KEY_SEED,
    KEY_STATUS,
    KEY_VERSION,
    KPIS_BY_REPLICATION,
    LEDGER,
    MANIFEST,
    OPTIONAL_FILES,
    PACKAGE_NAME,
    PLOTS_DIR,
    REQUIRED_FILES,
    SCENARIO,
    STATUS_COMPLETE,
    RunFolderError,
    check_run_folder,
    is_run_folder,
    read_manifest,
)
from sim.scenario.loading import load_scenario

SEED = 5


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def hidden(folder: Path) -> list[str]:
    """Names of staging or temporary leftovers (they all start with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run of the small scenario with every optional output on."""
    tmp = tmp_path_factory.mktemp("run_folder")
    d = small_dict(horizon_months=1)
    d["outputs"]["plots"] = True  # plots/ too, so every declared name is written
    d["events"] = [{"kind": "launch", "month": 0, "plan": "pro"}]  # and events.csv
    d["plans"][1]["windows"] = [{"name": "5h", "hours": 5, "allowance": 50}]  # usage_windows.csv
    scenario = write_yaml(tmp / "small.yaml", d)
    out = tmp / "run"
    argv = ["run", str(scenario), "--out", str(out), "-q", "--seed", str(SEED)]
    assert main([*argv, "--export-requests", "0"]) == 0
    return out


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, free to break."""
    return Path(shutil.copytree(run, tmp_path / "copy"))


# ---------------------------------------------------------------------- the declared names


def test_the_declared_file_names_are_exactly_what_a_run_writes(run: Path):
    top = {p.name for p in run.iterdir()}
    assert top == {*REQUIRED_FILES, *OPTIONAL_FILES, PLOTS_DIR}
    assert (run / PLOTS_DIR).is_dir()
    assert any((run / PLOTS_DIR).glob("*.png"))
    assert all((run / f).is_file() for f in (*REQUIRED_FILES, *OPTIONAL_FILES))
    assert MANIFEST in REQUIRED_FILES
    assert not set(REQUIRED_FILES) & set(OPTIONAL_FILES)


def test_the_declared_manifest_keys_are_exactly_what_a_run_writes(run: Path):
    manifest = json.loads((run / MANIFEST).read_text())
    declared = {v for k, v in vars(run_folder).items() if k.startswith("KEY_")}
    assert declared == set(manifest)
    assert manifest[KEY_PACKAGE] == PACKAGE_NAME
    assert manifest[KEY_STATUS] == STATUS_COMPLETE
    assert manifest[KEY_SEED] == SEED
    assert manifest[KEY_REPLICATIONS] == 1
    assert manifest[KEY_VERSION] == __version__
    assert manifest[KEY_SCENARIO_SHA256] == load_scenario(run / SCENARIO).digest()


def test_a_finished_run_is_a_run_folder_for_every_reader(run: Path):
    assert is_run_folder(run)
    manifest = json.loads((run / MANIFEST).read_text())
    assert read_manifest(run) == manifest == check_run_folder(run)
    assert load_run(run)[0] == manifest
    assert RunFolder.open(run).manifest == manifest
    assert folder_kind(run) == "run"


# ---------------------------------------------------------------------- incomplete folders


def _readers_refuse(folder: Path, reason: str) -> None:
    """Every reader refuses ``folder``, and each names ``reason``."""
    assert not is_run_folder(folder)
    with pytest.raises(RunFolderError, match=reason):
        check_run_folder(folder)
    with pytest.raises(CompareError, match=reason):
        load_run(folder)
    with pytest.raises(ReportError, match=reason):
        RunFolder.open(folder)


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_a_folder_missing_a_required_file_is_not_a_run_folder(copy: Path, name: str):
    (copy / name).unlink()
    _readers_refuse(copy, "not a tokensim run folder" if name == MANIFEST else name)


def test_a_folder_missing_a_file_its_manifest_lists_is_not_a_run_folder(copy: Path):
    (copy / LEDGER).unlink()
    _readers_refuse(copy, LEDGER)


@pytest.mark.parametrize("status", ["running", "", None])
def test_a_status_other_than_complete_is_not_a_run_folder(copy: Path, status: str | None):
    set_manifest(copy, **{KEY_STATUS: status})
    _readers_refuse(copy, "not complete")
    assert read_manifest(copy)[KEY_STATUS] == status  # still tokensim's (replaceable)


def test_a_manifest_by_another_program_or_corrupt_is_not_a_run_folder(copy: Path):
    set_manifest(copy, **{KEY_PACKAGE: "other"})
    _readers_refuse(copy, "not written by tokensim")
    (copy / MANIFEST).write_text("{not json")
    _readers_refuse(copy, "cannot be read")
    (copy / MANIFEST).write_text("[1, 2]")
    _readers_refuse(copy, "not written by tokensim")


def test_an_incomplete_point_folder_is_run_again_on_resume(run: Path, copy: Path):
    point = sweep.Point("p000", {}, load_scenario(run / SCENARIO))
    assert sweep._point_done(run, point, SEED, 1)
    assert not sweep._point_done(run, point, SEED + 1, 1)  # another seed: run it again
    set_manifest(copy, **{KEY_STATUS: "running"})
    assert not sweep._point_done(copy, point, SEED, 1)


def test_run_out_replaces_an_incomplete_run_folder_but_not_a_sweep(run: Path, copy: Path):
    set_manifest(copy, **{KEY_STATUS: "running"})
    scenario = run.parent / "small.yaml"
    assert main(["run", str(scenario), "--out", str(copy), "-q", "--no-plots"]) == 0
    assert is_run_folder(copy)
    sw = copy.parent / "sweep"
    sw.mkdir()
    (sw / sweep.SWEEP_JSON).write_text("{}")
    assert main(["run", str(scenario), "--out", str(sw), "-q", "--no-plots"]) == 2
    assert [p.name for p in sw.iterdir()] == [sweep.SWEEP_JSON]


# ---------------------------------------------------------------------- the sweep folder's names


def test_point_ids_and_folders_follow_the_declared_naming(tmp_path: Path):
    assert sweep.point_ids(3) == ["p000", "p001", "p002"]
    assert sweep.point_ids(1001)[-1] == "p1000"
    assert sweep.point_folder(tmp_path, "p001") == tmp_path / sweep.POINTS_DIR / "p001"
    assert sweep.SWEEP_FILES == (sweep.SWEEP_JSON, sweep.POINTS_CSV)


def test_readers_find_a_sweep_and_its_points_by_the_declared_names(run: Path, tmp_path: Path):
    d = tmp_path / "sw"
    shutil.copytree(run, sweep.point_folder(d, "p000"))
    assert not is_run_folder(d)
    with pytest.raises(ReportError, match=sweep.POINTS_CSV):
        SweepFolder.open(d)
    kpis = pd.read_csv(run / KPIS_BY_REPLICATION)
    kpis.insert(0, "x", 1)
    kpis.insert(0, "point", "p000")
    kpis.to_csv(d / sweep.POINTS_CSV, index=False)
    spec = {k: None for k in sweep.SWEEP_KEYS} | {
        sweep.KEY_PARAMETERS: [{"path": "x", "values": [1]}],
        KEY_PACKAGE: PACKAGE_NAME,
        sweep.KEY_KIND: sweep.KIND_SWEEP,
    }
    (d / sweep.SWEEP_JSON).write_text(json.dumps(spec))
    assert folder_kind(d) == "sweep"
    assert sweep.is_sweep_folder(d)
    opened = SweepFolder.open(d)
    assert opened.parameters == ["x"]
    assert opened.currency == small_dict()["currency"]  # read from points/p000/manifest.json
    (d / sweep.SWEEP_JSON).write_text("{}")
    with pytest.raises(ReportError, match="needs keys"):
        SweepFolder.open(d)


# ---------------------------------------------------------------------- atomic writes


def test_atomic_folder_replaces_the_folder_as_a_whole(tmp_path: Path):
    out = tmp_path / "out"
    atomic_folder(out, lambda stage: (stage / "a.txt").write_text("first"))
    (out / "stale.txt").write_text("left from before")
    atomic_folder(out, lambda stage: (stage / "b.txt").write_text("second"))
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert hidden(tmp_path) == []


def test_atomic_folder_keeps_the_old_folder_when_fill_raises(tmp_path: Path):
    out = tmp_path / "out"
    atomic_folder(out, lambda stage: (stage / "keep.txt").write_text("old"))

    def half(stage: Path) -> None:
        (stage / "keep.txt").write_text("new, half written")
        (stage / "sub").mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_folder(out, half)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "old"
    assert hidden(tmp_path) == []  # no staging folder left

    def interrupted(stage: Path) -> None:
        (stage / "x.txt").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an interrupt cleans up as well
        atomic_folder(tmp_path / "new", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no "new", no staging


def test_atomic_file_writes_bytes_and_text_exactly(tmp_path: Path):
    f = tmp_path / "sub" / "f.txt"
    assert atomic_file(f, "a\r\nb\n¥") == f
    assert f.read_bytes() == "a\r\nb\n¥".encode()
    atomic_file(f, b"\x00\xff")
    assert f.read_bytes() == b"\x00\xff"
    assert hidden(f.parent) == []


@pytest.mark.parametrize("step", ["write", "replace"])
def test_atomic_file_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
):
    f = tmp_path / "f.txt"
    f.write_text("old")
    if step == "write":
        real = Path.write_bytes

        def half(self: Path, data: bytes) -> int:
            real(self, data[:1])
            raise OSError("disk full")

        monkeypatch.setattr(Path, "write_bytes", half)
    else:

        def refuse(src: object, dst: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_file(f, "new content")
    monkeypatch.undo()
    assert f.read_text() == "old"
    assert hidden(tmp_path) == []
