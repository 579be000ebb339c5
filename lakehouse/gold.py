"""Gold edges: find what silver changed since a mart's watermark, recompute only that.

Each mart keeps its own watermark (the silver versions it has seen) in its own Delta log,
under app id ``gold:<mart>``. Changed silver rows come from the silver tables' change data
feed; the mart then recomputes the partitions (or customers) those rows touch, exactly, in
DuckDB (Polars decimal arithmetic would lose cents), and replaces just those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl
import pyarrow as pa
from deltalake import write_deltalake
from loguru import logger

from lakehouse import contracts, delta
from lakehouse.runs import RunMode
from lakehouse.storage import Location
from lakehouse.tpch import FIRST_DATE, LAST_DATE

UPSTREAM = ("orders", "lineitem", "customer", "nation")
# TPC-H ships every line 1..121 days after its order: an order month's lines ship within
# that month and the five after it. Used only to prune the line-item partitions read.
SHIP_MONTHS_AFTER_ORDER = 5


@dataclass(frozen=True)
class Mart:
    """A gold table: which silver changes touch which of its parts, and how to recompute them.

    ``touched_sql`` returns the partition values (or keys) to recompute, from the silver
    tables and the changed rows ``changed_orders``, ``changed_lines``, ``changed_customers``;
    ``range_sql`` returns those of the dates ``{first}``..``{last}`` (backfill, full refresh);
    ``compute_sql`` recomputes them from the silver tables named in ``reads`` and ``touched``
    (``{first}`` and ``{last}``, the lowest and highest touched value, let DuckDB prune
    partitions). A mart with a ``partition`` replaces those partitions; one with ``keys``
    upserts those rows. ``prune`` gives, per silver table, a predicate on its partition column
    (same placeholders, plus ``{last_ship}``: ``{last}`` + ``SHIP_MONTHS_AFTER_ORDER`` months)
    that selects the files a task reads: listing every file of a table costs more than
    the task's query.
    """

    name: str
    reads: tuple[str, ...]
    touched_sql: str
    range_sql: str
    compute_sql: str
    partition: str | None = None
    keys: tuple[str, ...] = ()
    prune: tuple[tuple[str, str], ...] = ()

    @property
    def app_id(self) -> str:
        return f"gold:{self.name}"


CHANGED_COLUMNS = {
    "orders": ("changed_orders", ["o_orderkey", "o_custkey", "order_month"]),
    "lineitem": ("changed_lines", ["l_orderkey", "ship_month"]),
    "customer": ("changed_customers", ["c_custkey"]),
}


def _changed_rows(table, after: int, columns: list[str]) -> pa.Table:
    """Rows of ``table`` changed after version ``after`` (inserts, updates, deletes)."""
    if table.version() <= after:
        return table.to_pyarrow_dataset().schema.empty_table().select(columns)
    feed = table.load_cdf(
        starting_version=after + 1, ending_version=table.version(), columns=columns
    )
    return pa.table(feed).select(columns)


@dataclass
class SilverSnapshot:
    """The silver tables one gold run reads, opened once, registered in one DuckDB connection."""

    tables: dict
    con: duckdb.DuckDBPyConnection

    @classmethod
    def open(
        cls,
        lake: Location,
        versions: dict[str, int] | None = None,
        prune: dict[str, str] | None = None,
    ) -> SilverSnapshot:
        """The latest silver tables, or the ``versions`` a run's plan was made from, with
        only the files that match the ``prune`` predicate of a table."""
        tables = {
            name: delta.open_table(lake.child("silver", name), (versions or {}).get(name))
            for name in (versions or UPSTREAM)
        }
        missing = [name for name, table in tables.items() if table is None]
        if missing:
            raise RuntimeError(f"gold needs silver/{', silver/'.join(missing)}: run silver first")
        con = duckdb.connect()
        for name, table in tables.items():
            predicate = (prune or {}).get(name)
            con.register(name, table.to_pyarrow_dataset(file_pruning_predicate=predicate))
        return cls(tables, con)

    @property
    def versions(self) -> dict[str, int]:
        return {name: t.version() for name, t in self.tables.items()}

    def register_changes(self, seen: dict) -> None:
        """``changed_orders``, ``changed_lines``, ``changed_customers``: rows changed after
        the versions in ``seen`` (all rows where a table was never seen)."""
        for name, (alias, columns) in CHANGED_COLUMNS.items():
            self.con.register(alias, _changed_rows(self.tables[name], seen.get(name, -1), columns))


@dataclass(frozen=True)
class MartPlan:
    """What one run does to one mart: the partition values (or keys) to recompute, from
    which silver versions, and the watermark its commit records."""

    mart: Mart
    target: Location
    mode: RunMode
    touched: tuple
    silver_versions: dict[str, int]
    watermark: dict

    @property
    def column(self) -> str:
        return self.mart.partition or self.mart.keys[0]


@dataclass(frozen=True)
class PartTask:
    """One executor task: recompute ``values`` of a mart from silver at ``silver_versions``."""

    mart: Mart
    lake: Location
    silver_versions: dict[str, int]
    values: tuple


@dataclass(frozen=True)
class MartPart:
    """A task's recomputed rows of one mart."""

    mart: str
    rows: pa.Table


def plan(lake: Location, silver: SilverSnapshot, mart: Mart, mode: RunMode) -> MartPlan:
    """What to recompute: what silver changed since the mart's watermark, a date range
    (backfill) or everything (full refresh). In plan mode it is only logged."""
    target = lake.child("gold", mart.name)
    previous = delta.last_watermark(delta.open_table(target), mart.app_id) or {}
    previous = {"silver_versions": previous.get("silver_versions", {})}
    current = {"silver_versions": silver.versions}
    if mode.date_range or mode.full_refresh:
        first, last = mode.date_range or (FIRST_DATE, LAST_DATE)
        touched = silver.con.sql(mart.range_sql.format(first=first, last=last)).to_arrow_table()
        watermark = current if mode.full_refresh else previous  # a backfill moves no watermark
    else:
        silver.register_changes(previous["silver_versions"])  # only increments read the feed
        touched = silver.con.sql(mart.touched_sql).to_arrow_table()
        watermark = current
    column = mart.partition or mart.keys[0]
    values = tuple(sorted(v for v in touched.column(column).to_pylist() if v is not None))
    if mode.plan:
        shown = ", ".join(str(v) for v in values[:12]) or "nothing"
        more = f" ... ({len(values)} in all)" if len(values) > 12 else ""
        logger.info(f"PLAN gold/{mart.name} ({mode}): recompute {column} {shown}{more}")
        values = ()
    return MartPlan(mart, target, mode, values, silver.versions, watermark)


def tasks(plans: list[MartPlan], lake: Location, partitions: int, keys: int) -> list[PartTask]:
    """The plans cut into executor tasks: ``partitions`` partition values or ``keys`` keys
    each, neighbours together so that each task's scans prune to a narrow range."""
    cut = []
    for p in plans:
        size = partitions if p.mart.partition else keys
        for start in range(0, len(p.touched), size):
            values = p.touched[start : start + size]
            cut.append(PartTask(p.mart, lake, p.silver_versions, values))
    return cut


def _months_after(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def compute(task: PartTask) -> MartPart:
    """Recompute a task's partitions (or keys) of a mart from silver, checked by its
    contract. Runs on the executor: it opens its own snapshot of the silver versions."""
    mart = task.mart
    first, last = task.values[0], task.values[-1]
    bounds = {"first": first, "last": last}
    if mart.prune:
        bounds["last_ship"] = _months_after(last, SHIP_MONTHS_AFTER_ORDER)
    needed = {name: v for name, v in task.silver_versions.items() if name in mart.reads}
    prune = {name: predicate.format(**bounds) for name, predicate in mart.prune}
    silver = SilverSnapshot.open(task.lake, needed, prune)
    column = mart.partition or mart.keys[0]
    silver.con.register("touched", pa.table({column: list(task.values)}))
    rows = silver.con.sql(mart.compute_sql.format(**bounds)).to_arrow_table()
    silver.con.close()
    contracts.check_table(pl.from_arrow(rows), contracts.GOLD[mart.name], f"gold/{mart.name}")
    return MartPart(mart.name, rows)


def write(plan: MartPlan, parts: list[MartPart], run_id: str) -> delta.WriteResult:
    """The recomputed parts of one mart written in one commit with its watermark."""
    target, mart = plan.target, plan.mart
    if plan.mode.plan:
        return delta.WriteResult(target.name, target.uri, "plan", 0, None)
    batch = delta.last_batch(delta.open_table(target), mart.app_id) + 1
    properties = delta.commit_properties(mart.app_id, batch, plan.watermark, run_id)
    if not plan.touched:
        return record_unchanged(target, properties)
    data = pa.concat_tables([p.rows for p in parts if p.mart == mart.name])
    if plan.mode.full_refresh:
        result = overwrite(target, data, mart.partition, properties)
    elif mart.partition:
        result = replace_partitions(target, data, mart.partition, list(plan.touched), properties)
    else:
        result = upsert(target, data, list(mart.keys), properties)
    logger.info(f"gold: {result} ({len(plan.touched)} {plan.column} recomputed, {plan.mode})")
    return result


def overwrite(
    location: Location, data: pa.Table, partition: str | None, properties
) -> delta.WriteResult:
    """Replace the whole mart with ``data`` in one commit (full refresh)."""
    table = delta.ensure_table(location, data.schema, [partition] if partition else None)
    delta.check_not_committed(table, properties)
    write_deltalake(table, data, mode="overwrite", commit_properties=properties)
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
    delta.check_not_committed(table, properties)
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
