"""Executors chosen in YAML, handed to FlowerPower's runner (built in executor_types, clusters).

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
import logging
import os
import typing
from collections.abc import Iterator
from concurrent.futures import Future, wait
from contextvars import ContextVar
from pathlib import Path

from hamilton import driver, htypes
from hamilton.execution import executors
from loguru import logger

from lakehouse.core import runs, settings
from lakehouse.core.storage import StoreUnavailable, is_transient
from lakehouse.runtime import clusters, commits, hooks, progress
from lakehouse.runtime.executor_types import (
    POLL_WAIT_SECONDS,
    ExecutorError,
    ExecutorSpec,
    start_local,
)

__all__ = ["ExecutorError", "ExecutorSpec", "install", "override", "start"]

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
    raw = ((settings.read_yaml(conf_file) or {}).get("run") or {}).get("executor")
    return interpolate_env_in_data(raw or {})


def spec_for_run(executor_cfg, conf_file: Path) -> tuple[ExecutorSpec, bool]:
    """The executor of one run, and whether the command line chose it: the override of an
    enclosing run, else the YAML's ``run.executor`` with what the command line changed
    (FlowerPower's merged ``executor_cfg``)."""
    forced = _override.get()
    if forced is not None:
        return forced, False
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
    elif given:
        where = "--executor-max-workers/--executor-num-cpus"
    written.update(given)
    return ExecutorSpec.parse(written, where), where.startswith("--")


def start(spec: ExecutorSpec, modules: list[str]):
    """The Hamilton task executor for ``spec``, started and checked, and how to stop it."""
    if spec.type in clusters.TYPES:
        return clusters.start(spec, modules)
    return start_local(spec)


def has_parallel_tasks(modules) -> bool:
    """Whether a pipeline has a ``Parallelizable`` block (tasks for an executor to run)."""
    for module in modules:
        for fn in settings.functions(module).values():
            try:
                returns = typing.get_type_hints(fn).get("return")
            except Exception:  # an annotation that does not resolve: assume tasks
                return True
            if returns is not None and htypes.is_parallelizable_type(returns):
                return True
    return False


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
    conf_file = hooks.project_dir(self._pipeline) / settings.CONF_DIR / f"{name}.yml"
    shown = str(settings.CONF_DIR / f"{name}.yml")
    settings.check_project_file(hooks.project_dir(self._pipeline) / settings.PROJECT_CONF)
    settings.check_pipeline_file(conf_file, shown)
    config = settings.check_config(shown, modules, run_config.config or {}, run_config.inputs)
    spec, from_command_line = spec_for_run(run_config.executor, conf_file)
    _quiet_hamilton(run_config.log_level)
    run = runs.current(name)
    if run is not None:
        run.executor = str(spec)
    if has_parallel_tasks(modules):
        executor, stop = start(spec, [m.__name__ for m in modules])
        level = "INFO" if spec.type in ("dask", "ray") else "DEBUG"  # a cluster is news
        logger.log(level, f"{name}: tasks run on {spec}")
    else:  # nothing to distribute here; pipelines it runs get the command line's executor
        executor, stop = executors.SynchronousLocalTaskExecutor(), None
        if from_command_line:
            logger.info(f"{name}: the pipelines it runs use {spec} (command line)")
    passed_on = override(spec) if from_command_line else contextlib.nullcontext()
    try:
        with passed_on:
            return _run_dag(modules, config, adapter_set, name, executor, run_config)
    except Exception as error:
        if is_transient(error):  # a retry rule (ConnectionError) in the YAML may try again
            raise StoreUnavailable(f"the store could not be reached: {error}") from error
        raise
    finally:
        if stop is not None:
            stop()


def _quiet_hamilton(level: str | None) -> None:
    """Hamilton logs a failing node's inputs and traceback in a box (and a banner): the run's
    one-line report says it, the box is for ``--log-level debug``."""
    level = (level or os.environ.get("FP_LOG_LEVEL") or "").upper()
    logging.getLogger("hamilton").setLevel(logging.NOTSET if level == "DEBUG" else logging.CRITICAL)


def _run_dag(modules, config, adapter_set, name, executor, run_config) -> dict:
    dr = (
        driver.Builder()
        .with_modules(*modules)
        .with_config(config)
        .with_adapters(
            *adapter_set.runtime_adapters, progress.TaskProgress(name), commits.CommitOnReturn()
        )
        .enable_dynamic_execution(allow_experimental_mode=True)
        .with_local_executor(executors.SynchronousLocalTaskExecutor())
        .with_remote_executor(executor)
        .build()
    )
    return dr.execute(final_vars=run_config.final_vars, inputs=run_config.inputs)


def install() -> None:
    """Patch Hamilton's futures and FlowerPower's runner (idempotent; ``integration.install``)."""
    from flowerpower.pipeline.runner import PipelineRunner

    executors.TaskFutureWrappingPythonFuture.get_state = _get_state_waiting_briefly
    PipelineRunner._execute_sync = _execute_sync
