"""The silver MERGE: upsert typed rows on the entity's key, reading only their partitions.

Rows of keys the target lacks are appended just before (``split_new``, ``append_new``): a
MERGE reads every file of the partitions its rows touch, which for a fact table growing
by appends costs more each day, and for an unpartitioned dimension means the whole table
in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
from deltalake import write_deltalake

from lakehouse.core import delta, sqltext
from lakehouse.core.frames import read_by_file
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import DELETED_AT, Entity
from lakehouse.layers.silver.snapshots import VANISHED, declared


@dataclass(frozen=True)
class Replace:
    """The target rows a rebuild replaces: partition values within ``dates`` (None: all)."""

    column: str | None = None
    dates: tuple[date, date] | None = None

    def predicate(self, alias: str | None = None) -> str | None:
        if self.dates is None or self.column is None:
            return None
        column = sqltext.quoted(self.column, alias)
        return f"{column} >= '{self.dates[0]}' AND {column} <= '{self.dates[1]}'"


def merge(
    target: Location,
    entity: Entity,
    rows: pl.DataFrame,
    properties,
    replace: Replace | None = None,
) -> delta.WriteResult:
    """Upsert ``rows`` on the business key, reading only the partitions they fall in.

    With ``replace`` (a backfill or full refresh), the target rows it covers that the source
    no longer has are deleted in the same commit.
    """
    data, table, partition = _source_and_target(target, entity, rows)
    before = table.version()
    delta.check_not_committed(table, properties)
    target_, source_ = (lambda c: sqltext.quoted(c, "t")), (lambda c: sqltext.quoted(c, "s"))
    touched = None  # the partitions the rows fall in: the MERGE reads only those
    if entity.partition_column and rows.height:
        values = rows[entity.partition_column].to_list()
        touched = sqltext.in_list(entity.partition_column, values, "t")
    compared = [c for c in entity.schema.names() if c not in entity.keys]
    compared = [c for c in compared if c != entity.partition_column]
    changed = " OR ".join(f"({target_(c)} IS DISTINCT FROM {source_(c)})" for c in compared)
    metrics = {}
    if rows.height and not table.file_uris() and VANISHED not in data.column_names:
        # nothing to match in an empty table: a first load appends (same commit, same rows)
        write_deltalake(
            table,
            data,
            mode="append",
            partition_by=partition,
            commit_properties=properties,
            writer_properties=delta.parquet_settings(data),
        )
        metrics = {"num_target_rows_inserted": data.num_rows}
    elif rows.height:
        merger = delta.merger(table, data, entity.keys, properties, also=touched)
        merger = _when_vanished(merger, entity) if VANISHED in data.column_names else merger
        live = f"NOT s.{VANISHED}" if VANISHED in data.column_names else None
        update = " AND ".join(f"({p})" for p in (live, changed) if p) or None
        skip = [VANISHED] if live else None
        merger = merger.when_matched_update_all(predicate=update, except_cols=skip)
        merger = merger.when_not_matched_insert_all(predicate=live, except_cols=skip)
        if replace is not None:
            merger = merger.when_not_matched_by_source_delete(replace.predicate("t"))
        metrics = merger.execute()
    elif replace is not None:
        table.delete(replace.predicate(), commit_properties=properties)
    table.update_incremental()
    if table.version() == before:  # nothing changed: still record the batch as done
        delta.record_watermark_only(table, properties)
    changes = ("inserted", "updated", "deleted")
    written = sum(metrics.get(f"num_target_rows_{change}", 0) for change in changes)
    return delta.WriteResult(target.name, target.uri, "merge", written, table.version())


def split_new(
    target: Location,
    entity: Entity,
    valid: pl.DataFrame,
    current: pl.DataFrame | None = None,
    held: dict[str, pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows of keys the target holds no row of, the others). The first can be
    appended: only the others need the MERGE, which reads every file of the partitions its
    rows fall in (of the whole table, unpartitioned). ``current``: the target's keys, when
    already read (a snapshot entity's state); else the keys of the rows' partitions are read,
    key columns only. ``held``: those keys kept by data file from the batch before (a driver
    committing an entity's batches in turn): only the files added since are read, and the
    partitions this batch does not touch are let go. An empty target takes every row in the
    batch's one commit instead."""
    if valid.is_empty():
        return valid, valid
    keys = list(entity.keys)
    if current is None:
        table = delta.open_table(target)
        if table is None or not table.file_uris():
            return valid.head(0), valid
        current = _keys_of_partitions(table, entity, valid, {} if held is None else held)
    # the batch's keys that the target holds: hashed on the batch side, usually the small one
    known = current.select(keys).join(valid.select(keys), on=keys, how="semi", nulls_equal=True)
    if known.is_empty():  # every key new (a first load, most fact batches): nothing copied
        return valid, valid.head(0)
    marked = valid.join(
        known.with_columns(__known=pl.lit(True)), on=keys, how="left", nulls_equal=True
    )
    is_new = pl.col("__known").is_null()
    return marked.filter(is_new).drop("__known"), marked.filter(~is_new).drop("__known")


def _keys_of_partitions(table, entity: Entity, valid: pl.DataFrame, held: dict) -> pl.DataFrame:
    """The target's keys in the partitions ``valid`` falls in (the whole table, unpartitioned),
    the files of other partitions not opened."""
    keys = list(entity.keys)
    touched = None
    if entity.partition_column:
        values = valid.get_column(entity.partition_column).drop_nulls().unique().to_list()
        if not values:
            return valid.select(keys).head(0)
        touched = [(entity.partition_column, "in", [_partition_text(v) for v in values])]
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=touched)
    return read_by_file(dataset, keys, held)


def _partition_text(value) -> str:
    """A partition value as the Delta log writes it (a date as ``2031-06-01``)."""
    return value.isoformat() if isinstance(value, date) else str(value)


def append_new(
    target: Location,
    entity: Entity,
    rows: pl.DataFrame,
    properties,
    run_id: str,
    last: bool = False,
) -> delta.WriteResult:
    """Append rows whose keys the target holds no row of, ahead of the batch's MERGE.

    A commit of the run (it carries the run id) but not the batch's: neither its watermark
    nor its app transaction (one of its own, ``delta.ahead_properties``). Killed after it,
    the batch is done again, and the rerun finds these rows already in silver (for a
    snapshot entity, by their row hash). ``last``: the batch has nothing to merge, and this
    append is its commit, with its watermark and app transaction."""
    data, table, partition = _source_and_target(target, entity, rows)
    delta.check_not_committed(table, properties)  # the batch is not done, the lease held
    write_deltalake(
        table,
        data,
        mode="append",
        partition_by=partition,
        commit_properties=(
            properties if last else delta.ahead_properties(run_id, properties, "append-new")
        ),
        writer_properties=delta.parquet_settings(data),
    )
    table.update_incremental()
    return delta.WriteResult(target.name, target.uri, "append", data.num_rows, table.version())


def _source_and_target(target: Location, entity: Entity, rows: pl.DataFrame):
    """(the rows as the merge or append source, the target table, its partition columns);
    the table is created, or given the columns it lacks, from the rows' schema."""
    if DELETED_AT in entity.schema and DELETED_AT not in rows.columns:
        rows = rows.with_columns(pl.lit(None, entity.schema[DELETED_AT]).alias(DELETED_AT))
    source = rows.select(entity.schema.names() + [c for c in (VANISHED,) if c in rows.columns])
    schema = source.drop(VANISHED, strict=False).to_arrow().schema
    partition = [entity.partition_column] if entity.partition_column else None
    table = delta.ensure_table(target, schema, partition)
    if delta.add_missing_columns(table, schema):  # e.g. the row hash, on a table made before it
        table.update_incremental()
    return source.to_arrow(), table, partition


def _when_vanished(merger, entity: Entity):
    """Keys gone from a snapshot source: deleted, or flagged with the time they vanished."""
    snapshot = declared(entity)
    if snapshot.vanished == "delete":
        return merger.when_matched_delete(predicate=f"s.{VANISHED}")
    if snapshot.vanished == "soft_delete":
        return merger.when_matched_update(
            {DELETED_AT: f"s.{DELETED_AT}"}, predicate=f"s.{VANISHED}"
        )
    return merger
