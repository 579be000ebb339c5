"""One table's declaration (a silver entity, or a gold mart's output contract), from YAML.

Parses and checks what ``conf/datasets/*.yml`` says of one table: column types, nullability,
rules with bounds in the column's type, the key, the partition, the parent, date bounds,
the schema-evolution policy. Every mistake is a ``DeclarationError`` naming where it was
declared (file and key) and the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl

from lakehouse.core import names
from lakehouse.core.settings import did_you_mean

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
TYPE_FORMS = "string, int8..int64, float32/64, bool, date, decimal(P,S), timestamp[us|ms|ns(, TZ)]"
RULES = ("ge", "gt", "le", "lt", "between", "isin", "regex", "str_length")
PARTITION_GRAINS = ("day", "month", "year")
EVOLUTION = ("add_columns", "fail")
VANISHED = ("keep", "soft_delete", "delete")
ROW_HASH = "_row_hash"  # silver column of a snapshot source: the hash of the row as it arrived
DELETED_AT = "_deleted_at"  # soft_delete: when the key vanished from the snapshots (else null)
ENTITY_KEYS = (
    "source",
    "grain",
    "key",
    "columns",
    "partition",
    "parent",
    "dates",
    "schema_evolution",
    "model",
    "description",
    "snapshot",
)
COLUMN_KEYS = ("type", "nullable", "rules", "description")
MART_KEYS = ("grain", "key", "columns", "dates", "model", "description")
MART_SETTINGS = ("partition", "sql", "touched")  # a mart's own, beside its contract


class DeclarationError(ValueError):
    """A dataset declaration that cannot be right: names the file, table and field."""

    exit_code = 2  # as every setting at fault (lakehouse.core.settings.ConfigError)


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
        return pl.Datetime(match[1], zone)
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


def keys_of(spec, allowed: tuple[str, ...], where: str) -> dict:
    if not isinstance(spec, dict):
        raise DeclarationError(f"{where}: expected a mapping, got {type(spec).__name__}")
    for key in spec:
        if key not in allowed:
            raise DeclarationError(f"{where}: unknown key {key!r}{did_you_mean(str(key), allowed)}")
    return spec


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


def _rules(spec, dtype: pl.DataType, where: str) -> dict:
    rules = dict(keys_of(spec or {}, RULES, where))
    for name in ("ge", "gt", "le", "lt"):
        if name in rules:
            rules[name] = _value_for(dtype, rules[name], f"{where}.{name}")
    if "between" in rules:
        bounds = rules["between"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise DeclarationError(f"{where}.between: give [low, high]")
        rules["between"] = tuple(_value_for(dtype, b, f"{where}.between") for b in bounds)
    if "isin" in rules:
        if not isinstance(rules["isin"], list) or not rules["isin"]:
            raise DeclarationError(f"{where}.isin: give a list of allowed values")
        rules["isin"] = [_value_for(dtype, v, f"{where}.isin") for v in rules["isin"]]
    if "regex" in rules:
        try:
            re.compile(str(rules["regex"]))
        except re.error as error:
            raise DeclarationError(f"{where}.regex: {error}") from None
    if "str_length" in rules:
        length = keys_of(rules["str_length"], ("min", "max"), f"{where}.str_length")
        rules["str_length"] = (length.get("min"), length.get("max"))
    text_rules = {"regex", "str_length"} & set(rules)
    if text_rules and dtype != pl.String:
        raise DeclarationError(f"{where}: {', '.join(sorted(text_rules))} needs a string column")
    return rules


def _dates(spec, where: str) -> tuple[date, date] | None:
    if spec is None:
        return None
    bounds = keys_of(spec, ("from", "to"), where)
    if set(bounds) != {"from", "to"}:
        raise DeclarationError(f"{where}: give both from and to (YYYY-MM-DD)")
    first, last = (_value_for(pl.Date(), bounds[k], f"{where}.{k}") for k in ("from", "to"))
    if first > last:
        raise DeclarationError(f"{where}: from {first} is after to {last}")
    return first, last


def _names(value, where: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DeclarationError(f"{where}: give a column name or a list of column names")
    return tuple(names)


def check_columns_exist(names, columns: dict, where: str) -> None:
    for name in names:
        if name not in columns:
            raise DeclarationError(
                f"{where}: {name!r} is not a declared column{did_you_mean(name, list(columns))}"
            )


def _partition(spec, columns: dict, where: str) -> Partition | None:
    if spec is None:
        return None
    spec = keys_of(spec, ("column", "from", "by"), where)
    if "column" not in spec or "from" not in spec:
        raise DeclarationError(f"{where}: give column (the new partition column) and from")
    source = _names(spec["from"], f"{where}.from")
    check_columns_exist(source, columns, f"{where}.from")
    by = spec.get("by", "month")
    if by not in PARTITION_GRAINS:
        raise DeclarationError(f"{where}.by: {by!r} is not one of {', '.join(PARTITION_GRAINS)}")
    if len(source) == 1 and not (
        columns[source[0]] == pl.Date or isinstance(columns[source[0]], pl.Datetime)
    ):
        raise DeclarationError(f"{where}.from: {source[0]} is {columns[source[0]]}, not a date")
    if len(source) == 3 and not all(columns[c].is_integer() for c in source):
        raise DeclarationError(f"{where}.from: year, month and day columns must be integers")
    if len(source) not in (1, 3):
        raise DeclarationError(f"{where}.from: one date column, or [year, month, day] columns")
    if spec["column"] in columns:
        raise DeclarationError(f"{where}.column: {spec['column']!r} is already a declared column")
    if problem := names.column_problem(spec["column"]):
        raise DeclarationError(f"{where}.column: {problem}")
    return Partition(spec["column"], source, by)


def _snapshot(spec, where: str) -> Snapshot | None:
    if spec is None or spec is False:
        return None
    spec = {} if spec is True else keys_of(spec, ("vanished", "group"), where)
    vanished = spec.get("vanished", "keep")
    if vanished not in VANISHED:
        raise DeclarationError(
            f"{where}.vanished: {vanished!r} is not one of {', '.join(VANISHED)}"
            f"{did_you_mean(str(vanished), VANISHED)}"
        )
    group = spec.get("group")
    if group is not None:
        try:
            re.compile(str(group))
        except re.error as error:
            raise DeclarationError(f"{where}.group: {error}") from None
    return Snapshot(vanished, None if group is None else str(group))


def _source_name(name, where: str) -> str:
    if problem := names.table_problem(name):
        raise DeclarationError(f"{where}: {problem}")
    return name


def table(name: str, spec, where: str, *, allowed=ENTITY_KEYS) -> Entity:
    """One entity (or mart contract) from its YAML mapping."""
    spec = keys_of(spec, allowed, where)
    if problem := names.table_problem(name):
        raise DeclarationError(f"{where}: {problem}")
    raw_columns = spec.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise DeclarationError(f"{where}.columns: declare at least one column")
    columns, nullable, rules, descriptions, zones = {}, set(), {}, {}, {}
    for column, column_spec in raw_columns.items():
        at = f"{where}.columns.{column}"
        if problem := names.column_problem(column):
            raise DeclarationError(f"{where}.columns: {problem}")
        if isinstance(column_spec, str):
            column_spec = {"type": column_spec}
        column_spec = keys_of(column_spec, COLUMN_KEYS, at)
        if "type" not in column_spec:
            raise DeclarationError(f"{at}: give its type")
        declared = parse_type(column_spec["type"], f"{at}.type")
        columns[column] = stored(declared)
        if isinstance(declared, pl.Datetime) and declared.time_zone not in (None, "UTC"):
            zones[column] = declared.time_zone
        if column_spec.get("nullable", False):
            nullable.add(column)
        if column_spec.get("rules"):
            rules[column] = _rules(column_spec["rules"], columns[column], f"{at}.rules")
        if column_spec.get("description"):
            descriptions[column] = str(column_spec["description"])
    if "key" not in spec:
        raise DeclarationError(f"{where}.key: give the business key (the grain's columns)")
    keys = _names(spec["key"], f"{where}.key")
    check_columns_exist(keys, columns, f"{where}.key")
    nullable_keys = sorted(set(keys) & nullable)
    if nullable_keys:
        raise DeclarationError(
            f"{where}: key column(s) {', '.join(nullable_keys)} cannot be nullable"
        )
    parent = None
    if spec.get("parent") is not None:
        p = keys_of(spec["parent"], ("column", "entity", "key"), f"{where}.parent")
        if set(p) != {"column", "entity", "key"}:
            raise DeclarationError(f"{where}.parent: give column, entity and key")
        check_columns_exist([p["column"]], columns, f"{where}.parent.column")
        parent = Parent(p["column"], p["entity"], p["key"])
    evolution = spec.get("schema_evolution", "add_columns")
    if evolution not in EVOLUTION:
        raise DeclarationError(
            f"{where}.schema_evolution: {evolution!r} is not one of {', '.join(EVOLUTION)}"
        )
    return Entity(
        name=name,
        columns=columns,
        keys=keys,
        partition=_partition(spec.get("partition"), columns, f"{where}.partition"),
        grain=str(spec.get("grain", "")),
        parent=parent,
        source=_source_name(spec.get("source", name), f"{where}.source"),
        nullable=frozenset(nullable),
        rules=rules,
        dates=_dates(spec.get("dates"), f"{where}.dates"),
        descriptions=descriptions,
        model=spec.get("model"),
        schema_evolution=evolution,
        where=where,
        zones=zones,
        snapshot=_snapshot(spec.get("snapshot"), f"{where}.snapshot"),
    )
