"""Gold edges: find what silver changed since a mart's watermark, recompute only that.

A mart is the user's declaration (``Mart``, in a module under ``pipelines/``): the silver
tables it reads and the change-feed columns it needs of each, how to find the partitions
(or keys) a change touches, and the SQL that recomputes them. Each mart keeps its own
watermark (the silver versions it has seen) in its own Delta log, under app id
``gold:<mart>``. Changed silver rows come from the tables' change data feed; the mart then
recomputes the partitions (or keys) those rows touch, exactly, in DuckDB (Polars decimal
arithmetic would lose cents), and replaces just those.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake
from loguru import logger

from lakehouse import contracts, delta
from lakehouse.declaration import Entity
from lakehouse.runs import RunMode
from lakehouse.storage import Location

if TYPE_CHECKING:
    import duckdb

ALL_DATES = (date.min, date.max)  # a full refresh asks a mart's range_sql for everything


def _month_start(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) ``day``'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Prune:
    """Which files of a silver table a task reads: its partition ``column`` from the task's
    first value less ``months_before`` to its last plus ``months_after`` (e.g. lines that
    ship up to 5 months after their order: ``Prune("ship_month", months_after=5)``)."""

    column: str
    months_before: int = 0
    months_after: int = 0

    def predicate(self, first: date, last: date) -> str:
        low = first if not self.months_before else _month_start(first, -self.months_before)
        high = last if not self.months_after else _month_start(last, self.months_after + 1)
        if self.months_after:
            high -= timedelta(days=1)  # the last day of the month ``months_after`` on
        return f"{self.column} >= '{low}' AND {self.column} <= '{high}'"


@dataclass(frozen=True)
class Mart:
    """A gold table: which silver changes touch which of its parts, and how to recompute them.

    ``reads`` maps each silver table the mart reads to the columns of its change data feed
    the mart needs: the engine registers those rows as ``changed_<table>`` for
    ``touched_sql``, which returns the partition values (or keys) to recompute.
    ``range_sql`` returns those of the dates ``{first}``..``{last}`` (backfill; a full refresh
    asks for every date). ``compute_sql`` recomputes them from the silver tables and
    ``touched`` (``{first}`` and ``{last}``, the lowest and highest touched value, let DuckDB
    prune partitions; ``params`` are formatted in too). A mart with a ``partition`` replaces
    those partitions; one with ``keys`` upserts those rows. ``prune`` says, per silver table,
    which files a task reads. ``contract``: a pandera model, or the declaration the catalog
    attaches from the dataset's ``marts`` section.
    """

    name: str
    reads: dict[str, tuple[str, ...]]
    touched_sql: str
    range_sql: str
    compute_sql: str
    partition: str | None = None
    keys: tuple[str, ...] = ()
    prune: dict[str, Prune] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    contract: object = None

    def __post_init__(self):
        if bool(self.partition) == bool(self.keys):
            raise ValueError(f"Mart {self.name!r}: give either partition or keys")
        for table in self.prune:
            if table not in self.reads:
                raise ValueError(f"Mart {self.name!r}: prune names {table!r}, not in reads")

    @property
    def app_id(self) -> str:
        return f"gold:{self.name}"

    @property
    def column(self) -> str:
        return self.partition or self.keys[0]

    def with_contract(self, contract) -> Mart:
        return dataclasses.replace(self, contract=contract)

    def check(self, rows: pa.Table) -> None:
        """The recomputed rows must meet the mart's output contract."""
        model = (
            contracts.table_schema(self.contract)
            if isinstance(self.contract, Entity)
            else self.contract
        )
        contracts.check_table(pl.from_arrow(rows), model, f"gold/{self.name}")


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
    """The silver tables one gold run reads, opened once, registered in one DuckDB connection
    (made when first asked for: a run with nothing to recompute never imports DuckDB)."""

    tables: dict
    prune: dict[str, str] = field(default_factory=dict)
    _con: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def open(
        cls,
        lake: Location,
        versions: dict[str, int | None],
        prune: dict[str, str] | None = None,
    ) -> SilverSnapshot:
        """The silver tables named in ``versions`` (a version each, None: the latest), with
        only the files that match the ``prune`` predicate of a table."""
        tables = {
            name: delta.open_table(lake.child("silver", name), version)
            for name, version in versions.items()
        }
        missing = [name for name, table in tables.items() if table is None]
        if missing:
            raise RuntimeError(
                f"gold needs silver/{', silver/'.join(missing)}, which does not exist yet "
                f"(has silver run, and do its entities declare {', '.join(missing)}?)"
            )
        return cls(tables, prune or {})

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            import duckdb

            self._con = duckdb.connect()
            for name, table in self.tables.items():
                dataset = table.to_pyarrow_dataset(file_pruning_predicate=self.prune.get(name))
                self._con.register(name, dataset)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    @property
    def versions(self) -> dict[str, int]:
        return {name: t.version() for name, t in self.tables.items()}

    def register_changes(self, mart: Mart, seen: dict) -> None:
        """``changed_<table>`` for each table the mart follows: the rows changed after the
        versions in ``seen`` (all rows where a table was never seen), with the columns the
        mart asks for."""
        for name, columns in mart.reads.items():
            if columns:
                changed = _changed_rows(self.tables[name], seen.get(name, -1), list(columns))
                self.con.register(f"changed_{name}", changed)


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
    sources: tuple[str, ...] = ()  # URIs of the silver tables it reads (lineage inputs)
    seen: dict | None = None  # the watermark of the mart's last commit

    @property
    def up_to_date(self) -> bool:
        """Nothing to recompute and no silver version the mart has not seen: no commit."""
        return not self.touched and self.watermark == self.seen

    @property
    def column(self) -> str:
        return self.mart.column


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
    read = {name: v for name, v in silver.versions.items() if name in mart.reads}
    previous = {"silver_versions": previous.get("silver_versions", {})}
    current = {"silver_versions": read}
    if mode.date_range or mode.full_refresh:
        first, last = mode.date_range or ALL_DATES
        sql = mart.range_sql.format(first=first, last=last, **mart.params)
        touched = silver.con.sql(sql).to_arrow_table()
        watermark = current if mode.full_refresh else previous  # a backfill moves no watermark
    elif read == previous["silver_versions"]:  # silver has not moved: nothing to recompute
        touched, watermark = pa.table({mart.column: pa.array([], pa.null())}), current
    else:
        silver.register_changes(mart, previous["silver_versions"])  # only increments read it
        touched = silver.con.sql(mart.touched_sql.format(**mart.params)).to_arrow_table()
        watermark = current
    column = mart.column
    if column not in touched.column_names:
        raise ValueError(
            f"gold/{mart.name}: its touched/range SQL returns {', '.join(touched.column_names)}, "
            f"not {column!r}"
        )
    values = tuple(sorted(v for v in touched.column(column).to_pylist() if v is not None))
    if not values and (mode.date_range or mode.full_refresh):
        logger.warning(
            f"gold/{mart.name} {mode}: no {column} to recompute (silver holds no row of the "
            "range): nothing rebuilt"
        )
    if mode.plan:
        shown = ", ".join(str(v) for v in values[:12]) or "nothing"
        more = f" ... ({len(values)} in all)" if len(values) > 12 else ""
        logger.info(f"PLAN gold/{mart.name} ({mode}): recompute {column} {shown}{more}")
        values = ()
    sources = tuple(lake.child("silver", name).uri for name in sorted(read))
    return MartPlan(mart, target, mode, values, read, watermark, sources, previous)


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


def compute(task: PartTask) -> MartPart:
    """Recompute a task's partitions (or keys) of a mart from silver, checked by its
    contract. Runs on the executor: it opens its own snapshot of the silver versions."""
    mart = task.mart
    first, last = task.values[0], task.values[-1]
    prune = {name: p.predicate(first, last) for name, p in mart.prune.items()}
    silver = SilverSnapshot.open(task.lake, task.silver_versions, prune)
    silver.con.register("touched", pa.table({mart.column: list(task.values)}))
    rows = silver.con.sql(
        mart.compute_sql.format(first=first, last=last, **mart.params)
    ).to_arrow_table()
    silver.close()
    mart.check(rows)
    return MartPart(mart.name, rows)


def write(plan: MartPlan, parts: list[MartPart], run_id: str) -> delta.WriteResult:
    """The recomputed parts of one mart written in one commit with its watermark."""
    target, mart = plan.target, plan.mart
    if plan.mode.plan:
        return delta.WriteResult(target.name, target.uri, "plan", 0, None)
    if plan.up_to_date:
        return delta.WriteResult(target.name, target.uri, "none", 0, None)
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
    logger.debug(f"gold: {result} ({len(plan.touched)} {plan.column} recomputed, {plan.mode})")
    return replace(result, inputs=plan.sources)


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
