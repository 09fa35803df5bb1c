"""Golden regression: whole run folders of small scenarios against committed digests.

Each case in ``cases/`` runs through the command line (``tokensim run``) as a user would; every
table and column of its run folder must digest exactly as in ``golden/`` (timings excluded).
A refactor must leave them byte-identical; a model change that moves numbers on purpose
regenerates them with ``TOKENSIM_UPDATE_GOLDEN=1 python3 dev.py test tests/regression`` and
says why in its commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.golden import ROOT, diff_digests, digest_run_folder, load_digests, save_digests

from sim.cli import main

HERE = Path(__file__).resolve().parent
CASES = {
    "rules": [],
    "fidelity": ["--export-requests", "3:2"],
    "windows": [],
}
"""Case name -> extra ``tokensim run`` options."""

UPDATE = os.environ.get("TOKENSIM_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_folder_matches_its_golden_digests(case: str, tmp_path: Path) -> None:
    out = tmp_path / case
    code = main(
        [
            "run",
            str(HERE / "cases" / f"{case}.yaml"),
            "--out",
            str(out),
            "-q",
            "--no-plots",
            *CASES[case],
        ]
    )
    assert code == 0
    actual = digest_run_folder(out)
    golden = HERE / "golden" / f"{case}.json"
    if UPDATE:
        save_digests(actual, golden)
    differences = diff_digests(load_digests(golden), actual)
    assert not differences, f"{case}: run folder differs from golden:\n" + "\n".join(differences)


def test_the_diff_names_the_table_and_column_that_changed(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "monthly.csv").write_text("month,revenue\n0,1.5\n1,2.5\n")
    (folder / "summary.json").write_text('{"revenue": {"mean": 2.0}}')
    before = digest_run_folder(folder)
    (folder / "monthly.csv").write_text("month,revenue\n0,1.5\n1,2.6\n")
    assert diff_digests(before, digest_run_folder(folder)) == [
        f"monthly.csv: column 'revenue' differs ({before['monthly.csv']['revenue']} -> "
        f"{digest_run_folder(folder)['monthly.csv']['revenue']})"
    ]
    (folder / "summary.json").unlink()
    (folder / "monthly.csv").write_text("month,revenue\n0,1.5\n")
    lines = diff_digests(before, digest_run_folder(folder))
    assert "summary.json: missing from the run folder" in lines
    assert any(line.startswith("monthly.csv: row count differs") for line in lines)


def test_digests_ignore_timings_and_the_checkout_path(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()

    def write(seed: int, wall_s: float, created: str, root: str) -> None:
        manifest = {
            "seed": seed,
            "wall_s": wall_s,
            "engine_s": [wall_s / 2],
            "created_utc": created,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
        (folder / "scenario.yaml").write_text(f"file: {root}/data/x.csv\n")

    write(1, 1.0, "2026-01-01T00:00:00Z", "<root>")
    first = digest_run_folder(folder)
    write(1, 9.0, "2027-01-01T00:00:00Z", str(ROOT))
    assert diff_digests(first, digest_run_folder(folder)) == []
    write(2, 9.0, "2027-01-01T00:00:00Z", str(ROOT))
    assert diff_digests(first, digest_run_folder(folder)) == [
        f"manifest.json: column 'seed' differs ({first['manifest.json']['seed']} -> "
        f"{digest_run_folder(folder)['manifest.json']['seed']})"
    ]
