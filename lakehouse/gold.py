"""Gold edges: what silver changed since a mart's watermark, traced to the parts of the mart
it reaches; those parts recomputed from silver and replaced.

A mart (``lakehouse.marts.Mart``) is one query over silver entities and an output contract.
Each mart keeps its own watermark (the silver versions it has seen) in its own Delta log,
under app id ``gold:<mart>``. The rows silver changed since then come from each input's
change data feed (old and new images); the lineage queries derived from the mart's SQL
(``lakehouse.mart_query``) find the partitions (or keys) those rows reach through the
query's joins, dimensions as much as facts; only those are recomputed, exactly, in DuckDB
(Polars decimal arithmetic would lose cents), and replaced in one commit. A mart whose
query cannot be traced is recomputed whole when an input changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake
from loguru import logger

from lakehouse import audit, delta, mart_query
from lakehouse.marts import Mart
from lakehouse.runs import RunMode
from lakehouse.storage import Location

if TYPE_CHECKING:
    import duckdb

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
GONE = "_lakehouse_gone"  # marks a recomputed key that no longer has a row (upsert deletes it)


def _changed_rows(table, after: int) -> pa.Table:
    """Rows of ``table`` changed after version ``after``: inserted, deleted, and both images
    of updated rows, with the table's columns."""
    feed = table.load_cdf(starting_version=after + 1, ending_version=table.version())
    rows = pa.table(feed)
    return rows.drop_columns([c for c in CDF_COLUMNS if c in rows.column_names])


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
        """The silver tables named in ``versions`` (a version each, None: the latest) that
        exist, with only the files that match the ``prune`` predicate of a table."""
        tables = {
            name: delta.open_table(lake.child("silver", name), version)
            for name, version in versions.items()
        }
        return cls({n: t for n, t in tables.items() if t is not None}, prune or {})

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            import duckdb

            self._con = duckdb.connect()
            for name in self.tables:
                self._con.register(name, self.dataset(name))
        return self._con

    def dataset(self, name: str):
        return self.tables[name].to_pyarrow_dataset(file_pruning_predicate=self.prune.get(name))

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    @property
    def versions(self) -> dict[str, int]:
        return {name: t.version() for name, t in self.tables.items()}

    def changes(self, name: str, after: int) -> pa.Table | None:
        """The rows of ``name`` changed after version ``after`` (None: its change data feed
        cannot be read back that far, e.g. vacuumed or rewritten)."""
        try:
            return _changed_rows(self.tables[name], after)
        except Exception as error:  # delta-rs raises several kinds for a feed it cannot read
            logger.warning(f"gold: silver/{name} has no change data feed after {after}: {error}")
            return None

    def register_changes(self, changed: dict[str, pa.Table]) -> None:
        """For each changed input: ``changed_<name>`` (its changed rows, for a hand-written
        ``touched`` query), ``_changed_<name>`` (the same, marked) and ``_all_<name>`` (its
        rows and the changed rows' old images)."""
        for name, rows in changed.items():
            self.con.register(f"changed_{name}", rows)
            self.con.sql(
                f'CREATE OR REPLACE VIEW "_changed_{name}" AS '
                f'SELECT *, true AS {mart_query.CHANGED} FROM "changed_{name}"'
            )
            self.con.sql(
                f'CREATE OR REPLACE VIEW "_all_{name}" AS SELECT * FROM "{name}" '
                f'UNION ALL BY NAME SELECT * FROM "changed_{name}"'
            )

    def register_range(self, mart: Mart, first, last) -> frozenset[str]:
        """For each input of ``mart`` partitioned on a date: ``_changed_<name>``, its rows of
        the partitions that overlap ``first``..``last`` (a backfill's range)."""
        dated = set()
        for name, (column, by) in mart.dated.items():
            self.con.sql(
                f'CREATE OR REPLACE VIEW "_changed_{name}" AS '
                f'SELECT *, true AS {mart_query.CHANGED} FROM "{name}" '
                f"WHERE {delta.quoted(column)} BETWEEN date_trunc('{by}', DATE '{first}') "
                f"AND DATE '{last}'"
            )
            dated.add(name)
        return frozenset(dated)


@dataclass(frozen=True)
class MartPlan:
    """What one run does to one mart: the partition values (or keys) to recompute (or the
    whole mart), from which silver versions, and the watermark its commit records."""

    mart: Mart
    target: Location
    mode: RunMode
    touched: tuple
    silver_versions: dict[str, int]
    watermark: dict
    sources: tuple[str, ...] = ()  # URIs of the silver tables it reads (lineage inputs)
    seen: dict | None = None  # the watermark of the mart's last commit
    whole: bool = False  # recompute the whole mart and overwrite it

    @property
    def up_to_date(self) -> bool:
        """Nothing to recompute and no silver version the mart has not seen: no commit."""
        return not self.touched and not self.whole and self.watermark == self.seen

    @property
    def column(self) -> str:
        return self.mart.column


@dataclass(frozen=True)
class PartTask:
    """One executor task: recompute ``values`` of a mart (None: all of it) from silver at
    ``silver_versions``."""

    mart: Mart
    lake: Location
    silver_versions: dict[str, int]
    values: tuple | None


@dataclass(frozen=True)
class MartPart:
    """A task's recomputed rows of one mart."""

    mart: str
    rows: pa.Table
    seconds: float = 0.0


def _parts(con, sqls: list[str], columns: tuple[str, ...]) -> tuple:
    """The distinct parts the union of ``sqls`` returns, sorted, nulls left out."""
    if not sqls:
        return ()
    found = con.sql(" UNION ".join(f"({sql})" for sql in sqls)).to_arrow_table()
    if len(columns) == 1:
        values = found.column(0).to_pylist()
        return tuple(sorted(v for v in values if v is not None))
    rows = zip(*(found.column(i).to_pylist() for i in range(len(columns))), strict=True)
    return tuple(sorted(r for r in rows if None not in r))


def _traced(silver: SilverSnapshot, mart: Mart, marked: frozenset, others: frozenset) -> tuple:
    """The parts reached by the marked rows of the ``marked`` inputs (``_changed_<name>``),
    the ``others`` read with their old images too (``_all_<name>``)."""
    query = mart.query
    sqls = [
        query.lineage_sql(index, others)
        for index, name in enumerate(query.occurrences)
        if name in marked
    ]
    return _parts(silver.con, sqls, mart.columns)


def _increment(silver: SilverSnapshot, mart: Mart, seen: dict, read: dict) -> tuple | None:
    """The parts that silver's changes since ``seen`` reach (None: recompute the whole)."""
    moved = [name for name in mart.inputs if read[name] != seen.get(name)]
    changed = {name: silver.changes(name, seen.get(name, -1)) for name in moved}
    if any(rows is None for rows in changed.values()):
        return None
    changed = {name: rows for name, rows in changed.items() if rows.num_rows}
    if not changed:
        return ()
    silver.register_changes(changed)
    if mart.touched_sql:
        unchanged = {n: silver.dataset(n).schema.empty_table() for n in mart.inputs}
        silver.register_changes({n: rows for n, rows in unchanged.items() if n not in changed})
        return _parts(silver.con, [mart.touched_sql], mart.columns)
    if mart.whole:
        return None
    names = frozenset(changed)
    return _traced(silver, mart, names, names)


def _everything(silver: SilverSnapshot, mart: Mart) -> tuple:
    """Every part the mart's query gives now, to spread a whole recompute over tasks (none
    for a query that cannot be traced: it is one task)."""
    if mart.whole:
        return ()
    return _parts(silver.con, [mart.query.lineage_sql(None)], mart.columns)


def plan(lake: Location, silver: SilverSnapshot, mart: Mart, mode: RunMode) -> MartPlan:
    """What to recompute: what silver changed since the mart's watermark, a date range
    (backfill) or everything (full refresh). In plan mode it is only logged."""
    target = lake.child("gold", mart.name)
    last = delta.last_watermark(delta.open_table(target), mart.app_id) or {}
    seen = {"silver_versions": last.get("silver_versions", {}), "query": last.get("query")}
    read = {name: silver.versions[name] for name in mart.inputs}
    current = {"silver_versions": read, "query": mart.fingerprint}
    touched, whole, watermark = (), False, current
    if mode.audit:
        return _audit_plan(lake, mart, mode, target, seen)
    built = bool(seen["silver_versions"])
    rewritten = built and seen["query"] != mart.fingerprint
    if rewritten and not mode.date_range:
        logger.warning(
            f"gold/{mart.name}: its query or contract changed since it was built "
            f"({mart.where}): recomputed whole"
        )
    if mode.full_refresh or ((rewritten or not built) and not mode.date_range):
        touched, whole = _everything(silver, mart), True
    elif mode.date_range:
        watermark = seen  # a backfill moves no watermark
        dated = silver.register_range(mart, *mode.date_range) if not mart.whole else ()
        if dated:
            touched = _traced(silver, mart, dated, frozenset())
        else:
            whole = True
            logger.warning(
                f"gold/{mart.name} {mode}: "
                + (
                    f"recomputed whole ({mart.whole})"
                    if mart.whole
                    else "no input has a date partition to take the range from: recomputed whole"
                )
            )
    elif read != seen["silver_versions"]:
        touched = _increment(silver, mart, seen["silver_versions"], read)
        if touched is None:
            touched, whole = _everything(silver, mart), True
    if mode.date_range and not touched and not whole:
        logger.warning(
            f"gold/{mart.name} {mode}: no {mart.column} to recompute (silver holds no row of "
            "the range): nothing rebuilt"
        )
    if mode.plan:
        what = "everything" if whole and not touched else ", ".join(map(str, touched[:12]))
        more = f" ... ({len(touched)} in all)" if len(touched) > 12 else ""
        logger.info(
            f"PLAN gold/{mart.name} ({mode}): recompute {mart.column} {what or 'nothing'}{more}"
        )
        touched, whole = (), False
    sources = tuple(lake.child("silver", name).uri for name in sorted(read))
    return MartPlan(mart, target, mode, touched, read, watermark, sources, seen, whole)


def _audit_plan(lake: Location, mart: Mart, mode: RunMode, target: Location, seen: dict):
    """An audit: every part of the mart (or a sample), recomputed from silver at the versions
    its watermark records, the parts it holds included (a part it should not hold shows)."""
    versions = seen["silver_versions"]
    sources = tuple(lake.child("silver", name).uri for name in sorted(versions))
    if not versions or any(name not in versions for name in mart.inputs):
        logger.warning(f"gold/{mart.name}: no watermark of what it was built from: not audited")
        return MartPlan(mart, target, mode, (), versions, seen, sources, seen)
    if mart.whole:
        return MartPlan(mart, target, mode, (), versions, seen, sources, seen, whole=True)
    built_from = SilverSnapshot.open(lake, versions)
    parts = set(_parts(built_from.con, [mart.query.lineage_sql(None)], mart.columns))
    built_from.close()
    held = pl.from_arrow(delta.open_table(target).to_pyarrow_table(columns=list(mart.columns)))
    parts |= set(held.unique().iter_rows() if len(mart.columns) > 1 else held.to_series())
    touched = audit.sample(tuple(sorted(parts)), mode.sample, f"{mart.name}:{date.today()}")
    return MartPlan(mart, target, mode, touched, versions, seen, sources, seen, whole=not touched)


def tasks(plans: list[MartPlan], lake: Location, partitions: int, keys: int) -> list[PartTask]:
    """The plans cut into executor tasks: ``partitions`` partition values or ``keys`` keys
    each, neighbours together so that each task's scans prune to a narrow range; a mart
    recomputed whole without known parts is one task."""
    cut = []
    for p in plans:
        if p.whole and not p.touched:
            cut.append(PartTask(p.mart, lake, p.silver_versions, None))
            continue
        size = partitions if p.mart.partition else keys
        for start in range(0, len(p.touched), size):
            values = p.touched[start : start + size]
            cut.append(PartTask(p.mart, lake, p.silver_versions, values))
    return cut


def compute(task: PartTask) -> MartPart:
    """Recompute a task's partitions (or keys) of a mart from silver, checked by its
    contract. Runs on the executor: it opens its own snapshot of the silver versions."""
    mart, values = task.mart, task.values
    started = time.perf_counter()
    prune = {}
    if values is not None:
        prune = {name: delta.in_list(column, values) for name, column in mart.prune.items()}
    silver = SilverSnapshot.open(task.lake, task.silver_versions, prune)
    if mart.query is None:
        frames = {name: pl.scan_pyarrow_dataset(silver.dataset(name)) for name in mart.inputs}
        rows = mart.lazy_frame(frames).collect().to_arrow()
    elif values is None:
        rows = silver.con.sql(mart.query.sql).to_arrow_table()
    else:
        columns = list(zip(*values, strict=True)) if len(mart.columns) > 1 else [values]
        touched = pa.table({c: list(v) for c, v in zip(mart.columns, columns, strict=True)})
        silver.con.register(mart_query.TOUCHED, touched)
        literal = values if mart.partition else None
        rows = silver.con.sql(mart.query.part_sql(literal)).to_arrow_table()
    silver.close()
    mart.check(rows)
    return MartPart(mart.name, rows, time.perf_counter() - started)


def write(plan: MartPlan, parts: list[MartPart], run_id: str) -> delta.WriteResult:
    """The recomputed parts of one mart written in one commit with its watermark."""
    target, mart = plan.target, plan.mart
    if plan.mode.plan:
        return delta.WriteResult(target.name, target.uri, "plan", 0, None)
    if plan.mode.audit:
        return compared(plan, [p for p in parts if p.mart == mart.name])
    if plan.up_to_date:
        return delta.WriteResult(target.name, target.uri, "none", 0, None)
    batch = delta.last_batch(delta.open_table(target), mart.app_id) + 1
    properties = delta.commit_properties(mart.app_id, batch, plan.watermark, run_id)
    if not plan.touched and not plan.whole:
        return record_unchanged(target, properties)
    data = pa.concat_tables([p.rows for p in parts if p.mart == mart.name])
    if plan.whole:
        result = overwrite(target, data, mart.partition, properties)
    elif mart.partition:
        result = replace_partitions(target, data, mart.partition, list(plan.touched), properties)
    else:
        result = upsert(target, data, list(mart.keys), properties, plan.touched)
    shown = "all" if plan.whole else len(plan.touched)
    logger.debug(f"gold: {result} ({shown} {plan.column} recomputed, {plan.mode})")
    return replace(result, inputs=plan.sources)


def _parts_frame(values: tuple, columns: list[str], schema) -> pl.DataFrame:
    """Partition values or keys (tuples for several columns) as a frame of ``schema``."""
    rows = [list(v) if len(columns) > 1 else [v] for v in values]
    return pl.DataFrame(rows, schema=columns, orient="row").cast(schema)


def compared(plan: MartPlan, parts: list[MartPart]) -> delta.WriteResult:
    """An audit's result: the mart's stored rows of the recomputed parts against them."""
    target, mart = plan.target, plan.mart
    table = delta.open_table(target)
    if table is None or not (parts or plan.whole):
        return delta.WriteResult(target.name, target.uri, "none", 0, None)
    fresh = pl.from_arrow(pa.concat_tables([p.rows for p in parts]))
    dataset = table.to_pyarrow_dataset()
    if plan.whole:
        stored = pl.from_arrow(dataset.to_table())
    else:  # a partitioned mart reads just the audited partitions
        only = pc.field(mart.partition).isin(list(plan.touched)) if mart.partition else None
        stored = pl.from_arrow(delta.read_where(dataset, only))
        asked = _parts_frame(plan.touched, list(mart.columns), stored.select(mart.columns).schema)
        stored = stored.join(asked, on=list(mart.columns), how="semi")
    drift = audit.compare(stored, fresh, list(mart.contract.keys))
    drift["parts"] = len(plan.touched) if not plan.whole else "all"
    drift["seconds"] = round(sum(p.seconds for p in parts), 3)
    inputs = (*plan.sources, target.uri)
    return delta.WriteResult(
        target.name, target.uri, "audit", fresh.height, table.version(), inputs=inputs, drift=drift
    )


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


def upsert(
    location: Location, data: pa.Table, keys: list[str], properties, touched: tuple = ()
) -> delta.WriteResult:
    """Insert or update ``data`` on ``keys``, and delete the ``touched`` keys (values, or
    tuples of values) that have no row in it any more, in one commit."""
    table = delta.ensure_table(location, data.schema)
    recomputed = pl.from_arrow(data)
    asked = _parts_frame(touched, keys, recomputed.select(keys).schema)
    gone = asked.join(recomputed, on=keys, how="anti")
    source = pl.concat(
        [
            recomputed.with_columns(pl.lit(False).alias(GONE)),
            gone.with_columns(pl.lit(True).alias(GONE)),
        ],
        how="diagonal_relaxed",
    ).to_arrow()
    on = " AND ".join(f"{delta.quoted(k, 't')} = {delta.quoted(k, 's')}" for k in keys)
    before = table.version()
    delta.check_not_committed(table, properties)
    table.merge(
        source, on, source_alias="s", target_alias="t", commit_properties=properties
    ).when_matched_delete(f"s.{GONE}").when_matched_update_all(
        except_cols=[GONE]
    ).when_not_matched_insert_all(f"NOT s.{GONE}", except_cols=[GONE]).execute()
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
