"""Checks of a pipeline's YAML that must fail before any data is touched.

FlowerPower hands ``run.config`` to Hamilton, which ignores keys no node asks for and turns
an unset ``${VAR}`` into an empty string. Here a misspelled key, an empty location (an
unset environment variable) or a missing landing folder is an error naming the file and key.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from types import ModuleType

import yaml

from lakehouse.storage import Location, check_conditional_put

CONF_DIR = Path("conf") / "pipelines"


def node_inputs(module: ModuleType) -> set[str]:
    """The inputs a Hamilton module asks for that none of its own nodes provides."""
    functions = {
        name: fn
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__ and not name.startswith("_")
    }
    parameters = {p for fn in functions.values() for p in inspect.signature(fn).parameters}
    return parameters - set(functions)


def check_keys(pipeline: str, module: ModuleType, conf_dir: Path = CONF_DIR) -> None:
    """Every ``run.config`` key of ``conf/pipelines/<pipeline>.yml`` is one the DAG reads."""
    path = conf_dir / f"{pipeline}.yml"
    if not path.exists():
        return  # run with --config from elsewhere: FlowerPower already loaded what it got
    config = ((yaml.safe_load(path.read_text()) or {}).get("run") or {}).get("config") or {}
    known = node_inputs(module)
    for key in config:
        if key not in known:
            hint = did_you_mean(key, known) or f" (known: {', '.join(sorted(known))})"
            raise ValueError(f"{path} run.config: unknown key {key!r}{hint}")


def did_you_mean(name: str, known) -> str:
    """``; did you mean 'x'?`` for the closest of ``known``, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def location(key: str, value: str, pipeline: str, must_exist: bool = False) -> Location:
    """The folder configured under ``key``; empty or (with ``must_exist``) missing is an error."""
    where = f"{CONF_DIR / pipeline}.yml run.config.{key}"
    if not str(value or "").strip():
        raise ValueError(f"{where} is empty (is the environment variable in it unset?)")
    place = Location.from_uri(str(value))
    if must_exist and not place.exists():
        raise FileNotFoundError(f"{where}: {place.uri} does not exist")
    if key == "lake_root":
        check_conditional_put(place)
    return place
