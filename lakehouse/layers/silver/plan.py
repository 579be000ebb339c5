"""Planning a silver batch: which bronze rows a batch of an entity holds, and reading them.

A batch is the bronze commits after the entity's watermark (``Batch``, watermark kind
``version``) or a window of a monotone bronze column (``ColumnBatch``, kind ``column``),
at most ``batch_rows`` rows unless one bronze commit alone has more, never splitting a commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from lakehouse.core import delta, delta_log, row_hashes
from lakehouse.core.settings import ConfigError
from lakehouse.core.shapes import Shape, checked
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import ROW_HASH, Entity
from lakehouse.layers.silver import snapshots


@dataclass(frozen=True)
class Batch:
    """Bronze versions ``(after, through]`` that batch ``number`` of an entity processes."""

    number: int
    after: int
    through: int
    quarantined: bool  # the quarantine commit of this batch already exists

    @property
    def watermark(self) -> dict:
        return {"bronze_after": self.after, "bronze_through": self.through}

    def __str__(self) -> str:
        return f"batch {self.number}, bronze versions {self.after + 1}..{self.through}"


@dataclass(frozen=True)
class ColumnBatch:
    """Bronze rows whose ``column`` is within ``[since, upto]`` (``since`` None: from the start)."""

    number: int
    column: str
    since: str | None
    upto: str
    quarantined: bool
    bronze_version: int | None = None  # the bronze snapshot read (None: the latest)

    @property
    def watermark(self) -> dict:
        mark = {"column": self.column, "since": self.since, "max": self.upto}
        return mark | {"bronze_through": self.bronze_version}

    def __str__(self) -> str:
        return f"batch {self.number}, {self.column} {self.since or '...'}..{self.upto}"


class Watermark(Shape):
    """How silver finds the bronze rows it has not processed (``watermark`` in silver.yml)."""

    kind: Literal["version", "column"] = Field(
        "version",
        description="version: the bronze commits after the last batch; column: a window of "
        "a monotone bronze column.",
    )
    column: str | None = Field(
        None, description="Kind column: the monotone bronze column (_ingested_at, a date)."
    )
    lookback_days: int = Field(
        0,
        ge=0,
        strict=True,
        description="A whole number of days >= 0: kind column re-reads rows this many days "
        "behind the last maximum.",
    )
    columns: dict[str, str] | None = Field(
        None, description="Kind column: entity -> its own column, overriding column."
    )

    @model_validator(mode="after")
    def _column_named(self) -> Watermark:
        if self.kind == "column" and not self.column:
            raise ValueError("kind column needs a 'column' (e.g. _ingested_at)")
        return self

    def column_for(self, entity: str) -> str:
        column = (self.columns or {}).get(entity, self.column)
        if column is None:  # kind version: no column to read
            raise ValueError(f"watermark kind {self.kind} names no column (entity {entity})")
        return column

    @classmethod
    def from_config(cls, spec, where: str = "conf/pipelines/silver.yml run.config.watermark"):
        return checked(cls, spec, where, ConfigError)


def _rows_per_version(bronze_table, after: int, through: int) -> list[tuple[int, int, list]]:
    """(version, rows appended, landing files) of the bronze commits in ``(after, through]``,
    oldest first."""
    sizes = []
    for commit in bronze_table.history(limit=through - after):
        if after < commit["version"] <= through:
            mark = json.loads(commit.get(delta.WATERMARK_KEY, "{}"))
            files = [f["name"] for f in mark.get("files", [])]
            sizes.append((commit["version"], int(mark.get("rows", 0)), files))
    return sorted(sizes)


def batch_rows(entity: Entity, max_cells: int) -> int:
    """Bronze rows per batch of ``entity``: ``max_cells`` cells, its columns wide. Memory
    follows cells, not rows: a 5-column dimension takes three times the rows of a
    16-column fact table."""
    return max(1, max_cells // len(entity.columns))


SLIVER = 8  # a commit of at most 1/8 of a batch joins the batch before it


def _through(sizes: list[tuple[int, int, list]], max_rows: int, entity: Entity) -> int:
    """The last version of the longest prefix of ``sizes`` within ``max_rows`` (at least one).

    A small commit (at most 1/``SLIVER`` of ``max_rows``) still joins a batch it would take
    up to 1/``SLIVER`` over the bound: bronze tasks end in such remainders, and each would
    otherwise be a batch of its own, with a MERGE of its own.
    For a snapshot source whose vanished keys are acted on, a cut never splits a snapshot:
    the commits that go on with the last one's snapshot come too.
    """
    whole = entity.snapshot is not None and entity.snapshot.vanished != "keep"
    total, last, groups = 0, sizes[0][0], set[str]()
    slack = max_rows // SLIVER
    for version, rows, files in sizes:
        these = {snapshots.group_of(f, entity) for f in files} if whole else set()
        fits = total + rows <= max_rows or (rows <= slack and total + rows <= max_rows + slack)
        if total and not fits and not (these & groups):
            break
        total, last, groups = total + rows, version, these
    return last


def plan_batch(
    bronze: Location,
    target: Location,
    quarantine: Location,
    app_id: str,
    max_cells: int,
    entity: Entity,
    bronze_table=None,
) -> Batch | None:
    """The next batch for ``app_id``, or None when bronze has nothing new.

    A batch holds at most ``batch_rows(entity, max_cells)`` bronze rows, unless one bronze
    commit alone has more.
    """
    bronze_table = bronze_table or delta.open_table(bronze)
    if bronze_table is None:
        return None
    done = delta.last_watermark(delta.open_table(target), app_id) or {
        "batch": 0,
        "bronze_through": -1,
    }
    if done.get("bronze_through") is None:  # last advanced by an older column watermark
        raise ConfigError(
            f"silver/{target.name} was last advanced by a column watermark that did not record "
            "its bronze version, so kind: version cannot tell where to go on: set kind back "
            "to column, or rebuild it with --inputs '{\"full_refresh\": true}'"
        )
    current = bronze_table.version()
    if current <= done["bronze_through"]:  # so no batch is pending either: it would cover
        return None  # bronze versions after the watermark, and there are none
    pending = delta.last_watermark(delta.open_table(quarantine), app_id)
    if pending and pending["batch"] == done["batch"] + 1:
        return Batch(pending["batch"], done["bronze_through"], pending["bronze_through"], True)
    committed = Batch(done["batch"], -1, done["bronze_through"], True)
    return next(iter(batches_after(committed, bronze_table, max_cells, entity)), None)


def batches_after(done: Batch, bronze_table, max_cells: int, entity: Entity) -> list[Batch]:
    """The batches that follow ``done`` (committed, or planned to be before them) up to
    bronze's newest version, cut from one read of bronze's log: a run plans all its batches
    of an entity ahead."""
    current = bronze_table.version()
    sizes = _rows_per_version(bronze_table, done.through, current) if current > done.through else []
    following = []
    while sizes:
        through = _through(sizes, batch_rows(entity, max_cells), entity)
        done = Batch(done.number + 1, done.through, through, False)
        following.append(done)
        sizes = [size for size in sizes if size[0] > through]
    return following


def _shifted(value: str, days: int) -> str:
    """``value`` (an ISO date or timestamp, as the watermark stores it) minus ``days``."""
    moment = datetime.fromisoformat(value) - timedelta(days=days)
    return moment.date().isoformat() if len(value) == 10 else moment.isoformat()


def _as_column_value(value: str, dtype: pa.DataType):
    return (
        pa.scalar(datetime.fromisoformat(value), dtype) if pa.types.is_timestamp(dtype) else value
    )


def _newest(values: pl.Series) -> str | None:
    """The largest value that is a real date or time (text as landed may hold '1995-02-30')."""
    if values.dtype == pl.String:
        dates = values.str.to_date("%Y-%m-%d", strict=False)
        values = (
            dates if dates.null_count() < values.len() else values.str.to_datetime(strict=False)
        )
    newest = values.max()
    if newest is None:
        return None
    if not isinstance(newest, date):  # datetime is a date too
        raise TypeError(f"{values.name}: {newest!r} is not a date or a time")
    return newest.isoformat()


def plan_column_batch(
    bronze: Location, target: Location, quarantine: Location, app_id: str, mark: Watermark
) -> ColumnBatch | None:
    """The rows from the last maximum of the column, less the lookback, to its maximum now.

    Rows arriving later with a value below that window are not seen: that is what a column
    watermark means; widen ``lookback_days`` for late data.
    """
    table = delta.open_table(bronze)
    if table is None:
        return None
    done = delta.last_watermark(delta.open_table(target), app_id) or {"batch": 0, "max": None}
    pending = delta.last_watermark(delta.open_table(quarantine), app_id)
    if pending and pending["batch"] == done["batch"] + 1:
        return ColumnBatch(
            pending["batch"],
            pending["column"],
            pending["since"],
            pending["max"],
            True,
            pending.get("bronze_through"),
        )
    column = mark.column_for(bronze.uri.rsplit("/", 1)[-1])
    if column not in table.schema().to_arrow().names:
        raise ConfigError(
            f"conf/pipelines/silver.yml run.config.watermark: column {column!r} is not a "
            f"column of {bronze.name}"
        )
    newest = done["max"] if "max" in done else _newest_through(bronze, column, done)
    since = _shifted(newest, mark.lookback_days) if newest else None
    dataset = table.to_pyarrow_dataset()
    dtype = dataset.schema.field(column).type
    window = None if since is None else pc.field(column) >= _as_column_value(since, dtype)
    upto = _newest(delta.frame(delta.read_where(dataset, window, [column])).to_series())
    if upto is None:
        return None
    return ColumnBatch(done["batch"] + 1, column, since, upto, False, table.version())


def _newest_through(bronze: Location, column: str, done: dict) -> str | None:
    """The column's newest value in the bronze rows a version watermark has processed: where
    a switch from ``kind: version`` to ``kind: column`` goes on (nothing skipped, nothing
    merged twice beyond the lookback)."""
    if done["bronze_through"] < 0:
        return None
    table = existing(bronze, done["bronze_through"])
    values = table.to_pyarrow_dataset().to_table(columns=[column])
    return _newest(delta.frame(values).to_series())


def bronze_rows(bronze: Location, batch: Batch | ColumnBatch, table=None) -> pl.DataFrame:
    """The batch's bronze rows (version batches also carry ``_commit_version``); ``table``:
    bronze opened at or after the batch's last version (None: opened here)."""
    if isinstance(batch, ColumnBatch):
        dataset = existing(bronze, batch.bronze_version).to_pyarrow_dataset()
        dtype = dataset.schema.field(batch.column).type
        column = pc.field(batch.column)
        window = column <= _as_column_value(batch.upto, dtype)
        if batch.since is not None:
            window = window & (column >= _as_column_value(batch.since, dtype))
        return delta.frame(delta.read_where(dataset, window))
    table = table or existing(bronze)
    files = delta_log.appended_files(bronze, table, batch.after, batch.through)
    if files is not None:  # plain appends: their Parquet files read as they are, 2-3x faster
        return _read_appended(bronze, table, files)
    changes = table.load_cdf(starting_version=batch.after + 1, ending_version=batch.through)
    rows = delta.frame(pa.table(changes))
    return rows.filter(pl.col("_change_type") == "insert").drop("_change_type", "_commit_timestamp")


def bronze_hashes(bronze: Location, batch: Batch, table, entity: Entity) -> pl.Series | None:
    """The row hashes of a version batch's bronze rows as bronze kept them beside its data
    files (``row_hashes``), in the order ``bronze_rows`` reads the rows; None when a file has
    none for ``entity``'s columns of the types bronze holds them in (then read the rows)."""
    files = delta_log.appended_files(bronze, table, batch.after, batch.through)
    schema = _polars_schema(table)
    if not files or any(c not in schema for c in entity.columns):
        return None
    root = bronze.uri.rstrip("/") + "/"
    if not all(uri.startswith(root) for _, uri, _ in files):
        return None  # a data file outside the table's folder
    relatives = [uri[len(root) :] for _, uri, _ in files]
    covers = row_hashes.signature(schema, list(entity.columns))
    found = row_hashes.read(bronze, relatives, entity.name, covers)
    return None if found is None else pl.concat(found).alias(ROW_HASH)


def _polars_schema(table) -> pl.Schema:
    """The table's columns as Polars types them when it reads the table's files."""
    return delta.frame(pa.schema(table.schema().to_arrow()).empty_table()).schema


def existing(bronze: Location, version: int | None = None):
    """The bronze table a batch was planned from (it exists: planning read it)."""
    table = delta.open_table(bronze, version=version)
    if table is None:
        raise FileNotFoundError(f"{bronze.name}: no Delta table at {bronze.uri}")
    return table


def _read_appended(
    bronze: Location, table, files: list[tuple[int, str, dict[str, str | None]]]
) -> pl.DataFrame:
    """The rows of bronze data files with the version that added each (``_commit_version``)
    and their partition values (a Parquet source's lineage), every column of the table's
    schema present (null where a file predates it)."""
    schema = _polars_schema(table)
    frames = [pl.DataFrame(schema=schema)]
    for version, uri, partition in files:
        with bronze.fs.open(uri, "rb") as handle:
            rows = pl.read_parquet(handle)
        values = [_partition_value(v, schema[c]).alias(c) for c, v in partition.items()]
        frames.append(
            rows.with_columns(*values, pl.lit(version, pl.UInt64).alias("_commit_version"))
        )
    return pl.concat(frames, how="diagonal_relaxed")


def _partition_value(text: str | None, dtype: pl.DataType) -> pl.Expr:
    """A partition value as the Delta log writes it (text), typed as its column."""
    value = pl.lit(text, pl.String)
    if isinstance(dtype, pl.Datetime):
        return value.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
    return value.cast(dtype)
