"""The run folder: its files, written to a staging folder and moved into place when complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sim import __version__
from sim.results.tables import RunResult


def write_run(result: RunResult, out_dir: Path, seed: int, plots: bool = True) -> Path:
    """Write the run folder atomically: build it beside ``out_dir``, then move it into place."""
    return _atomic_folder(Path(out_dir), lambda stage: _write_contents(result, stage, seed, plots))


def render_run(result: RunResult, seed: int, plots: bool = True) -> dict[str, bytes]:
    """Every file of the run folder, by relative path, built in memory.

    For cluster workers: the tables and plots are computed where the replications
    are, and only these bytes travel to the process that writes the folder
    (:func:`write_files`).
    """
    with tempfile.TemporaryDirectory(prefix="tokensim-render-") as tmp:
        d = Path(tmp)
        _write_contents(result, d, seed, plots)
        return {
            f.relative_to(d).as_posix(): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()
        }


def write_files(files: dict[str, bytes], out_dir: Path) -> Path:
    """Write a rendered run folder (:func:`render_run`) atomically to ``out_dir``."""

    def fill(stage: Path) -> None:
        for rel, data in files.items():
            f = stage / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)

    return _atomic_folder(Path(out_dir), fill)


def _atomic_folder(out_dir: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a staging folder beside ``out_dir``, then move it into place (replacing it)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        fill(stage)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(stage, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out_dir


def _write_contents(result: RunResult, d: Path, seed: int, plots: bool) -> None:
    s = result.scenario
    t0 = time.perf_counter()
    (d / "scenario.yaml").write_text(
        yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    )
    by_plan = result.monthly()
    by_plan.to_csv(d / "monthly_by_plan_segment.csv", index=False)
    months = result.months()
    months.to_csv(d / "monthly.csv", index=False)
    hourly = result.hourly()
    hourly.to_parquet(d / "hourly_cluster.parquet", index=False)
    result.latency().to_csv(d / "latency.csv", index=False)
    led = result.ledger()
    if len(led):
        led.to_parquet(d / "ledger.parquet", index=False)
    export = result.replications[0].requests_export
    if export is not None:
        write_request_traces(export, d)
    kp = result.kpis()
    kp.to_csv(d / "kpis_by_replication.csv", index=False)
    summary = result.summary()
    (d / "summary.json").write_text(json.dumps(_finite(summary), indent=2) + "\n")
    if plots:
        from sim.results.plots import write_plots

        write_plots(s.currency, months, by_plan, hourly, len(result.replications), d / "plots")
    reps = result.replications
    manifest = {
        "scenario": s.name,
        "scenario_sha256": s.digest(),
        "seed": seed,
        "replications": len(reps),
        "package": "tokensim",
        "version": __version__,
        "status": "complete",
        "wall_s": round(result.wall_s + time.perf_counter() - t0, 3),
        "engine_s": [round(r.engine_s, 3) for r in reps],
        "requests_simulated": int(sum(r.requests for r in reps)),
        "subscriber_months_simulated": int(sum(r.subscriber_months for r in reps)),
        "currency": s.currency,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()),
    }
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_request_traces(requests: pd.DataFrame, d: Path) -> None:
    """Write exported requests as an Azure LLM trace CSV and a Mooncake trace JSONL.

    ``requests_azure.csv``: TIMESTAMP (s from midnight of the window's first day),
    ContextTokens, GeneratedTokens. ``requests_mooncake.jsonl``: timestamp (ms),
    input_length, output_length. Both read directly with the calibration folder's stats.py.
    Every request is written, refused ones too (they were requested).
    """
    pd.DataFrame(
        {
            "TIMESTAMP": requests["timestamp_s"].round(6),
            "ContextTokens": requests["input_tokens"],
            "GeneratedTokens": requests["output_tokens"],
        }
    ).to_csv(d / "requests_azure.csv", index=False)
    pd.DataFrame(
        {
            "timestamp": (requests["timestamp_s"] * 1000).round().astype(np.int64),
            "input_length": requests["input_tokens"],
            "output_length": requests["output_tokens"],
        }
    ).to_json(d / "requests_mooncake.jsonl", orient="records", lines=True)


def _finite(x: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
