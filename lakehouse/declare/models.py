"""The shape of ``conf/datasets/*.yml``: typed models of what a dataset file may say.

The models check the shape (known keys, required keys, choices, lists and mappings) and
carry each key's documentation: the JSON Schema editors use (``schemas/``) and the
declaration reference (``docs/reference/datasets.md``) are generated from them
(``python -m lakehouse.declare.schema``). What a declaration means (a type that parses, a
bound in its column's type, a key that names a declared column) is checked after, in
``lakehouse.declare.declaration``. ``parsed`` turns the first mistake pydantic finds into
one ``DeclarationError`` line naming the file and key path, with a did-you-mean.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    WithJsonSchema,
)

from lakehouse.core.shapes import Shape, checked


class DeclarationError(ValueError):
    """A dataset declaration that cannot be right: names the file, table and field."""

    exit_code = 2  # as every setting at fault (lakehouse.core.settings.ConfigError)


def _one_or_many(value):
    return [value] if isinstance(value, str) else value


Names = Annotated[
    list[str],
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
    Field(min_length=1),
]
Bound = Annotated[
    Any,
    WithJsonSchema({"type": ["number", "string"]}),
    Field(description="In the column's type: a number, a decimal, a date or a timestamp."),
]


class StrLength(Shape):
    """Bounds on a text's length, in characters."""

    min: int | None = Field(None, ge=0, description="Fewest characters.")
    max: int | None = Field(None, ge=0, description="Most characters.")


class Rules(Shape):
    """Row rules on one column; a row that breaks one goes to the quarantine with the rule."""

    ge: Bound = None
    gt: Bound = None
    le: Bound = None
    lt: Bound = None
    between: list[Bound] | None = Field(
        None, min_length=2, max_length=2, description="[low, high], both included."
    )
    isin: list[Bound] | None = Field(None, min_length=1, description="The allowed values.")
    regex: str | None = Field(None, description="A regular expression the text must match.")
    str_length: StrLength | None = Field(None, description="Bounds on the text's length.")


class Column(Shape):
    """One column: its type, whether it may be empty, its row rules. ``name: int64`` is
    short for ``name: {type: int64}``."""

    type: str = Field(
        description="string, int8, int16, int32, int64, float32, float64, bool, date, "
        "decimal(P,S), timestamp, timestamptz, or timestamp[us|ms|ns] with a zone: "
        "timestamp[ms, Europe/Paris] reads text without an offset in that zone (stored in UTC)."
    )
    nullable: bool = Field(False, description="Whether the column may be empty.")
    rules: Rules | None = Field(None, description="Row rules (see Rules).")
    description: str | None = Field(None, description="What the column holds.")


def _column(value):
    return {"type": value} if isinstance(value, str) else value


ColumnSpec = Annotated[Column, BeforeValidator(_column, json_schema_input_type=str | Column)]


class Partition(Shape):
    """A date partition column derived from declared columns."""

    column: str = Field(description="The new partition column's name (not a declared column).")
    from_: Names = Field(
        alias="from",
        description="One date or timestamp column, or three integer columns [year, month, day].",
    )
    by: Literal["day", "month", "year"] = Field("month", description="The date truncated to.")


class Parent(Shape):
    """A foreign key: a row whose ``column`` is no ``key`` of silver ``entity`` is an orphan."""

    column: str = Field(description="The declared column holding the parent's key.")
    entity: str = Field(description="The parent silver entity.")
    key: str = Field(description="The parent's key column.")


class Snapshot(Shape):
    """The source delivers full snapshots: rows are diffed on the key by a hash of their values."""

    vanished: Literal["keep", "soft_delete", "delete"] = Field(
        "keep",
        description="A key missing from the newest snapshot: keep it, flag it (_deleted_at) "
        "or delete it.",
    )
    group: str | None = Field(
        None,
        description="A regular expression: the files whose names give the same first match "
        "are one snapshot (default: each file is one).",
    )


def _snapshot(value):
    return {} if value is True else None if value is False else value


SnapshotSpec = Annotated[
    Snapshot | None, BeforeValidator(_snapshot, json_schema_input_type=bool | Snapshot | None)
]


class Dates(Shape):
    """The dates the table's rows fall in; a row outside is quarantined (out_of_range)."""

    from_: date = Field(alias="from", description="First date, YYYY-MM-DD.")
    to: date = Field(description="Last date, YYYY-MM-DD.")


class Contract(Shape):
    """What a table promises: its grain, key and columns (a silver entity or a gold mart)."""

    grain: str = Field("", description="One sentence: what one row is.")
    key: Names = Field(
        description="The business key, the column (or list of columns) that tells rows apart."
    )
    columns: dict[str, ColumnSpec] = Field(
        min_length=1, description="Column name -> its type, or a mapping (see Column)."
    )
    dates: Dates | None = Field(
        None,
        description="Every date and timestamp column without a range rule of its own must be "
        "within these dates (see Dates).",
    )
    model: str | None = Field(
        None,
        description="Dotted path (importable from pipelines/) of a pandera DataFrameModel or "
        "DataFrameSchema, or of a function (frame) -> boolean Series or expression (True: a "
        "good row), applied besides the rules; its failures are quarantined as contract.",
    )
    description: str | None = Field(None, description="What the table holds.")


class Entity(Contract):
    """A silver table: bronze rows typed, checked, deduplicated and merged on the key."""

    source: str | None = Field(None, description="The bronze table it reads (default: its name).")
    partition: Partition | None = Field(
        None, description="A date partition column derived from declared ones (see Partition)."
    )
    parent: Parent | None = Field(
        None,
        description="A foreign key: rows without a parent are quarantined as orphan (and "
        "replayable); parents are refreshed first (see Parent).",
    )
    schema_evolution: Literal["add_columns", "fail"] = Field(
        "add_columns",
        description="add_columns: new landed columns join bronze (silver keeps its declared "
        "ones); fail: a file with an undeclared column is a bad file, recorded and left in place.",
    )
    snapshot: SnapshotSpec = Field(
        None, description="true, or the snapshot settings, when each file is a full snapshot."
    )


class Mart(Contract):
    """A gold table: one query over silver entities, with its output contract."""

    partition: str | None = Field(
        None,
        description="An output column whose values are replaced one by one "
        "(default: rows are upserted on the key).",
    )
    sql: str | None = Field(
        None,
        description="The .sql file of its query, relative to the project folder (default: "
        "the function of its name in mart_module).",
    )
    touched: str | None = Field(
        None,
        description="Override: SQL over changed_<entity> tables returning the partition "
        "values or keys a change touches (the engine derives it from the query otherwise).",
    )


Source = Annotated[
    dict[str, Any],
    Field(description="A source plugin: its format (csv, parquet, postgres, ...) and options."),
]


class Dataset(Shape):
    """One file under conf/datasets: a domain's sources, silver entities and gold marts."""

    enabled: bool = Field(True, description="false: the dataset is read and checked, but not run.")
    description: str | None = Field(None, description="What the dataset is.")
    sources: dict[str, Source] = Field(
        default_factory=dict,
        description="Bronze: source name -> plugin (files under landing_root/<name>/ for file "
        "formats). bronze.yml's own sources are added, and win for a name both give.",
    )
    entities: dict[str, Entity] = Field(
        default_factory=dict, description="Silver: entity name -> its declaration."
    )
    marts: dict[str, Mart] = Field(
        default_factory=dict, description="Gold: mart name -> its contract and query."
    )
    mart_module: str | None = Field(
        None, description="The module under pipelines/ holding marts written as functions."
    )


def parsed(data, path: Path) -> Dataset:
    """``data`` (a dataset file's YAML) as a ``Dataset``, or the first mistake in one line."""
    return checked(Dataset, data, str(path), DeclarationError)
