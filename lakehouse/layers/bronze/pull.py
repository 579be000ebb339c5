"""Bronze from a table source (PostgreSQL, DuckDB, Delta): incremental by a watermark column.

Each run reads the rows whose ``column`` is at or after the watermark less ``lookback`` (all
rows the first time, or when no ``column`` is set), in record batches, and MERGEs them into
``bronze/<source>`` on ``_row_md5`` (an MD5 of the whole row): a row version already in
bronze is never added twice, so re-reading the lookback window is harmless, and a row
updated late (its ``column`` value below the watermark but inside the lookback) arrives as
a new version. Commits hold at most ``max_rows_per_commit`` rows; only the last one moves
the watermark, so a killed run reruns from the old watermark and its committed rows are
skipped by the MERGE.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger

from lakehouse.core import delta, names, sqltext
from lakehouse.core.settings import limit
from lakehouse.core.storage import Location
from lakehouse.io import PluginError, Source, plain

LINEAGE = ("_row_md5", "_source_file", "_ingested_at", "_run_id")


def encode(value) -> dict | None:
    """A watermark value as JSON (``{"type", "value"}``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"type": "timestamp", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    return {"type": type(value).__name__, "value": value}


def decode(mark: dict | None):
    if not mark:
        return None
    kind, value = mark["type"], mark["value"]
    if kind == "timestamp":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    return value


def lowered(newest, lookback, where: str):
    """The lowest ``column`` value to re-read: the watermark less ``lookback`` (a duration
    such as ``2h`` for dates and times, a number for numeric columns)."""
    if newest is None or lookback in (None, 0, ""):
        return newest
    if isinstance(newest, date):
        return newest - limit(lookback, f"{where}.lookback")
    if isinstance(lookback, int | float) and isinstance(newest, int | float):
        return newest - lookback
    raise PluginError(f"{where}.lookback: {lookback!r} does not fit a column holding {newest!r}")


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Record batches regrouped into tables of ``rows`` rows (the last one fewer)."""
    held = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        batch = pa.Table.from_batches([plain(batch)])
        held = batch if held is None else pa.concat_tables([held, batch])
        while held.num_rows >= rows:
            yield held.slice(0, rows)
            held = held.slice(rows)
    if held is not None and held.num_rows:
        yield held


def with_lineage(rows: pa.Table, origin: str, run_id: str, ingested_at: datetime) -> pa.Table:
    """``rows`` with ``_row_md5`` (identity of the row version) and the lineage columns,
    duplicates within the batch dropped; text columns as plain ``string``."""
    import duckdb  # only table sources need it

    con = duckdb.connect()
    con.register("batch", rows)
    hashed = con.sql(
        "SELECT DISTINCT ON (_row_md5) * FROM "
        "(SELECT *, md5(to_json(__row)) AS _row_md5 FROM batch __row)"
    ).to_arrow_table()
    con.close()
    n = hashed.num_rows
    hashed = hashed.append_column("_source_file", pa.array([origin] * n, pa.string()))
    hashed = hashed.append_column(
        "_ingested_at", pa.array([ingested_at] * n, pa.timestamp("us", "UTC"))
    )
    hashed = hashed.append_column("_run_id", pa.array([run_id] * n, pa.string()))
    fields = [
        f.with_name(names.portable(f.name)).with_type(storable(f.type)) for f in hashed.schema
    ]
    return hashed.rename_columns([f.name for f in fields]).cast(pa.schema(fields))


def storable(dtype: pa.DataType) -> pa.DataType:
    """The type a Delta table stores a source column as: text as ``string``, times in
    microseconds, zoned times in UTC (DuckDB says ``Etc/UTC``, Delta knows only ``UTC``)."""
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", "UTC" if dtype.tz else None)
    return dtype


def merge_new(
    location: Location, rows: pa.Table, column: str | None, properties
) -> tuple[int, int]:
    """Insert the row versions of ``rows`` bronze does not hold yet, in one commit.

    A row version has one ``column`` value, so only target rows inside the batch's range of
    ``column`` can match: saying so lets delta-rs skip the other files, which keeps a
    commit's memory flat as the table grows (without a ``column``, the whole table is read).
    """
    table = delta.ensure_table(location, rows.schema)
    delta.add_missing_columns(table, rows.schema)
    table.update_incremental()
    delta.check_not_committed(table, properties)
    on = "t._row_md5 = s._row_md5"
    if column:
        low, high = (v.as_py() for v in pc.min_max(rows.column(column)).values())
        if low is not None:
            named = sqltext.quoted(column, "t")
            within = (
                f"{named} >= {sqltext.sql_literal(low)} AND {named} <= {sqltext.sql_literal(high)}"
            )
            if rows.column(column).null_count:
                within = f"({within} OR {named} IS NULL)"
            on += f" AND {within}"
    metrics = (
        table.merge(rows, on, source_alias="s", target_alias="t", commit_properties=properties)
        .when_not_matched_insert_all()
        .execute()
    )
    table.update_incremental()
    return metrics.get("num_target_rows_inserted", 0), table.version()


def ingest(
    source: Source,
    lake: Location,
    run_id: str,
    ingested_at: datetime,
    max_rows_per_commit: int,
) -> delta.WriteResult:
    """Pull the source's new and changed rows into ``bronze/<source>``."""
    location = lake.child("bronze", source.name)
    app_id = f"bronze:{source.name}"
    column = source.spec.get("column")
    table = delta.open_table(location)
    previous = delta.last_watermark(table, app_id) or {}
    newest = decode(previous.get("newest"))
    since = lowered(newest, source.spec.get("lookback"), source.where) if column else None
    logger.info(
        f"bronze/{source.name}: reading {source.describe()}"
        + (f" where {column} >= {since}" if since is not None else " (all rows)")
    )
    batch = delta.last_batch(table, app_id)
    read = inserted = 0
    version = table.version() if table is not None else None
    groups = rebatch(source.batches(column, since), max_rows_per_commit)
    group = next(groups, None)
    while group is not None:
        following = next(groups, None)
        read += group.num_rows
        if column:
            top = pc.max(group.column(column)).as_py()
            newest = top if newest is None or (top is not None and top > newest) else newest
        batch += 1
        mark = {"column": column, "rows_read": read}
        if following is None:  # only the last commit moves the watermark
            mark["newest"] = encode(newest)
        else:
            mark["newest"] = previous.get("newest")
        properties = delta.commit_properties(app_id, batch, mark, run_id)
        rows = with_lineage(group, source.describe(), run_id, ingested_at)
        added, version = merge_new(location, rows, column and names.portable(column), properties)
        inserted += added
        logger.info(f"bronze/{source.name}: {read:,} rows read, {inserted:,} new so far")
        group = following
    return delta.WriteResult(
        location.name, location.uri, "merge", inserted, version, read, source.moved.bytes
    )
