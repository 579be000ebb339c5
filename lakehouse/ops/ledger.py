"""The run ledger: ``lake_root/_runs``, a Delta table with one row per run of a pipeline.

A run's row is written when it starts (``running``) and completed when it ends
(``succeeded``, ``failed``), so a run killed outright leaves ``running`` behind; the next run
of the same pipeline, once it holds the pipeline's lock (so the killed one is surely gone),
marks such rows ``abandoned`` in the commit that adds its own row. Every ledger write is
fenced like the tables' (``lakehouse.core.fence``), and a run's end only completes a row that is
still ``running``: a run that lost its lease to another host never turns the ``abandoned``
the other host set back into ``succeeded``. Each row says what the run did to each table it
wrote: rows, operation, version, and the table's watermark before and after the run (from
the commits' metadata). The ledger is itself in the lake, so it follows the lake to S3.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from loguru import logger

from lakehouse.core import delta, fence
from lakehouse.core.runs import Run
from lakehouse.core.storage import Location, check_conditional_put
from lakehouse.ops import summary

SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("status", pa.string()),  # running, succeeded, failed, abandoned
        ("started_at", pa.timestamp("us", "UTC")),
        ("ended_at", pa.timestamp("us", "UTC")),
        ("seconds", pa.float64()),
        ("rows_read", pa.int64()),  # from upstream (bronze: landing files, silver: bronze)
        ("rows_written", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("tables", pa.string()),  # JSON: per table written, rows, operation, version, watermarks
        ("executor", pa.string()),
        ("host", pa.string()),
        ("git_commit", pa.string()),
        ("inputs", pa.string()),  # JSON
        ("error_type", pa.string()),
        ("error_message", pa.string()),
    ]
)
T = TypeVar("T")
ATTEMPTS = 20  # concurrent runs of other pipelines commit to the ledger too
MAX_FILES = 16  # more than this and the ledger is compacted and checkpointed (record_end)


def location(lake_root: str) -> Location:
    return Location.from_uri(lake_root).child("_runs")


def _committed(action: Callable[[], T]) -> T:
    """Run a ledger commit, again if another run's ledger commit landed first; each try
    only while the run holds its lease."""
    for attempt in range(ATTEMPTS):
        fence.check()
        try:
            return action()
        except CommitFailedError:
            time.sleep(0.05 * (attempt + 1))
    fence.check()
    return action()


def _table_writes(run: Run) -> list[dict]:
    writes, marks = [], {}
    for result in run.results():
        if result.uri not in marks:  # once per table: a backfill commits to one many times
            marks[result.uri] = delta.run_watermarks(Location.from_uri(result.uri), run.run_id)
        before, after = marks[result.uri]
        writes.append(
            {
                "table": result.table,
                "operation": result.operation,
                "rows": result.rows,
                "rows_read": result.rows_read,
                "bytes": result.bytes,
                "version": result.version,
                "files": result.files,
                "by_rule": result.by_rule,
                "drift": result.drift,
                "watermark_before": before,
                "watermark_after": after,
            }
        )
    return writes


def _row(run: Run, writes: list[dict]) -> pa.Table:
    total = summary.moved(run.results())  # counted as the run's summary counts them
    row = {
        "pipeline": run.pipeline,
        "run_id": run.run_id,
        "status": run.status,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "seconds": run.seconds,
        "rows_read": total.rows_in,
        "rows_written": total.written,
        "rows_quarantined": total.quarantined,  # rows; bad files are in "tables"
        "tables": json.dumps(writes, sort_keys=True, default=str),
        "executor": run.executor,
        "host": run.host,
        "git_commit": run.git_commit,
        "inputs": json.dumps(run.inputs, sort_keys=True, default=str),
        "error_type": run.error_type,
        "error_message": run.error_message,
    }
    return pa.Table.from_pylist([row], schema=SCHEMA)


def record_start(ledger: Location, run: Run) -> None:
    """Add this run's row and mark runs of this pipeline left ``running`` as abandoned, in
    one commit."""
    check_conditional_put(ledger)  # the first write of a run: refuse an unsafe store here
    table = delta.ensure_table(ledger, SCHEMA)
    left = delta.read_where(
        table.to_pyarrow_dataset(),
        (pc.field("pipeline") == run.pipeline) & (pc.field("status") == "running"),
        ["run_id"],
    ).column("run_id")
    if len(left):
        logger.warning(
            f"{run.pipeline}: runs {', '.join(left.to_pylist())} ended without an outcome "
            "(killed, or paused past their lease): marked abandoned in the ledger"
        )
    stale = pa.table({"run_id": left}).cast(pa.schema([SCHEMA.field("run_id")]))
    rows = pa.concat_tables([_row(run, []), stale], promote_options="default").cast(SCHEMA)
    _committed(  # a fresh snapshot each attempt
        lambda: (
            DeltaTable(ledger.uri, storage_options=ledger.delta_options)
            .merge(rows, "t.run_id = s.run_id", source_alias="s", target_alias="t")
            .when_matched_update(
                {
                    "status": "'abandoned'",
                    "error_message": "'the run ended without recording an outcome (killed?)'",
                },
                predicate="t.status = 'running'",
            )
            .when_not_matched_insert_all()
            .execute()
        )
    )


def record_end(ledger: Location, run: Run) -> None:
    """Complete this run's row with its outcome and what it wrote (while it is ``running``:
    a row another run marked ``abandoned`` stays so). A run that lost its lease writes
    nothing: it said so when it stopped."""
    if not fence.holds():
        logger.debug(f"{run.pipeline}: run {run.run_id} lost its lease: not recorded")
        return
    row = _row(run, _table_writes(run))

    def merge_row() -> tuple[DeltaTable, dict]:
        table = DeltaTable(ledger.uri, storage_options=ledger.delta_options)
        metrics = (
            table.merge(row, "t.run_id = s.run_id", source_alias="s", target_alias="t")
            .when_matched_update_all(predicate="t.status = 'running'")
            .when_not_matched_insert_all()
            .execute()
        )
        return table, metrics

    table, metrics = _committed(merge_row)
    if not (metrics.get("num_target_rows_updated") or metrics.get("num_target_rows_inserted")):
        logger.warning(
            f"{run.pipeline}: run {run.run_id} ended {run.status}, but another run had marked "
            f"it abandoned in {ledger.name}: left so"
        )
        return
    logger.debug(f"{run.pipeline}: run {run.run_id} recorded in {ledger.name} ({run.status})")
    _keep_compact(ledger, table)


def _keep_compact(ledger: Location, table: DeltaTable) -> None:
    """Every run adds a small file and two commits; read back on each run start and end, a
    ledger of hundreds of files costs 0.1-0.2 s a run. Past ``MAX_FILES`` they are compacted
    into one and the log checkpointed. Best effort: a ledger commit of a concurrent run that
    wins the race leaves it to the next run."""
    if len(table.file_uris()) <= MAX_FILES or not fence.holds():
        return
    try:
        table.optimize.compact()
        table.create_checkpoint()
    except CommitFailedError as error:
        logger.debug(f"{ledger.name}: compaction left to a later run ({error})")


def read(ledger: Location) -> pa.Table:
    table = delta.open_table(ledger)
    return SCHEMA.empty_table() if table is None else table.to_pyarrow_table()


def runs(lake_root: str = "data/lake") -> pl.DataFrame:
    """The run ledger of the lake at ``lake_root`` (a folder or ``s3://...``, credentials
    from the environment) as a Polars DataFrame, to filter in Polars or query in DuckDB.
    (DuckDB over ``DeltaTable(...).to_pyarrow_dataset()`` fails on a ``WHERE``: files written
    by MERGE store text as ``string_view``, which PyArrow's filters cannot compare.)"""
    return pl.DataFrame(read(location(lake_root)))
