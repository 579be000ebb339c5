"""Gold edges: what silver changed since a mart's watermark, traced to the parts of the mart
it reaches; those parts recomputed from silver and replaced.

A mart (``lakehouse.declare.marts.Mart``) is one query over silver entities and an output contract.
Each mart keeps its own watermark (the silver versions it has seen) in its own Delta log,
under app id ``gold:<mart>``. The rows silver changed since then come from each input's
change data feed (old and new images); the lineage queries derived from the mart's SQL
(``lakehouse.declare.mart_query``) find the partitions (or keys) those rows reach through the
query's joins, dimensions as much as facts; only those are recomputed, exactly, in DuckDB
(Polars decimal arithmetic would lose cents), and replaced in one commit. A mart whose
query cannot be traced is recomputed whole when an input changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger

from lakehouse.core import delta, sqltext
from lakehouse.core.runs import RunMode
from lakehouse.core.storage import Location
from lakehouse.declare import mart_query
from lakehouse.declare.marts import Mart
from lakehouse.layers.gold import audit
from lakehouse.layers.gold.changes import SilverSnapshot
from lakehouse.layers.gold.writes import (
    _parts_frame,
    overwrite,
    record_unchanged,
    replace_partitions,
    upsert,
)

if TYPE_CHECKING:
    pass


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
    memory_limit: str | None = None  # DuckDB's, in the task (gold.yml memory_per_task)


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
    query = mart.traced()
    sqls = [
        query.lineage_sql(index, others)
        for index, name in enumerate(query.occurrences)
        if name in marked
    ]
    return _parts(silver.con, sqls, mart.columns)


def _increment(silver: SilverSnapshot, mart: Mart, seen: dict, read: dict) -> tuple | None:
    """The parts that silver's changes since ``seen`` reach (None: recompute the whole)."""
    moved = [name for name in mart.inputs if read[name] != seen.get(name)]
    changes = {name: silver.changes(name, seen.get(name, -1)) for name in moved}
    if any(rows is None for rows in changes.values()):
        return None
    changed = {name: rows for name, rows in changes.items() if rows is not None and rows.num_rows}
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
    """Every partition the mart's query gives now, to spread a whole recompute over tasks.
    None for a query that cannot be traced, nor for a mart without a partition: a task of
    some of its keys reads every input row (the keys lie in any of silver's files), so N
    tasks would read silver N times (SF 10: 18 tasks of 50,000 customers); one task reads
    it once."""
    if mart.whole or not mart.partition:
        return ()
    return _parts(silver.con, [mart.traced().lineage_sql(None)], mart.columns)


def plan(lake: Location, silver: SilverSnapshot, mart: Mart, mode: RunMode) -> MartPlan:
    """What to recompute: what silver changed since the mart's watermark, a date range
    (backfill) or everything (full refresh). In plan mode it is only logged."""
    target = lake.child("gold", mart.name)
    last = delta.last_watermark(delta.open_table(target), mart.app_id) or {}
    seen = {"silver_versions": last.get("silver_versions", {}), "query": last.get("query")}
    read = {name: silver.versions[name] for name in mart.inputs}
    current = {"silver_versions": read, "query": mart.fingerprint}
    touched: tuple = ()
    whole, watermark = False, current
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
        increment = _increment(silver, mart, seen["silver_versions"], read)
        if increment is None:
            touched, whole = _everything(silver, mart), True
        else:
            touched = increment
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
    parts = set(_parts(built_from.con, [mart.traced().lineage_sql(None)], mart.columns))
    built_from.close()
    table = delta.open_table(target)
    if table is None:  # its watermark was read from this table's log: only gone since
        raise RuntimeError(f"gold/{mart.name}: no table at {target.uri} to audit")
    held = delta.frame(table.to_pyarrow_table(columns=list(mart.columns)))
    parts |= set(held.unique().iter_rows() if len(mart.columns) > 1 else held.to_series())
    touched = audit.sample(tuple(sorted(parts)), mode.sample, f"{mart.name}:{date.today()}")
    return MartPlan(mart, target, mode, touched, versions, seen, sources, seen, whole=not touched)


def tasks(
    plans: list[MartPlan], lake: Location, partitions: int, keys: int, memory: str | None = None
) -> list[PartTask]:
    """The plans cut into executor tasks: ``partitions`` partition values or ``keys`` keys
    each, neighbours together so that each task's scans prune to a narrow range; a mart
    recomputed whole without known parts is one task."""
    cut = []
    for p in plans:
        if p.whole and not p.touched:
            cut.append(PartTask(p.mart, lake, p.silver_versions, None, memory))
            continue
        size = partitions if p.mart.partition else keys
        for start in range(0, len(p.touched), size):
            values = p.touched[start : start + size]
            cut.append(PartTask(p.mart, lake, p.silver_versions, values, memory))
    return cut


def compute(task: PartTask) -> MartPart:
    """Recompute a task's partitions (or keys) of a mart from silver, checked by its
    contract. Runs on the executor: it opens its own snapshot of the silver versions."""
    mart, values = task.mart, task.values
    started = time.perf_counter()
    prune = {}
    if values is not None:
        prune = {name: sqltext.in_list(column, values) for name, column in mart.prune.items()}
    silver = SilverSnapshot.open(task.lake, task.silver_versions, prune, task.memory_limit)
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


def compared(plan: MartPlan, parts: list[MartPart]) -> delta.WriteResult:
    """An audit's result: the mart's stored rows of the recomputed parts against them."""
    target, mart = plan.target, plan.mart
    table = delta.open_table(target)
    if table is None or not (parts or plan.whole):
        return delta.WriteResult(target.name, target.uri, "none", 0, None)
    fresh = delta.frame(pa.concat_tables([p.rows for p in parts]))
    dataset = table.to_pyarrow_dataset()
    if plan.whole:
        stored = delta.frame(dataset.to_table())
    else:  # a partitioned mart reads just the audited partitions
        only = pc.field(mart.partition).isin(list(plan.touched)) if mart.partition else None
        stored = delta.frame(delta.read_where(dataset, only))
        asked = _parts_frame(plan.touched, list(mart.columns), stored.select(mart.columns).schema)
        stored = stored.join(asked, on=list(mart.columns), how="semi")
    drift = audit.compare(stored, fresh, list(mart.contract.keys))
    drift["parts"] = len(plan.touched) if not plan.whole else "all"
    drift["seconds"] = round(sum(p.seconds for p in parts), 3)
    inputs = (*plan.sources, target.uri)
    return delta.WriteResult(
        target.name, target.uri, "audit", fresh.height, table.version(), inputs=inputs, drift=drift
    )
