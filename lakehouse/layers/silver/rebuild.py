"""Silver reprocessing: backfill a date range, full refresh, replay of quarantined rows.

A backfill (``from_date``/``to_date``) rebuilds every partition the range overlaps, from all
the bronze rows whose partition date falls there; a full refresh does so for every
partition bronze holds (its range comes from the data, a year at a time). Rows silver holds
in those partitions that bronze no longer supports are deleted in the same commit.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger

from lakehouse.core import delta, fence
from lakehouse.core.runs import RunMode
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import Entity, Partition
from lakehouse.layers.silver import batch, conform, quarantine, snapshots
from lakehouse.layers.silver.merge import Replace, merge

SPAN = {"day": 1, "month": 31, "year": 366}  # days one partition value covers, at most
FLOOR = {
    "day": lambda d: d,
    "month": lambda d: d.replace(day=1),
    "year": lambda d: d.replace(month=1, day=1),
}


def _bronze_partition_bounds(
    bronze, entity: Entity, partition: Partition
) -> tuple[date, date] | None:
    """The lowest and highest partition date among bronze's rows (None: no row has one)."""
    dataset = bronze.to_pyarrow_dataset()
    sources = delta.frame(dataset.to_table(columns=list(partition.source)))
    days = sources.select(conform.raw_partition_value(entity, sources.schema)).to_series()
    first, last = days.min(), days.max()
    if not isinstance(first, date) or not isinstance(last, date):
        return None  # no row has one: the min and max of nothing are None
    return first, last


def partition_ranges(bronze, entity: Entity, mode: RunMode) -> list[tuple[date, date] | None]:
    """The partition ranges a backfill or full refresh rebuilds, a year at a time (None: all
    rows of an entity without partitions)."""
    partition = entity.partition
    if partition is None:
        return [None]
    floor = FLOOR[partition.by]
    if mode.date_range:
        first, last = (floor(d) for d in mode.date_range)
    else:
        bounds = _bronze_partition_bounds(bronze, entity, partition)
        if bounds is None:
            return []
        first, last = bounds
    return [
        (max(first, date(year, 1, 1)), min(last, date(year, 12, 31)))
        for year in range(first.year, last.year + 1)
    ]


def _pushdown(partition: Partition, schema: pa.Schema, first: date, last: date):
    """A filter bronze can apply while reading (a superset of the rows wanted: text dates
    compare as text, a day wider on each side for time zones), or None."""
    if len(partition.source) != 1:
        return None
    name = partition.source[0]
    column, dtype = pc.field(name), schema.field(name).type
    low, high = first - timedelta(days=1), last + timedelta(days=SPAN[partition.by] + 1)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return (column >= str(low)) & (column < str(high))
    if pa.types.is_date(dtype):
        return (column >= pa.scalar(low, dtype)) & (column < pa.scalar(high, dtype))
    return None


def bronze_rows_between(dataset, entity: Entity, dates: tuple[date, date] | None) -> pl.DataFrame:
    """Every row of the bronze ``dataset`` whose partition date is within ``dates`` (None:
    every row)."""
    if dates is None:
        return delta.frame(dataset.to_table())
    if entity.partition is None:
        raise ValueError(f"silver/{entity.name} has no partition: it is rebuilt whole")
    where = _pushdown(entity.partition, dataset.schema, *dates)
    rows = delta.frame(delta.read_where(dataset, where))
    day = conform.raw_partition_value(entity, rows.schema)
    return rows.filter(day.is_between(*dates))


def rebuild(entity, lake: Location, run_id, mode, parent_keys, policy) -> list[delta.WriteResult]:
    """Backfill or full refresh of ``silver/<entity>`` (see the module docstring)."""
    bronze, target = lake.child("bronze", entity.source), lake.child("silver", entity.name)
    quarantined = lake.child("_quarantine", entity.name)
    bronze_table = delta.open_table(bronze)
    if bronze_table is None:
        logger.warning(
            f"silver/{entity.name}: no bronze/{entity.source} table yet: nothing to rebuild"
        )
        return []
    ranges = partition_ranges(bronze_table, entity, mode)
    if not ranges:
        logger.warning(
            f"silver/{entity.name} {mode}: no bronze row has a partition date: nothing rebuilt"
        )
    app_id = f"silver:{entity.name}:rebuild"
    results, rows_read = [], 0
    dataset = bronze_table.to_pyarrow_dataset()  # opened once for every range
    for dates in ranges:
        raw = bronze_rows_between(dataset, entity, dates)
        rows_read += raw.height
        raw = snapshots.diff(raw, entity, None).changed  # later snapshots' repeats go
        valid, rejected = batch.validated(raw, entity, parent_keys, policy)
        if entity.snapshot:
            valid = snapshots.rebuilt(raw, valid, entity)
        rows = quarantine.quarantine_rows(rejected, f"silver/{entity.name}", run_id)
        is_new = quarantine.is_new(quarantined, rows)  # judged before: kept once
        span = f"{entity.partition.column} {dates[0]}..{dates[1]}" if dates else "all rows"
        if mode.plan:
            logger.info(f"PLAN silver/{entity.name} {mode}: {span}: {raw.height:,} bronze rows")
            continue
        new_rejects = rows.filter(is_new)
        mark = {"rebuilt": span}
        if new_rejects.height:
            number = delta.last_batch(delta.open_table(quarantined), app_id) + 1
            properties = delta.commit_properties(app_id, number, mark, run_id)
            results.append(quarantine.append(quarantined, new_rejects, properties))
        number = delta.last_batch(delta.open_table(target), app_id) + 1
        properties = delta.commit_properties(app_id, number, mark, run_id)
        replace = Replace(entity.partition_column, dates)
        results.append(merge(target, entity, valid, properties, replace=replace))
        logger.info(
            f"silver/{entity.name} {mode} {span}: {raw.height} bronze rows, {valid.height} valid, "
            f"{new_rejects.height} newly quarantined"
        )
    if ranges and not rows_read:
        logger.warning(f"silver/{entity.name} {mode}: no bronze row in the range: nothing rebuilt")
    return results


def replay(
    entity: Entity, lake: Location, run_id: str, parent_keys: pl.Series | None = None
) -> list[delta.WriteResult]:
    """Re-process quarantined rows after a contract or upstream fix (``--inputs '{"replay":
    true}'``): rows valid now are merged into silver and marked ``replayed_at``; the others
    stay as they were. Superseded duplicates are never replayed. A replay killed between its
    MERGE and its marking is simply run again: the MERGE changes nothing the second time."""
    quarantined, target = lake.child("_quarantine", entity.name), lake.child("silver", entity.name)
    table = delta.open_table(quarantined)
    if table is None:
        return []
    delta.add_missing_columns(table, quarantine.QUARANTINE_SCHEMA.to_arrow())
    table.update_incremental()
    pending = delta.frame(table.to_pyarrow_table()).filter(
        (pl.col("rule") != "duplicate") & pl.col("replayed_at").is_null()
    )
    if pending.is_empty():
        logger.info(f"silver/{entity.name}: nothing to replay")
        return []
    raw = pl.DataFrame([json.loads(text) for text in pending["row"]], infer_schema_length=None)
    raw = raw.select(pl.all().cast(pl.String)).with_columns(
        _source_file=pending["source_file"],
        _commit_version=pending["bronze_version"],
        _row_key=pending["row_key"],
    )
    valid, still_invalid = batch.validated(raw, entity, parent_keys)
    app_id = f"silver:{entity.name}:replay"
    number = delta.last_batch(delta.open_table(target), app_id) + 1
    properties = delta.commit_properties(app_id, number, {"replayed": valid.height}, run_id)
    results = [merge(target, entity, valid, properties)]
    if valid.height:
        marks = pa.table(
            {
                "row_key": valid["_row_key"].to_arrow(),
                "replayed_at": pa.array(
                    [datetime.now(UTC)] * valid.height, pa.timestamp("us", "UTC")
                ),
            }
        )
        fence.check()
        delta.merger(table, marks, ["row_key"]).when_matched_update(
            {"replayed_at": "s.replayed_at"}
        ).execute()
        table.update_incremental()
        results.append(
            delta.WriteResult(
                quarantined.name, quarantined.uri, "replayed", valid.height, table.version()
            )
        )
    logger.info(
        f"silver/{entity.name}: replayed {pending.height} quarantined rows: {valid.height} merged, "
        f"{still_invalid.height} still invalid"
    )
    return results
