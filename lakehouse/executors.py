"""Executors chosen in YAML: the same DAG in one thread, a pool, or a Dask or Ray cluster.

A pipeline's ``run.executor`` (or ``--executor`` on the command line) says where the tasks
of its ``Parallelizable`` blocks run: bronze's one task per landing file, gold's one task per
group of partitions. Every other node runs in the driver process.

FlowerPower 0.37 builds the executor itself, but runs ``synchronous`` on Hamilton's default
pool of 10 threads, cannot build Dask (it passes ``num_cpus`` to a class that takes only a
client), falls back to local execution for an unknown type or a missing package, and drops
keys it does not know (``address``). ``install`` makes its runner take the executor from
here instead: built from the pipeline's YAML (every key used or rejected), started before
any node runs, so a misconfiguration raises ``ExecutorError`` before anything is written.
The smoke tests in ``tests/test_executors.py`` fail if a FlowerPower upgrade breaks this.
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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from contextvars import ContextVar
from dataclasses import dataclass, fields
from pathlib import Path

import cloudpickle
import yaml
from hamilton import driver
from hamilton.execution import executors
from loguru import logger

from lakehouse import hooks, progress
from lakehouse.storage import StoreUnavailable, is_transient

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
            raise ExecutorError(
                f"{where}.type: {kind!r} is not an executor type (known: {', '.join(KEYS)})"
            )
        values = {}
        for key, value in given.items():
            if key not in KEYS[kind]:
                raise ExecutorError(f"{where}.{key}: {_why_not_used(key, kind)}")
            if key == "address":
                values[key] = str(value).strip() or None if value is not None else None
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ExecutorError(f"{where}.{key}: {value!r} is not a positive integer")
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


_override: ContextVar[ExecutorSpec | None] = ContextVar("executor_override", default=None)


@contextlib.contextmanager
def override(spec: ExecutorSpec | None) -> Iterator[None]:
    """Run every pipeline started inside the block on ``spec`` (``daily`` forwards its
    ``executor`` input to the layers this way); ``None`` leaves each pipeline's own YAML."""
    token = _override.set(spec)
    try:
        yield
    finally:
        _override.reset(token)


def yaml_executor(conf_file: Path) -> dict:
    """The ``run.executor`` mapping of a pipeline YAML, environment variables expanded."""
    from flowerpower.utils.yaml_env import interpolate_env_in_data

    if not conf_file.exists():
        return {}
    raw = ((yaml.safe_load(conf_file.read_text()) or {}).get("run") or {}).get("executor")
    return interpolate_env_in_data(raw or {})


def spec_for_run(executor_cfg, conf_file: Path) -> ExecutorSpec:
    """The executor of one run: the ``daily`` override, else the YAML's ``run.executor``
    with what the command line changed (FlowerPower's merged ``executor_cfg``)."""
    forced = _override.get()
    if forced is not None:
        return forced
    from flowerpower.settings import executor as defaults

    written = yaml_executor(conf_file)
    where = f"{conf_file} run.executor"
    # FlowerPower fills max_workers/num_cpus with its defaults and keeps the YAML's values when
    # --executor changes the type: a value is the command line's when it differs from both.
    given = {}
    for key, default in (
        ("max_workers", defaults.EXECUTOR_MAX_WORKERS),
        ("num_cpus", defaults.EXECUTOR_NUM_CPUS),
    ):
        value = getattr(executor_cfg, key, None)
        if value is not None and value != default and value != written.get(key):
            given[key] = value
    kind = executor_cfg.type or "synchronous"
    if kind != (written.get("type") or "synchronous"):  # --executor on the command line
        unused = [key for key in written if key != "type"]
        if unused:
            logger.warning(
                f"{where}: {', '.join(unused)} belong to {written.get('type')!r}, "
                f"not used with --executor {kind}"
            )
        written, where = {"type": kind}, "--executor"
    written.update(given)
    return ExecutorSpec.parse(written, where)


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
    if problems:
        stop()
        listing = "\n  ".join(f"{worker}: {problem}" for worker, problem in problems.items())
        raise ExecutorError(
            f"{spec.where}: Dask workers cannot run this project's tasks (they need the project "
            f"and its packages installed, same versions as here):\n  {listing}"
        )
    where = address or cluster.scheduler_address
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


def _start_ray(spec: ExecutorSpec, modules: list[str]):
    address = spec.address or os.environ.get(ADDRESS_ENV["ray"]) or None
    options = {"include_dashboard": False, "log_to_driver": True}
    if address is None:
        # A local instance on loopback only. Ray rewrites 127.0.0.1 to the machine's address
        # unless cluster mode is off, and reads that switch once, when it is imported.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file in $HOME
        options.update(num_cpus=spec.num_cpus, _node_ip_address="127.0.0.1")
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}}
    ray = _require(spec, "ray")
    if address is None:
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # if imported before this run
    else:
        _check_reachable(spec, address)  # ray.init retries an unreachable address for minutes
    try:
        ray.init(address=address, **options)
    except (ConnectionError, TimeoutError, RuntimeError) as error:
        raise ExecutorError(
            f"{spec.where}: cannot start or reach Ray at {address or 'a local instance'}: {error}"
        ) from None
    problem = ray.get(ray.remote(_importable).remote(list(sys.path), modules))
    if problem:
        ray.shutdown()
        raise ExecutorError(f"{spec.where}: Ray workers cannot run this project's tasks: {problem}")
    return RayTaskExecutor(ray), ray.shutdown


# --- FlowerPower's runner ------------------------------------------------------------------


def _get_state_waiting_briefly(self):
    """Hamilton polls every task future in a loop that never blocks; on a small machine the
    loop takes the GIL from the threads it waits for (bronze over 418 small files: 33 s in a
    threadpool against 6 s inline). A poll of an unfinished future waits up to 2 ms instead."""
    if isinstance(self.future, Future) and not self.future.done():
        wait([self.future], timeout=POLL_WAIT_SECONDS)
    return _original_get_state(self)


_original_get_state = executors.TaskFutureWrappingPythonFuture.get_state


def _execute_sync(self, context_builder, run_config, adapter_set, modules):
    """FlowerPower's ``PipelineRunner._execute_sync`` with the executor built here, and
    always handed to Hamilton (FlowerPower leaves ``synchronous`` on a pool of 10 threads)."""
    from flowerpower.pipeline.adapter_provider import AdapterProvider

    adapter_set = AdapterProvider(self._pipeline.adapter_manager).construct_runtime_adapters(
        run_config, adapter_set
    )
    name = self._pipeline.name
    conf_file = hooks.project_dir(self._pipeline) / "conf" / "pipelines" / f"{name}.yml"
    spec = spec_for_run(run_config.executor, conf_file)
    executor, stop = start(spec, [m.__name__ for m in modules])
    logger.info(f"{name}: tasks run on {spec}")
    run = hooks.current(name)
    if run is not None:
        run.executor = str(spec)
    try:
        dr = (
            driver.Builder()
            .with_modules(*modules)
            .with_config(run_config.config)
            .with_adapters(*adapter_set.runtime_adapters, progress.TaskProgress(name))
            .enable_dynamic_execution(allow_experimental_mode=True)
            .with_local_executor(executors.SynchronousLocalTaskExecutor())
            .with_remote_executor(executor)
            .build()
        )
        return dr.execute(final_vars=run_config.final_vars, inputs=run_config.inputs)
    except Exception as error:
        if is_transient(error):  # a retry rule (ConnectionError) in the YAML may try again
            raise StoreUnavailable(f"the store could not be reached: {error}") from error
        raise
    finally:
        if stop is not None:
            stop()


def install() -> None:
    """Patch Hamilton's futures and FlowerPower's runner (idempotent, on ``import lakehouse``)."""
    from flowerpower.pipeline.runner import PipelineRunner

    executors.TaskFutureWrappingPythonFuture.get_state = _get_state_waiting_briefly
    PipelineRunner._execute_sync = _execute_sync
