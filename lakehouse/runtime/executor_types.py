"""Where a run's tasks go: the executor types a pipeline's YAML can name, built and checked.

``ExecutorSpec`` reads an ``executor:`` mapping (every key used or rejected); ``start``
builds the Hamilton task executor for it, started and checked before any node runs: inline,
Hamilton's thread pool, a pool of spawned processes, or a Dask or Ray cluster (a local one
on loopback, or one at an address). A misconfiguration raises ``ExecutorError``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import cloudpickle
from hamilton.execution import executors
from loguru import logger

POLL_WAIT_SECONDS = 0.002
CONNECT_TIMEOUT_SECONDS = 10
# The keys each executor type reads under ``run.executor`` (besides ``type``).
KEYS = {
    "synchronous": (),
    "threadpool": ("max_workers",),
    "processpool": ("max_workers",),
    "dask": ("address", "max_workers", "threads_per_worker"),
    "ray": ("address", "num_cpus"),
}
ADDRESS_ENV = {"dask": "DASK_SCHEDULER_ADDRESS", "ray": "RAY_ADDRESS"}
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


def start(spec: ExecutorSpec, modules: list[str]) -> tuple[executors.TaskExecutor, Callable | None]:
    """The Hamilton task executor for ``spec``, started and checked, and how to stop it."""
    cpus = os.cpu_count() or 1
    if spec.type == "synchronous":
        return executors.SynchronousLocalTaskExecutor(), None
    if spec.type == "threadpool":
        return executors.MultiThreadingExecutor(max_tasks=spec.max_workers or cpus), None
    if spec.type == "processpool":
        return SpawnedProcessExecutor(max_tasks=spec.max_workers or cpus), None
    if spec.type == "dask":
        return _start_dask(spec, modules, cpus)
    return _start_ray(spec, modules)


def _require(spec: ExecutorSpec, package: str):
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ExecutorError(
            f"{spec.where}: the {spec.type} executor needs the {package!r} package, which is not "
            f"installed ({error}); install it with: pip install -e '.[{EXTRA[spec.type]}]'"
        ) from None


# --- processes -----------------------------------------------------------------------------


def _prepare_worker(paths: list[str]) -> None:
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


def _run_pickled_task(payload: bytes) -> dict:
    return executors.base_execute_task(cloudpickle.loads(payload))


class SpawnedProcessExecutor(executors.PoolExecutor):
    """Tasks in a pool of spawned processes (forking a process that runs Polars', DuckDB's
    and Arrow's thread pools can deadlock), sent with cloudpickle so that nodes made by
    decorators such as ``@parameterize`` travel as well as plain functions."""

    def create_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.max_tasks,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_prepare_worker,
            initargs=(list(sys.path),),
        )

    def submit_task(self, task) -> executors.TaskFuture:
        future = self.pool.submit(_run_pickled_task, cloudpickle.dumps(task))
        self.active_futures.append(future)
        return executors.TaskFutureWrappingPythonFuture(future)


# --- Dask ----------------------------------------------------------------------------------


def _importable(paths: list[str], modules: list[str]) -> str | None:
    """Run on a cluster worker: make the driver's import paths known, import the pipeline."""
    _prepare_worker(paths)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # reported back to the driver, named
            return f"cannot import {name!r}: {type(error).__name__}: {error}"
    return None


class _DaskTaskFuture(executors.TaskFutureWrappingPythonFuture):
    def get_state(self):
        if not self.future.done():
            from distributed import wait as dask_wait

            with contextlib.suppress(TimeoutError):
                dask_wait(self.future, timeout=POLL_WAIT_SECONDS)
        return super().get_state()


class ClusterTaskExecutor(executors.TaskExecutor):
    """Tasks on a cluster, at most ``capacity`` in flight: Hamilton polls every submitted
    future on every turn of its loop, so thousands of queued futures would slow each turn."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.in_flight: list = []

    def init(self) -> None:
        pass

    def finalize(self) -> None:
        pass

    def can_submit_task(self) -> bool:
        self.in_flight = [f for f in self.in_flight if not f.done()]
        return len(self.in_flight) < self.capacity

    def _submitted(self, future) -> None:
        self.in_flight.append(future)


class DaskTaskExecutor(ClusterTaskExecutor):
    """Tasks on a Dask cluster through its futures API (one future per Hamilton task)."""

    def __init__(self, client) -> None:
        super().__init__(2 * sum(client.nthreads().values()))
        self.client = client

    def submit_task(self, task) -> executors.TaskFuture:
        future = self.client.submit(executors.base_execute_task, task, pure=False)
        self._submitted(future)
        return _DaskTaskFuture(future)


class RayTaskExecutor(ClusterTaskExecutor):
    """Tasks on a Ray cluster (Hamilton's ``RayTaskExecutor``, with bounded submission)."""

    def __init__(self, ray) -> None:
        super().__init__(2 * int(ray.cluster_resources().get("CPU", 1)))
        self.remote = ray.remote(executors.base_execute_task)

    def submit_task(self, task) -> executors.TaskFuture:
        future = self.remote.remote(task=task).future()
        self._submitted(future)
        return executors.TaskFutureWrappingPythonFuture(future)


def _start_dask(spec: ExecutorSpec, modules: list[str], cpus: int):
    distributed = _require(spec, "distributed")
    address = spec.address or os.environ.get(ADDRESS_ENV["dask"]) or None
    cluster = None
    try:
        if address:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_SECONDS)
        else:
            cluster = distributed.LocalCluster(
                n_workers=spec.max_workers or cpus,
                threads_per_worker=spec.threads_per_worker or 1,
                processes=True,
                protocol="tcp",
                host="127.0.0.1",  # scheduler, workers and nannies listen on loopback only
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
    except (OSError, TimeoutError) as error:
        raise ExecutorError(
            f"{spec.where}: cannot reach the Dask scheduler at {address} "
            f"(address from {'the YAML' if spec.address else ADDRESS_ENV['dask']}): {error}"
        ) from None

    def stop() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    problems = {w: p for w, p in client.run(_importable, list(sys.path), modules).items() if p}
    # the scheduler unpickles the task graph too (distributed >= 2023.4): it needs the project
    on_scheduler = client.run_on_scheduler(_importable, list(sys.path), modules)
    if on_scheduler:
        problems["the scheduler"] = on_scheduler
    if problems:
        stop()
        listing = "\n  ".join(f"{worker}: {problem}" for worker, problem in problems.items())
        raise ExecutorError(
            f"{spec.where}: the Dask cluster cannot run this project's tasks (its scheduler and "
            f"workers need the project and its packages installed, same versions as here):"
            f"\n  {listing}"
        )
    where = cluster.scheduler_address if cluster is not None else address
    workers = len(client.scheduler_info().get("workers", {}))
    logger.info(f"dask: {workers} workers at {where}")
    return DaskTaskExecutor(client), stop


# --- Ray -----------------------------------------------------------------------------------


def _check_reachable(spec: ExecutorSpec, address: str) -> None:
    """Fail fast when nothing listens at a ``host:port`` (or ``ray://host:port``) address."""
    host_port = address.split("://", 1)[-1]
    if host_port == "auto" or ":" not in host_port:
        return
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except (OSError, ValueError) as error:
        raise ExecutorError(
            f"{spec.where}: cannot reach the {spec.type} cluster at {address}: {error}"
        ) from None


@contextlib.contextmanager
def _environment(variables: dict[str, str]):
    """``variables`` set in this process's environment for the block, then as they were."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_ray(spec: ExecutorSpec, modules: list[str]):
    address = spec.address or os.environ.get(ADDRESS_ENV["ray"]) or None
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    local_env = {}
    if address is None:
        # A local instance on loopback only. Ray rewrites 127.0.0.1 to the machine's address
        # unless cluster mode is off, and reads that switch once, when it is imported; the
        # processes it starts read it from their environment. Set for the start only: a
        # variable left in this process would reach every command it starts later.
        local_env = {
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),  # no token file
        }
        options.update(num_cpus=spec.num_cpus, _node_ip_address="127.0.0.1")
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}}
    with _environment(local_env):
        ray = _require(spec, "ray")
        if address is None:
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # imported before this run
        else:
            _check_reachable(spec, address)  # ray.init retries an unreachable one for minutes
        try:
            # "local": always a new instance of its own, never one `ray start` left here
            ray.init(address=address or "local", **options)
        except (ConnectionError, TimeoutError, RuntimeError) as error:
            raise ExecutorError(
                f"{spec.where}: cannot start or reach Ray at {address or 'a local instance'}: "
                f"{error}"
            ) from None
    problem = ray.get(ray.remote(_importable).remote(list(sys.path), modules))
    if problem:
        ray.shutdown()
        raise ExecutorError(f"{spec.where}: Ray workers cannot run this project's tasks: {problem}")
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    cpus = int(ray.cluster_resources().get("CPU", 0))
    logger.info(f"ray: {nodes} nodes, {cpus} CPUs at {address or 'a local instance'}")
    return RayTaskExecutor(ray), ray.shutdown
