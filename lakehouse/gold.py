"""Gold edges: find what silver changed since a mart's watermark, recompute only that.

Each mart keeps its own watermark (the silver versions it has seen) in its own Delta log,
under app id ``gold:<mart>``. Changed silver rows come from the silver tables' change data
feed; the mart then recomputes the partitions (or customers) those rows touch, exactly, in
DuckDB (Polars decimal arithmetic would lose cents), and replaces just those.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from lakehouse import delta
from lakehouse.storage import Location

UPSTREAM = ("orders", "lineitem", "customer", "nation")
# TPC-H ships every line 1..121 days after its order: an order month's lines ship within
# that month and the five after it. Used only to prune the line-item partitions read.
SHIP_MONTHS_AFTER_ORDER = 5


@dataclass(frozen=True)
class Changes:
    """Silver rows changed in versions ``(after, through]`` of each upstream table."""

    after: dict[str, int]
    through: dict[str, int]
    orders: pl.DataFrame
    lineitem: pl.DataFrame
    customer: pl.DataFrame

    @property
    def watermark(self) -> dict:
        return {"silver_versions": self.through}


def _changed_rows(location: Location, after: int, through: int, columns: list[str]) -> pl.DataFrame:
    table = delta.open_table(location)
    if table is None or through <= after:
        return pl.DataFrame(schema={c: pl.Null for c in columns})
    feed = table.load_cdf(starting_version=after + 1, ending_version=through, columns=columns)
    return pl.from_arrow(pa.table(feed)).select(columns)


def silver_changes(lake: Location, mart: Location, app_id: str) -> Changes:
    """The silver rows changed since ``mart`` last ran (all of silver on its first run)."""
    mark = delta.last_watermark(delta.open_table(mart), app_id) or {}
    seen = mark.get("silver_versions", {})
    tables = {name: delta.open_table(lake.child("silver", name)) for name in UPSTREAM}
    through = {name: (t.version() if t is not None else -1) for name, t in tables.items()}
    after = {name: seen.get(name, -1) for name in UPSTREAM}
    silver = lambda name: lake.child("silver", name)  # noqa: E731
    return Changes(
        after=after,
        through=through,
        orders=_changed_rows(
            silver("orders"),
            after["orders"],
            through["orders"],
            ["o_orderkey", "o_custkey", "order_month"],
        ),
        lineitem=_changed_rows(
            silver("lineitem"), after["lineitem"], through["lineitem"], ["l_orderkey", "ship_month"]
        ),
        customer=_changed_rows(
            silver("customer"), after["customer"], through["customer"], ["c_custkey"]
        ),
    )


def connect(lake: Location) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the silver tables registered as Arrow datasets."""
    con = duckdb.connect()
    for name in UPSTREAM:
        table = delta.open_table(lake.child("silver", name))
        if table is not None:
            con.register(name, table.to_pyarrow_dataset())
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str, **frames: pl.DataFrame) -> pa.Table:
    """Run ``sql`` with ``frames`` visible as tables; the result as Arrow."""
    for name, frame in frames.items():
        con.register(name, frame.to_arrow())
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        for name in frames:
            con.unregister(name)


def replace_partitions(
    location: Location, data: pa.Table, column: str, values: list, properties
) -> delta.WriteResult:
    """Replace the ``column IN values`` partitions of the mart with ``data`` in one commit."""
    table = delta.ensure_table(location, data.schema, [column])
    write_deltalake(
        table,
        data,
        mode="overwrite",
        predicate=delta.in_list(column, values),
        partition_by=[column],
        commit_properties=properties,
    )
    table.update_incremental()
    return delta.WriteResult(
        location.name, location.uri, "replace_partitions", data.num_rows, table.version()
    )


def upsert(location: Location, data: pa.Table, keys: list[str], properties) -> delta.WriteResult:
    """Insert or update ``data`` on ``keys`` in one commit."""
    table = delta.ensure_table(location, data.schema)
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    before = table.version()
    table.merge(
        data, on, source_alias="s", target_alias="t", commit_properties=properties
    ).when_matched_update_all().when_not_matched_insert_all().execute()
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
