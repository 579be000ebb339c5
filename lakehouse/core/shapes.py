"""Typed YAML: pydantic models of a configuration file, and their errors in one line.

A ``Shape`` refuses keys it does not know (a misspelled key is an error, not ignored).
``checked`` validates a file's data against a model and turns the first mistake into one
line naming the file and the key path, with a did-you-mean for a misspelled key or choice:
``conf/pipelines/silver.yml run: unknown key 'finl_vars'; did you mean 'final_vars'?``.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


def did_you_mean(name: str, known) -> str:
    """``; did you mean 'x'?`` for the closest of ``known``, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class Shape(BaseModel):
    """A mapping whose keys are all known."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def checked(model: type[M], data, where: str, error: type[Exception]) -> M:
    """``data`` as ``model``, or ``error`` with the first mistake in one line (``where``:
    the file, or the file and the key the data sits at)."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as invalid:
        first = min(invalid.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo
        raise error(one_line(first, where, model)) from None  # explains a key left missing


BOUNDS = (  # pydantic's error types of a value out of its field's bounds
    "too_short",
    "too_long",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
)
EXPECTED = {  # pydantic's error type -> what the YAML should have held
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
}


def one_line(error, file: str, model: type[BaseModel]) -> str:
    """A pydantic error as ``<file> <key path>: <what is wrong>``."""
    location = [str(part) for part in error["loc"]]
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        known = _keys_at(model, location[:-1])
        what = f"unknown key {location[-1]!r}{did_you_mean(location[-1], known)}"
        location = location[:-1]
    elif kind == "missing":
        field = _field_at(model, location)
        what = f"missing: {_lowered(field.description)}" if field else "missing"
    elif kind == "literal_error":
        choices = _choices_at(model, location)
        what = f"{given!r} is not one of {', '.join(choices)}{did_you_mean(str(given), choices)}"
    elif kind in BOUNDS and (field := _field_at(model, location)) and field.description:
        what = f"expected {_lowered(field.description)}; got {given!r}"
    elif kind == "value_error":  # a model's own check: its message as it is
        what = str(error["ctx"]["error"])
    elif kind in EXPECTED:
        what = f"expected {EXPECTED[kind]}, got {given!r}"
    else:
        what = f"{error['msg']}, got {given!r}"
    place = ".".join(location)
    if not place:
        return f"{file}: {what}"
    joint = " " if file.endswith((".yml", ".yaml")) else "."  # after a file, or a key path
    return f"{file}{joint}{place}: {what}"


def _lowered(text: str | None) -> str:
    text = (text or "").rstrip(".")
    return text[:1].lower() + text[1:]


def _walk(model: type[BaseModel], location: list[str]):
    """(the pydantic field the key path ends at, or None inside a mapping or list; the type
    found there)."""
    current: Any = model
    field = None
    for part in location:
        current = _unwrapped(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for name, f in current.model_fields.items() if part in (name, f.alias)), None
            )
            current = field.annotation if field else None
        elif typing.get_origin(current) in (dict, list):
            field, current = None, typing.get_args(current)[-1]
        else:
            return None, None
    return field, _unwrapped(current)


def _field_at(model: type[BaseModel], location: list[str]):
    return _walk(model, location)[0]


def _unwrapped(annotation):
    """The model or container an annotation holds (Optional and Annotated taken off)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0]
        else:
            return annotation


def _keys_at(model: type[BaseModel], location: list[str]) -> list[str]:
    inner = _walk(model, location)[1]
    if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
        return []
    return [f.alias or name for name, f in inner.model_fields.items()]


def _choices_at(model: type[BaseModel], location: list[str]) -> list[str]:
    return [str(c) for c in typing.get_args(_walk(model, location)[1])]
