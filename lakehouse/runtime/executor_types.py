"""Where a run's tasks go: the executor types a pipeline's YAML can name, built and checked.

``ExecutorSpec`` reads an ``executor:`` mapping (every key used or rejected); ``start``
and ``start_local`` build the Hamilton task executor for it: inline, or a pool of threads or of
spawned processes (a Dask or Ray cluster: ``clusters``). A misconfiguration raises
``ExecutorError``.
"""

from __future__ import annotations

import difflib
import importlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import cloudpickle
from hamilton.execution import executors

POLL_WAIT_SECONDS = 0.002
# The keys each executor type reads under ``run.executor`` (besides ``type``).
KEYS = {
    "synchronous": (),
    "threadpool": ("max_workers",),
    "processpool": ("max_workers",),
    "dask": ("address", "max_workers", "threads_per_worker"),
    "ray": ("address", "num_cpus"),
}
EXTRA = {"dask": "dask", "ray": "ray"}  # pip extra of this project that installs the package


class ExecutorError(Exception):
    """The configured executor cannot run: wrong setting, missing package, unreachable cluster."""


class ExecutorSettingError(ExecutorError):
    """An ``executor:`` setting that cannot be right (an unknown type or key, a bad value)."""

    exit_code = 2  # as every setting at fault (lakehouse.core.settings.ConfigError)


@dataclass(frozen=True)
class ExecutorSpec:
    """Where a run's tasks go, and the YAML (or command line) it was read from."""

    type: str
    where: str
    max_workers: int | None = None
    num_cpus: int | None = None
    threads_per_worker: int | None = None
    address: str | None = None

    @classmethod
    def parse(cls, given: dict | str | None, where: str) -> ExecutorSpec:
        """Check every key of an ``executor:`` mapping (or a bare type name)."""
        given = {"type": given} if isinstance(given, str) else dict(given or {})
        kind = given.pop("type", None) or "synchronous"
        kind = "synchronous" if kind == "local" else kind
        if kind not in KEYS:
            raise ExecutorSettingError(
                f"{where}.type: {kind!r} is not an executor type (known: {', '.join(KEYS)})"
            )
        values: dict[str, Any] = {}  # int or str by key: each checked below
        for key, value in given.items():
            if key not in KEYS[kind]:
                raise ExecutorSettingError(f"{where}.{key}: {_why_not_used(key, kind)}")
            if key == "address":
                values[key] = str(value).strip() or None if value is not None else None
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ExecutorSettingError(
                        f"{where}.{key}: {value!r} is not a positive integer"
                    )
                values[key] = value
        return cls(type=kind, where=where, **values)

    def __str__(self) -> str:
        shown = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.name not in ("type", "where") and getattr(self, f.name) is not None
        ]
        return f"{self.type}({', '.join(shown)})" if shown else self.type


def _why_not_used(key: str, kind: str) -> str:
    users = [t for t, keys in KEYS.items() if key in keys]
    if users:
        return f"not used by the {kind} executor (only by {', '.join(users)})"
    known = sorted({k for keys in KEYS.values() for k in keys})
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: type, {', '.join(known)}"
    return f"unknown executor key; {hint}"


def start_local(spec: ExecutorSpec) -> tuple[executors.TaskExecutor, None]:
    """The Hamilton task executor for a ``synchronous``, ``threadpool`` or ``processpool``
    spec (a cluster's: ``clusters.start``)."""
    workers = spec.max_workers or os.cpu_count() or 1
    if spec.type == "threadpool":
        return ThreadExecutor(workers), None
    if spec.type == "processpool":
        return SpawnedProcessExecutor(workers), None
    return executors.SynchronousLocalTaskExecutor(), None


def require(spec: ExecutorSpec, package: str):
    """``package`` imported, or an error naming the setting and the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ExecutorError(
            f"{spec.where}: the {spec.type} executor needs the {package!r} package, which is not "
            f"installed ({error}); install it with: pip install -e '.[{EXTRA[spec.type]}]'"
        ) from None


# --- processes -----------------------------------------------------------------------------


def prepare_worker(paths: list[str]) -> None:
    """In a worker process: the driver's import paths, so the project's modules import."""
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


def _run_pickled_task(payload: bytes) -> dict:
    return executors.base_execute_task(cloudpickle.loads(payload))


class ThreadExecutor(executors.MultiThreadingExecutor):
    """Hamilton's pool of ``workers`` threads, with as many tasks again queued: the driver
    commits each task's work as it returns (``lakehouse.runtime.commits``), and a worker that
    finished meanwhile takes the next task instead of waiting for that commit."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_tasks=2 * workers)  # in flight: running and queued
        self.workers = workers

    def create_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.workers)


class SpawnedProcessExecutor(ThreadExecutor):
    """Tasks in a pool of spawned processes (forking a process that runs Polars', DuckDB's
    and Arrow's thread pools can deadlock), sent with cloudpickle so that nodes made by
    decorators such as ``@parameterize`` travel as well as plain functions."""

    def create_pool(self) -> ProcessPoolExecutor:  # type: ignore[override]
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=prepare_worker,
            initargs=(list(sys.path),),
        )

    def submit_task(self, task) -> executors.TaskFuture:
        future = self.pool.submit(_run_pickled_task, cloudpickle.dumps(task))
        self.active_futures.append(future)
        return executors.TaskFutureWrappingPythonFuture(future)
