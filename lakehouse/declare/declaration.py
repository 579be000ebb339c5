"""One table's declaration (a silver entity, or a gold mart's output contract), as the engine
uses it.

``lakehouse.declare.models`` checks the shape of what ``conf/datasets/*.yml`` says; this
module checks what it means and builds the ``Entity`` the layers read: column types that
parse, rules with bounds in the column's type, a key, partition and parent that name
declared columns, date bounds in order. Every mistake is a ``DeclarationError`` naming
where it was declared (file and key) and the field at fault.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, cast
from zoneinfo import ZoneInfo

import polars as pl

from lakehouse.core import names
from lakehouse.core.shapes import did_you_mean
from lakehouse.declare import models
from lakehouse.declare.models import DeclarationError

SIMPLE_TYPES = {
    "string": pl.String(),
    "int8": pl.Int8(),
    "int16": pl.Int16(),
    "int32": pl.Int32(),
    "int64": pl.Int64(),
    "float32": pl.Float32(),
    "float64": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us"),
    "timestamptz": pl.Datetime("us", "UTC"),
}
TimeUnit = Literal["ns", "us", "ms"]
TYPE_FORMS = "string, int8..int64, float32/64, bool, date, decimal(P,S), timestamp[us|ms|ns(, TZ)]"
ROW_HASH = "_row_hash"  # silver column of a snapshot source: the hash of the row as it arrived
DELETED_AT = "_deleted_at"  # soft_delete: when the key vanished from the snapshots (else null)


def parse_type(text: str, where: str) -> pl.DataType:
    """A column type as written in YAML (``int64``, ``decimal(15,2)``, ``timestamp[us, UTC]``)."""
    spelled = re.sub(r"\s+", "", str(text).lower())
    if spelled in SIMPLE_TYPES:
        return SIMPLE_TYPES[spelled]
    if match := re.fullmatch(r"decimal\((\d+),(\d+)\)", spelled):
        precision, scale = int(match[1]), int(match[2])
        if 0 < precision <= 38 and 0 <= scale <= precision:
            return pl.Decimal(precision, scale)
    if match := re.fullmatch(r"timestamp\[(us|ms|ns)(?:,([^\]]+))?\]", spelled):
        zone = str(text)[str(text).index(",") + 1 : -1].strip() if match[2] else None
        return pl.Datetime(cast(TimeUnit, match[1]), zone)  # one of the three, as matched
    raise DeclarationError(f"{where}: {text!r} is not a type (known: {TYPE_FORMS})")


def stored(dtype: pl.DataType) -> pl.DataType:
    """The type a declared column is stored as: Delta Lake keeps timestamps in microseconds,
    in UTC or without a zone (a declared zone says how to read text without an offset)."""
    if isinstance(dtype, pl.Datetime):
        return pl.Datetime("us", "UTC" if dtype.time_zone else None)
    return dtype


@dataclass(frozen=True)
class Partition:
    """The partition column, a date derived from ``source``: one date or timestamp column
    truncated to ``by`` (day, month, year), or three integer year/month/day columns."""

    column: str
    source: tuple[str, ...]
    by: str = "month"


@dataclass(frozen=True)
class Parent:
    """A foreign key: ``column`` must be a ``key`` of silver ``entity`` (else: orphan)."""

    column: str
    entity: str
    key: str


@dataclass(frozen=True)
class Snapshot:
    """The source delivers full snapshots: rows are diffed on the key by a hash of their
    values, and a key missing from the newest snapshot is kept, flagged or deleted
    (``vanished``). The files whose names give the same first match of ``group`` (a regex;
    None: the whole name) are one snapshot."""

    vanished: str = "keep"
    group: str | None = None


@dataclass(frozen=True)
class Entity:
    """One declared table: a silver entity, or a gold mart's output contract."""

    name: str
    columns: dict[str, pl.DataType]
    keys: tuple[str, ...]
    partition: Partition | None = None
    grain: str = ""
    parent: Parent | None = None
    source: str = ""  # the bronze table it reads (entities only)
    nullable: frozenset[str] = frozenset()
    rules: dict[str, dict] = field(default_factory=dict)
    dates: tuple[date, date] | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # dotted path of a pandera model or row check, applied too
    schema_evolution: str = "add_columns"
    where: str = ""  # the file and key it was declared at, for messages
    zones: dict[str, str] = field(default_factory=dict)  # timestamp text without an offset
    # is read in this zone (the declared one); the column is stored in UTC
    snapshot: Snapshot | None = None  # the source delivers full snapshots (see Snapshot)

    @property
    def partition_column(self) -> str | None:
        return self.partition.column if self.partition else None

    @property
    def schema(self) -> pl.Schema:
        """The silver table's columns: the declared ones, the partition column, and for a
        snapshot source the row hash (and the soft-delete time)."""
        columns = dict(self.columns)
        if self.partition:
            columns[self.partition.column] = pl.Date()
        if self.snapshot:
            columns[ROW_HASH] = pl.Int64()  # Delta has no unsigned integers
            if self.snapshot.vanished == "soft_delete":
                columns[DELETED_AT] = pl.Datetime("us", "UTC")
        return pl.Schema(columns)


def _value_for(dtype: pl.DataType, value, where: str):
    """A rule's bound as the column's Python type (YAML gives text, ints, floats, dates)."""
    try:
        if isinstance(dtype, pl.Decimal):
            return Decimal(str(value))
        if dtype == pl.Date:
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if isinstance(dtype, pl.Datetime):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            if isinstance(value, date) and not isinstance(value, datetime):
                moment = datetime(value.year, value.month, value.day)
            zone = dtype.time_zone
            if zone and moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(zone))
            return moment
        if dtype.is_integer():
            return int(value)
        if dtype.is_float():
            return float(value)
        return str(value)
    except (ValueError, TypeError, ArithmeticError) as error:
        raise DeclarationError(f"{where}: {value!r} is not a {dtype} ({error})") from None


def _rules(spec: models.Rules, dtype: pl.DataType, where: str) -> dict:
    rules: dict = spec.model_dump(exclude_none=True)
    for name in ("ge", "gt", "le", "lt"):
        if name in rules:
            rules[name] = _value_for(dtype, rules[name], f"{where}.{name}")
    if "between" in rules:
        rules["between"] = tuple(_value_for(dtype, b, f"{where}.between") for b in rules["between"])
    if "isin" in rules:
        rules["isin"] = [_value_for(dtype, v, f"{where}.isin") for v in rules["isin"]]
    if "regex" in rules:
        _regex(rules["regex"], f"{where}.regex")
    if spec.str_length:
        rules["str_length"] = (spec.str_length.min, spec.str_length.max)
    text_rules = {"regex", "str_length"} & set(rules)
    if text_rules and dtype != pl.String:
        raise DeclarationError(f"{where}: {', '.join(sorted(text_rules))} needs a string column")
    return rules


def _regex(pattern: str, where: str) -> None:
    try:
        re.compile(pattern)
    except re.error as error:
        raise DeclarationError(f"{where}: {error}") from None


def check_columns_exist(names, columns: dict, where: str) -> None:
    for name in names:
        if name not in columns:
            raise DeclarationError(
                f"{where}: {name!r} is not a declared column{did_you_mean(name, list(columns))}"
            )


def _partition(spec: models.Partition | None, columns: dict, where: str) -> Partition | None:
    if spec is None:
        return None
    source = tuple(spec.from_)
    check_columns_exist(source, columns, f"{where}.from")
    if len(source) == 1 and not (
        columns[source[0]] == pl.Date or isinstance(columns[source[0]], pl.Datetime)
    ):
        raise DeclarationError(f"{where}.from: {source[0]} is {columns[source[0]]}, not a date")
    if len(source) == 3 and not all(columns[c].is_integer() for c in source):
        raise DeclarationError(f"{where}.from: year, month and day columns must be integers")
    if len(source) not in (1, 3):
        raise DeclarationError(f"{where}.from: one date column, or [year, month, day] columns")
    if spec.column in columns:
        raise DeclarationError(f"{where}.column: {spec.column!r} is already a declared column")
    if problem := names.column_problem(spec.column):
        raise DeclarationError(f"{where}.column: {problem}")
    return Partition(spec.column, source, spec.by)


def _columns(spec: dict[str, models.Column], where: str) -> dict:
    """name -> type as stored, and per column: nullable, rules, description, zone."""
    found: dict = {"columns": {}, "nullable": set(), "rules": {}, "descriptions": {}, "zones": {}}
    for column, column_spec in spec.items():
        at = f"{where}.columns.{column}"
        if problem := names.column_problem(column):
            raise DeclarationError(f"{where}.columns: {problem}")
        declared = parse_type(column_spec.type, f"{at}.type")
        found["columns"][column] = dtype = stored(declared)
        if isinstance(declared, pl.Datetime) and declared.time_zone not in (None, "UTC"):
            found["zones"][column] = declared.time_zone
        if column_spec.nullable:
            found["nullable"].add(column)
        if column_spec.rules:
            found["rules"][column] = _rules(column_spec.rules, dtype, f"{at}.rules")
        if column_spec.description:
            found["descriptions"][column] = column_spec.description
    return found


def table(name: str, spec: models.Contract, where: str) -> Entity:
    """One entity (or mart contract) from its checked shape."""
    if problem := names.table_problem(name):
        raise DeclarationError(f"{where}: {problem}")
    found = _columns(spec.columns, where)
    columns, nullable = found["columns"], found["nullable"]
    keys = tuple(spec.key)
    check_columns_exist(keys, columns, f"{where}.key")
    if nullable_keys := sorted(set(keys) & nullable):
        raise DeclarationError(
            f"{where}: key column(s) {', '.join(nullable_keys)} cannot be nullable"
        )
    dates = (spec.dates.from_, spec.dates.to) if spec.dates else None
    if dates and dates[0] > dates[1]:
        raise DeclarationError(f"{where}.dates: from {dates[0]} is after to {dates[1]}")
    entity = Entity(
        name=name,
        columns=columns,
        keys=keys,
        grain=spec.grain,
        nullable=frozenset(nullable),
        rules=found["rules"],
        dates=dates,
        descriptions=found["descriptions"],
        model=spec.model,
        where=where,
        zones=found["zones"],
    )
    if not isinstance(spec, models.Entity):
        return entity  # a mart's contract
    return _with_silver_settings(entity, spec, where)


def _with_silver_settings(entity: Entity, spec: models.Entity, where: str) -> Entity:
    """An entity's source, partition, parent, schema evolution and snapshot settings."""
    source = spec.source or entity.name
    if problem := names.table_problem(source):
        raise DeclarationError(f"{where}.source: {problem}")
    parent = None
    if spec.parent:
        check_columns_exist([spec.parent.column], entity.columns, f"{where}.parent.column")
        parent = Parent(spec.parent.column, spec.parent.entity, spec.parent.key)
    snapshot = None
    if spec.snapshot:
        if spec.snapshot.group is not None:
            _regex(spec.snapshot.group, f"{where}.snapshot.group")
        snapshot = Snapshot(spec.snapshot.vanished, spec.snapshot.group)
    return dataclasses.replace(
        entity,
        source=source,
        partition=_partition(spec.partition, entity.columns, f"{where}.partition"),
        parent=parent,
        schema_evolution=spec.schema_evolution,
        snapshot=snapshot,
    )
