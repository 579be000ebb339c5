"""Hooks around every pipeline run, configured in ``conf/hooks.yml``, written in ``hooks/``.

FlowerPower 0.37 cannot load ``on_success``/``on_failure`` callbacks or Hamilton lifecycle
adapters from YAML, so ``install`` wraps its ``PipelineRunner.run`` (outside its retry loop:
one run, however many attempts). ``conf/hooks.yml`` names the hooks in order; each is a
module ``hooks/<name>.py`` of the project with ``before(run, settings)`` and
``after(run, settings)``, where ``settings`` is the hook's own block of the YAML. ``before``
runs in the listed order, ``after`` in the reverse order, and only for hooks whose
``before`` ran; an ``after`` that fails is logged and never hides the run's own outcome.
A ``before`` that raises ``RunRefused`` (the lock) stops the run with its exit code.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from loguru import logger

from lakehouse.core import fence, runs
from lakehouse.core.runs import Run, current
from lakehouse.runtime import exit_status

CONF_FILE = Path("conf") / "hooks.yml"


class RunRefused(Exception):
    """A hook refused to start the run (another run holds the lock); ``exit_code`` says why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load(project_dir: Path) -> list[tuple[ModuleType, dict]]:
    """The hooks ``conf/hooks.yml`` lists, with their settings (none when the file is absent)."""
    from flowerpower.utils.yaml_env import interpolate_env_in_data

    from lakehouse.core.settings import ConfigError, read_yaml

    path = project_dir / CONF_FILE
    if not path.exists():
        return []
    config = interpolate_env_in_data(read_yaml(path) or {})
    names = config.get("hooks") or []
    # a hook taken out of the list may keep its settings; a block that names no hook is a typo
    unknown = sorted(
        key
        for key in set(config) - {"hooks", *names}
        if not (project_dir / "hooks" / f"{key}.py").exists()
    )
    if unknown:
        raise ConfigError(f"{CONF_FILE}: {', '.join(unknown)} names no hook in hooks/")
    loaded = []
    for name in names:
        source = project_dir / "hooks" / f"{name}.py"
        if not source.exists():
            raise ConfigError(f"{CONF_FILE}: hook {name!r} has no file hooks/{name}.py")
        spec = importlib.util.spec_from_file_location(f"lakehouse_hook_{name}", source)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{CONF_FILE}: hooks/{name}.py cannot be imported as a module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded.append((module, _checked(module, config.get(name) or {}, f"{CONF_FILE} {name}")))
    return loaded


def _checked(module: ModuleType, given, where: str) -> dict:
    """A hook's settings, checked against the ``SETTINGS`` (name: type) its module declares."""
    from lakehouse.core.settings import ConfigError, conformed
    from lakehouse.core.shapes import did_you_mean

    if not isinstance(given, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {given!r}")
    known = getattr(module, "SETTINGS", None)
    if known is None:
        return given
    for key, value in given.items():
        if key not in known:
            hint = did_you_mean(key, known) or f" (known: {', '.join(sorted(known))})"
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
        conformed(value, known[key] | None, f"{where}.{key}")
    return given


def run_with_hooks(pipeline: str, project_dir: Path, inputs: dict, run) -> dict:
    """``run()`` (the pipeline) inside its hooks; the run's outputs."""
    parent = current()
    outermost = parent is None
    record = Run(pipeline, "", project_dir, dict(inputs or {}), parent=parent)
    record.run_id = runs.new_run_id(pipeline)
    if parent is not None:
        parent.children.append(record)
    token = runs.enter(record)
    entered: list[tuple[ModuleType, dict]] = []
    try:
        fence.check()  # daily's layer: not once daily lost its lease
        for module, settings in load(project_dir):
            module.before(record, settings)
            entered.append((module, settings))
        logger.debug(f"{pipeline}: run {record.run_id} started")
        outputs = run()
        fence.check()  # a run that lost its lease fails, even with nothing left to commit
        record.finish("succeeded", outputs=outputs)
        logger.debug(f"{pipeline}: run {record.run_id} succeeded in {record.seconds:.1f} s")
        return outputs
    except RunRefused as refused:
        record.finish("refused", error=refused)
        record.exit_code = refused.exit_code
        exit_status.request(refused.exit_code)
        logger.error(f"{pipeline}: {refused}")
        raise
    except BaseException as error:
        cause = error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ else error
        record.finish("failed", outputs=getattr(cause, "outputs", None), error=cause)
        _report(record, cause)
        raise
    finally:
        for module, settings in reversed(entered):
            try:
                module.after(record, settings)
            except Exception as error:  # a hook never hides the run's own outcome
                logger.error(f"{pipeline}: hook {module.__name__} failed after the run: {error}")
        runs.leave(token)
        if outermost and record.status in ("succeeded", "failed"):
            _print_summary(record)
        if outermost and record.status in ("failed", "refused") and exit_status.active():
            # the cause is reported above, once: the command leaves without FlowerPower's
            # own reports of it and without a traceback (shown at --log-level debug)
            sys.exit(getattr(record, "exit_code", None) or 1)


def _print_summary(record: Run) -> None:
    from lakehouse.ops import summary

    try:
        print(summary.render(record), flush=True)
    except Exception as error:  # a summary never hides the run's own outcome
        logger.warning(f"{record.pipeline}: no summary: {type(error).__name__}: {error}")


def _report(record: Run, cause: BaseException) -> None:
    """One line for a failed run: the cause, or where a pipeline it ran reported it."""
    record.exit_code = exit_status.for_error(cause)
    reported_by = getattr(cause, "_lakehouse_reported_by", None)
    where = f"{record.pipeline}: run {record.run_id} failed after {record.seconds:.1f} s"
    if reported_by:
        logger.error(f"{where}: {reported_by} failed (above)")
    else:
        logger.error(f"{where}: {record.error_type}: {record.error_message}")
        logger.opt(exception=cause).debug(f"{record.pipeline}: the traceback")
    try:  # the outer runs of daily say where to look instead of repeating it
        vars(cause)["_lakehouse_reported_by"] = reported_by or record.pipeline
    except TypeError:  # an exception type without a __dict__
        pass


def project_dir(pipeline) -> Path:
    """The folder of a FlowerPower pipeline's project (the working folder if not local)."""
    base = getattr(getattr(pipeline, "project_context", None), "base_dir", None)
    return Path(base) if base and "://" not in str(base) else Path.cwd()


class _RetriesInHooks:
    """FlowerPower's retry manager for one run, its whole retry loop inside the hooks."""

    def __init__(self, retries, pipeline: str, project_dir: Path, inputs: dict) -> None:
        self.retries, self.pipeline, self.project_dir, self.inputs = (
            retries,
            pipeline,
            project_dir,
            inputs,
        )

    def execute(self, operation, **kwargs):
        return run_with_hooks(
            self.pipeline,
            self.project_dir,
            self.inputs,
            lambda: self.retries.execute(operation=operation, **kwargs),
        )


def _stamp_run_id(record) -> None:
    """Every log line written during a run names the run (logs say which run, not only which
    pipeline and table, when several runs write to one log)."""
    run = current()
    if run is not None and run.run_id and run.run_id not in record["message"]:
        record["message"] = f"[{run.run_id}] {record['message']}"


def _not_reported_here(*args, **kwargs) -> None:
    """FlowerPower's retry loop's report of a failure, left to ``run_with_hooks``."""


def install() -> None:
    """Put FlowerPower's retry loop inside the hooks (idempotent). The patched method is the
    first one ``PipelineRunner.run`` calls after importing the pipeline module (which
    calls ``integration.install``), so even a process's first run gets its hooks."""
    from flowerpower.pipeline.retry import RetryManager
    from flowerpower.pipeline.runner import PipelineRunner

    if getattr(PipelineRunner._create_retry_manager, "_with_hooks", False):
        return
    original = PipelineRunner._create_retry_manager

    def _create_retry_manager(self, run_config):
        return _RetriesInHooks(
            original(self, run_config),
            self._pipeline.name,
            project_dir(self._pipeline),
            getattr(run_config, "inputs", None) or {},
        )

    vars(_create_retry_manager)["_with_hooks"] = True  # installed: not wrapped twice
    PipelineRunner._create_retry_manager = _create_retry_manager
    # a failure is reported once, by run_with_hooks, not also by FlowerPower's retry loop
    # (nor by Hamilton: executors._quiet_hamilton)
    RetryManager._log_failure = _not_reported_here
    logger.configure(patcher=_stamp_run_id)
