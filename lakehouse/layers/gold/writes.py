"""How a mart's recomputed parts reach its Delta table, each in one commit: the whole mart
(full refresh), its partitions replaced, or its keys upserted with vanished keys deleted.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.core import delta, sqltext
from lakehouse.core.storage import Location
from lakehouse.layers.gold.changes import CDF_COLUMNS, SilverSnapshot, _changed_rows  # noqa: F401

GONE = "_lakehouse_gone"  # marks a recomputed key that no longer has a row (upsert deletes it)


def _parts_frame(values: tuple, columns: list[str], schema) -> pl.DataFrame:
    """Partition values or keys (tuples for several columns) as a frame of ``schema``."""
    rows = [list(v) if len(columns) > 1 else [v] for v in values]
    return pl.DataFrame(rows, schema=columns, orient="row").cast(schema)


def overwrite(
    location: Location, data: pa.Table, partition: str | None, properties
) -> delta.WriteResult:
    """Replace the whole mart with ``data`` in one commit (full refresh)."""
    table = delta.ensure_table(location, data.schema, [partition] if partition else None)
    delta.check_not_committed(table, properties)
    write_deltalake(
        table,
        data,
        mode="overwrite",
        commit_properties=properties,
        writer_properties=delta.parquet_settings(data),
    )
    table.update_incremental()
    return delta.WriteResult(
        location.name, location.uri, "overwrite", data.num_rows, table.version()
    )


def replace_partitions(
    location: Location, data: pa.Table, column: str, values: list, properties
) -> delta.WriteResult:
    """Replace the ``column IN values`` partitions of the mart with ``data`` in one commit."""
    table = delta.ensure_table(location, data.schema, [column])
    delta.check_not_committed(table, properties)
    write_deltalake(
        table,
        data,
        mode="overwrite",
        predicate=sqltext.in_list(column, values),
        partition_by=[column],
        commit_properties=properties,
        writer_properties=delta.parquet_settings(data),
    )
    table.update_incremental()
    return delta.WriteResult(
        location.name, location.uri, "replace_partitions", data.num_rows, table.version()
    )


def upsert(
    location: Location, data: pa.Table, keys: list[str], properties, touched: tuple = ()
) -> delta.WriteResult:
    """Insert or update ``data`` on ``keys``, and delete the ``touched`` keys (values, or
    tuples of values) that have no row in it any more, in one commit."""
    table = delta.ensure_table(location, data.schema)
    recomputed = delta.frame(data)
    asked = _parts_frame(touched, keys, recomputed.select(keys).schema)
    gone = asked.join(recomputed, on=keys, how="anti")
    source = pl.concat(
        [
            recomputed.with_columns(pl.lit(False).alias(GONE)),
            gone.with_columns(pl.lit(True).alias(GONE)),
        ],
        how="diagonal_relaxed",
    ).to_arrow()
    before = table.version()
    delta.check_not_committed(table, properties)
    (
        delta.merger(table, source, keys, properties)
        .when_matched_delete(f"s.{GONE}")
        .when_matched_update_all(except_cols=[GONE])
        .when_not_matched_insert_all(f"NOT s.{GONE}", except_cols=[GONE])
        .execute()
    )
    table.update_incremental()
    if table.version() == before:
        delta.record_watermark_only(table, properties)
    return delta.WriteResult(location.name, location.uri, "merge", data.num_rows, table.version())


def record_unchanged(location: Location, properties) -> delta.WriteResult:
    """Nothing upstream touched the mart: move its watermark only (if it exists yet)."""
    table = delta.open_table(location)
    if table is None:
        return delta.WriteResult(location.name, location.uri, "none", 0, None)
    delta.record_watermark_only(table, properties)
    return delta.WriteResult(location.name, location.uri, "watermark", 0, table.version())
