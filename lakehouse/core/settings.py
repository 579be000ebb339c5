"""Checks of a pipeline's YAML that must fail before any data is touched.

FlowerPower hands ``run.config`` to Hamilton, which ignores keys no node asks for, refuses
an int where a function says ``float``, reports a missing key as a missing "input" under a
banner, and turns an unset ``${VAR}`` into an empty string. ``check_config`` reads what
the pipeline's functions ask for (names, annotations, defaults) and checks ``run.config``
against it before the DAG is built: a misspelled key, a wrong type, a missing key, an empty
location (an unset environment variable) or a missing landing folder is a ``ConfigError``
naming the file and key, which the ``flowerpower`` command reports in one line (exit 2).
"""

from __future__ import annotations

import copy
import inspect
import re
import types
import typing
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import Field

from lakehouse.core.shapes import Shape, checked, did_you_mean
from lakehouse.core.storage import Location, check_conditional_put

CONF_DIR = Path("conf") / "pipelines"
MISSING = inspect.Parameter.empty


class ConfigError(ValueError):
    """A setting is wrong; the message names the file and the key (``flowerpower`` exits 2)."""

    exit_code = 2


def functions(module: ModuleType) -> dict:
    """The public functions a module defines (its Hamilton nodes), by name."""
    return {
        name: fn
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__ and not name.startswith("_")
    }


def node_inputs(*modules: ModuleType) -> dict[str, tuple[object, bool]]:
    """The inputs the modules' functions ask for that none of their nodes provides:
    name -> (annotation or None, required)."""
    nodes = {name: fn for module in modules for name, fn in functions(module).items()}
    found: dict[str, tuple[object, bool]] = {}
    for fn in nodes.values():
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # an annotation that does not resolve: no type check for it
            hints = {}
        for name, parameter in inspect.signature(fn).parameters.items():
            if name in nodes:
                continue
            annotation, required = found.get(name, (None, False))
            found[name] = (
                annotation or hints.get(name),
                required or parameter.default is MISSING,
            )
    return found


PROJECT_CONF = Path("conf") / "project.yml"


class ProjectFile(Shape):
    """``conf/project.yml``: FlowerPower's project keys (a misspelled ``hooks_dir`` would
    be ignored by FlowerPower)."""

    name: str | None = None
    hooks_dir: str | None = None
    adapter: dict[str, Any] | None = None


class RetrySection(Shape):
    """``run.retry``: how FlowerPower retries a failed run."""

    max_retries: int = Field(3, ge=0)
    retry_delay: float = Field(1.0, ge=0)
    jitter_factor: float | None = Field(0.1, ge=0)
    retry_exceptions: list[str] = ["Exception"]


class RunSection(Shape):
    """``run``: FlowerPower's run settings. ``config`` is checked against what the pipeline's
    functions ask for (``check_config``), ``executor`` by ``lakehouse.runtime.executor_types``."""

    final_vars: list[str] = Field(
        min_length=1, description="The list of outputs to compute (the DAG's final nodes)."
    )
    inputs: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    cache: dict[str, Any] | bool | None = None
    with_adapter: dict[str, Any] | None = None
    executor: Any = None
    log_level: str | None = None
    retry: RetrySection | None = None
    reload: bool | None = None
    on_success: Any = None
    on_failure: Any = None
    additional_modules: list[Any] | None = None
    async_driver: bool | None = None
    adapter: dict[str, Any] | None = None


class PipelineFile(Shape):
    """``conf/pipelines/<name>.yml``: FlowerPower's sections (a misspelled ``final_vars``
    would run every node of the DAG)."""

    run: RunSection = Field(description="The run settings (final_vars, config, executor, ...).")
    name: str | None = None
    params: dict[str, Any] | None = None
    adapter: dict[str, Any] | None = None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~15x faster to parse
_parsed: dict[tuple, object] = {}


def read_yaml(path: Path):
    """A YAML file's content (safe: plain data only), parsed once per process while the file
    is unchanged (several pipelines of one ``daily`` run read the same declarations)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _parsed:
        _parsed[key] = yaml.load(path.read_bytes(), Loader=_LOADER)
    return copy.deepcopy(_parsed[key])


def check_project_file(path: Path) -> None:
    """``conf/project.yml`` holds FlowerPower's project keys only."""
    if path.exists():
        checked(ProjectFile, read_yaml(path), str(PROJECT_CONF), ConfigError)


def check_pipeline_file(path: Path, shown: str) -> None:
    """The sections of a pipeline YAML are FlowerPower's; ``shown``: the file as messages
    name it."""
    if path.exists():  # else run with --config from elsewhere: FlowerPower loaded what it got
        checked(PipelineFile, read_yaml(path), shown, ConfigError)


RENAMED = {  # settings that changed name or meaning: what to write instead
    "max_rows_per_batch": ": it is now max_cells_per_batch, rows times the entity's columns "
    "(250,000 rows of a 16-column table is 4000000)",
}


def check_config(
    where: str, modules: list[ModuleType], config: dict, inputs: dict | None = None
) -> dict:
    """``config`` (a pipeline's ``run.config``, ``where`` its file) with every value of the
    type its functions declare (an int is a float where a float is asked, a mapping is
    parsed by a type's ``from_config``); ``ConfigError`` for an unknown, missing or
    mistyped key. ``inputs``: what ``--inputs`` gives (those keys need no config)."""
    known = node_inputs(*modules)
    for key in config:
        if key not in known:
            hint = (
                RENAMED.get(key)
                or did_you_mean(key, known)
                or f" (known: {', '.join(sorted(known))})"
            )
            raise ConfigError(f"{where} run.config: unknown key {key!r}{hint}")
    given = {**config, **(inputs or {})}
    for key, (annotation, required) in sorted(known.items()):
        if required and key not in given:
            raise ConfigError(f"{where} run.config: {key!r} is missing ({_spelled(annotation)})")
    return {
        key: conformed(value, known[key][0], f"{where} run.config.{key}")
        for key, value in config.items()
    }


def conformed(value, annotation, where: str):
    """``value`` as ``annotation`` says, or ``ConfigError`` naming ``where``."""
    if annotation is None or annotation is typing.Any:
        return value
    parse = getattr(annotation, "from_config", None)
    if parse is not None:
        return parse(value, where)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return conformed(value, option, where)
            except ConfigError:
                continue
        raise _mistyped(value, annotation, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    expected = origin or annotation
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise _mistyped(value, annotation, where)
    if isinstance(expected, type) and not isinstance(value, expected):
        raise _mistyped(value, annotation, where)
    return value


def _spelled(annotation) -> str:
    if annotation is None:
        return "any value"
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _mistyped(value, annotation, where: str) -> ConfigError:
    return ConfigError(
        f"{where}: expected {_spelled(annotation)}, got {value!r} ({type(value).__name__})"
    )


class Positive(int):
    """An int setting of at least 1 (a batch size, a worker count)."""

    @classmethod
    def from_config(cls, value, where: str) -> Positive:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: expected a whole number of at least 1, got {value!r}")
        return cls(value)


MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B)\s*$", re.IGNORECASE)


def memory_size(key: str, value: str, pipeline: str) -> str:
    """A memory size as DuckDB takes it (``500MB``, ``2GiB``); another value names the key."""
    if not MEMORY_SIZE.match(str(value)):
        raise ConfigError(
            f"{CONF_DIR / pipeline}.yml run.config.{key}: {value!r} is not a memory size "
            "such as 500MB or 2GB"
        )
    return str(value).strip()


def location(key: str, value: str, pipeline: str, must_exist: bool = False) -> Location:
    """The folder configured under ``key``; empty or (with ``must_exist``) missing is an error."""
    where = f"{CONF_DIR / pipeline}.yml run.config.{key}"
    if not str(value or "").strip():
        raise ConfigError(f"{where} is empty (is the environment variable in it unset?)")
    place = Location.from_uri(str(value))
    if must_exist and not place.exists():
        raise FileNotFoundError(f"{where}: {place.uri} does not exist")
    if key == "lake_root":
        check_conditional_put(place)
    return place


class Seconds(float):
    """A duration setting in seconds, 0 or more."""

    @classmethod
    def from_config(cls, value, where: str) -> Seconds:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(f"{where}: expected a number of seconds >= 0, got {value!r}")
        return cls(value)


DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def limit(text: str, where: str) -> timedelta:
    """``30m``, ``26h`` or ``8d`` as a duration; anything else names the YAML key."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", str(text))
    if not match:
        raise ValueError(f"{where}: {text!r} is not a duration such as 30m, 26h or 8d")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})
