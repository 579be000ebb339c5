"""Tasks on a cluster: a Dask or Ray cluster (a local one on loopback, or one at an
address) started or reached and checked before any node runs, and the Hamilton task
executors that submit to it, at most twice its threads in flight."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import sys
from typing import Any

from hamilton.execution import executors
from loguru import logger

from lakehouse.runtime.executor_types import (
    POLL_WAIT_SECONDS,
    ExecutorError,
    ExecutorSpec,
    prepare_worker,
    require,
)

CONNECT_TIMEOUT_SECONDS = 10
TYPES = ("dask", "ray")
ADDRESS_ENV = {"dask": "DASK_SCHEDULER_ADDRESS", "ray": "RAY_ADDRESS"}


def start(spec: ExecutorSpec, modules: list[str]):
    """The Hamilton task executor for a ``dask`` or ``ray`` spec, its cluster started or
    reached, and checked to import ``modules``; and how to stop it."""
    if spec.type == "dask":
        return start_dask(spec, modules, os.cpu_count() or 1)
    return start_ray(spec, modules)


# --- Dask ----------------------------------------------------------------------------------


def _importable(paths: list[str], modules: list[str]) -> str | None:
    """Run on a cluster worker: make the driver's import paths known, import the pipeline."""
    prepare_worker(paths)
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


def start_dask(spec: ExecutorSpec, modules: list[str], cpus: int):
    distributed = require(spec, "distributed")
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


def start_ray(spec: ExecutorSpec, modules: list[str]):
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
        ray = require(spec, "ray")
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
