"""Run independent simulations on ``dask.distributed``: a local cluster or a shared one.

Replications and sweep points are independent tasks. :func:`open_client`
connects to an existing scheduler (``--scheduler ADDRESS``) or starts a
:class:`~distributed.LocalCluster` of single-threaded worker processes (one per
core by default: the numba kernels and numpy hold the GIL for most of a run,
so threads would not help). :func:`map_unordered` submits the tasks with
retries and yields results as they finish, so a caller can write each one to
disk at once; a worker that dies costs only the tasks it was running, which
the scheduler gives to another worker.

Worker memory allocator: dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``
in every worker (config key ``distributed.nanny.pre-spawn-environ``). Setting
that variable turns off glibc's dynamic mmap threshold, so each large numpy
temporary (a day's request arrays are tens of MB) becomes a fresh mmap with
page faults on first touch; runs inside such a worker were measured about 2x
slower than in a plain process (issue 4). Local clusters started here drop the
key (:data:`WORKER_ENV_UNSET`); workers of a cluster you start yourself should
be started with the same setting (``docs/experiments.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import dask
from distributed import Client, Future, LocalCluster, as_completed

T = TypeVar("T")

WORKER_ENV_UNSET: tuple[str, ...] = ("MALLOC_TRIM_THRESHOLD_",)
"""Environment variables dask's nanny would set in workers that we leave unset (see above)."""
TASK_RETRIES = 2
"""Times a task that failed (its worker died, or it raised) is tried again before giving up."""


def default_workers() -> int:
    """Worker processes of a local cluster by default: one per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


WORKERS_ENV = "TOKENSIM_WORKERS"
"""Environment variable that sets the default worker count of ``tokensim run`` (a whole
number >= 1; 1 runs in-process), e.g. to keep a test suite or a shared machine to one core."""


def run_workers(replications: int) -> int:
    """Worker processes for a run's replications when ``--workers`` is not given.

    One per usable core, at most one per replication (one replication stays in-process).
    More workers than cores do not pay: 3 replications of the baseline on 3 workers sharing 2
    cores took 203-208 s each (216 s in all) against 78-86 s each (172 s) on 2 workers, the
    third after the first two. :data:`WORKERS_ENV` overrides; raises ValueError naming the
    variable when it is not a whole number >= 1.
    """
    text = os.environ.get(WORKERS_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{WORKERS_ENV}={text!r}: must be a whole number >= 1")
        return int(text)
    return max(1, min(default_workers(), replications))


QUIET_CLUSTER: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Fewer periodic wake-ups in the scheduler, nannies and workers (dask defaults: a statistical
profiler sampling every 10 ms, event-loop ticks every 20 ms, memory polling every 100 ms,
system monitor every 500 ms). With every core busy running replications, these callbacks
compete with them: on the 2-core sweep benchmark they cost about 10% of the wall time and
2-3 s of the client process's CPU (benchmarks/README.md). Memory limits are then enforced
within 1 s instead of 0.1 s."""


def worker_config() -> dict[str, Any]:
    """The dask config our local clusters start with: no nanny allocator setting, quiet loops."""
    cfg = {f"distributed.nanny.pre-spawn-environ.{k}": None for k in WORKER_ENV_UNSET}
    return {**cfg, **QUIET_CLUSTER}


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A dask Client: connected to ``scheduler`` if given, else to a new local cluster.

    The local cluster has ``workers`` single-threaded worker processes (default:
    one per core), no dashboard, and the worker environment of :func:`worker_config`.
    It is shut down when the block ends.
    """
    if scheduler:
        with Client(scheduler, set_as_default=False) as client:
            yield client
        return
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ValueError("workers must be at least 1")
    # A nanny writes its pre-spawn variables into this process's environment (workers inherit
    # it), so one default cluster started earlier here would leave the variable behind.
    for k in WORKER_ENV_UNSET:
        os.environ.pop(k, None)
    with (
        dask.config.set(worker_config()),
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # no dashboard, and the scheduler's small HTTP server on a free port (not 8787)
            scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
            silence_logs=logging.ERROR,  # keep worker chatter off the user's terminal
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def as_finished(client: Client, futures: Sequence[Future]) -> Iterator[tuple[Future, Any]]:
    """Yield (future, result) as each future finishes, releasing it from the cluster."""
    try:
        for fut in as_completed(futures, loop=client.loop):
            result = fut.result()
            fut.release()
            yield fut, result
    finally:
        for fut in futures:
            fut.cancel()


def map_unordered(
    client: Client,
    fn: Callable[..., T],
    args: Sequence[tuple[Any, ...]],
    keys: Sequence[str] | None = None,
) -> Iterator[tuple[int, T]]:
    """Run ``fn(*a)`` for each ``a`` in ``args`` on the cluster; yield (index, result) as done.

    Each task is retried up to :data:`TASK_RETRIES` times. ``keys`` name the
    tasks for the scheduler (they must be unique); results are not kept on the
    cluster once yielded.
    """
    futures = []
    index: dict[object, int] = {}
    for i, a in enumerate(args):
        key = keys[i] if keys is not None else None
        fut = client.submit(fn, *a, key=key, pure=False, retries=TASK_RETRIES)
        index[fut.key] = i
        futures.append(fut)
    for fut, result in as_finished(client, futures):
        yield index[fut.key], result
