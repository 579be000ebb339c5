"""Bronze commits: a task's staged landing files added to their table, as the task returns.

Staging (``lakehouse.layers.bronze.ingest``) writes Parquet files into the table folder on
the executor's workers; committing them is the driver's, the table's only writer. The
driver commits each task's batch as it comes back (``lakehouse.runtime.commits``), in the
batches' name order per table, so a stopped run keeps the batches it finished and its rerun
takes only the rest: every landing file is committed once, whole, with an app transaction
holding its fingerprint. Where the driver cannot commit early (``on_bad_file: fail``, or a
run without the runtime's adapter), ``bronze_tables`` commits at the end, in the same order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from deltalake.transaction import AddAction, RemoveAction, Transaction
from loguru import logger

from lakehouse.core import delta, delta_log
from lakehouse.core.storage import Location
from lakehouse.layers.bronze.ingest import LINEAGE, BadFile, StagedFile


@dataclass
class StagedBatch:
    """What a staging task returns: its files' outcomes (staged or bad), and once committed,
    the commits' results."""

    outcomes: list[StagedFile | BadFile]
    table: Location
    position: int  # the batch's place among the run's batches of its table
    run_id: str
    max_rows: int  # rows a commit takes at most
    early: bool  # the driver may commit it as soon as the task returns
    results: list[delta.WriteResult] | None = field(default=None)

    @property
    def lane(self) -> str:
        """Batches of one lane commit in ``position`` order (``lakehouse.runtime.commits``)."""
        return self.table.uri

    @property
    def staged(self) -> list[StagedFile]:
        return [o for o in self.outcomes if isinstance(o, StagedFile)]

    @property
    def bad(self) -> list[BadFile]:
        return [o for o in self.outcomes if isinstance(o, BadFile)]

    def commit(self, opened: dict[str, Any]) -> None:
        """Commit the staged files (at most ``max_rows`` rows a commit), once."""
        if self.results is not None:
            return
        results = []
        for group in commit_groups(self.staged, self.max_rows):
            result = commit_staged(self.table, group[0].file.source, group, self.run_id, opened)
            logger.debug(f"bronze: {result} ({len(group)} files)")
            results.append(result)
        self.results = results

    def discard(self) -> None:
        """Remove the staged Parquet files, when not committed."""
        if self.results is None:
            discard(self.staged)


def _unified_schema(schemas: list[pa.Schema]) -> pa.Schema:
    return pa.unify_schemas(
        [
            pa.schema(
                [f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in s]
            )
            for s in schemas
        ]
    )


def commit_staged(
    table_location: Location,
    source: str,
    staged: list[StagedFile],
    run_id: str,
    opened: dict[str, Any] | None = None,
) -> delta.WriteResult:
    """Add the staged files to the bronze table in one commit with their file watermarks.

    ``opened``: the tables this run has committed to so far, by URI, and their app
    transactions (``<URI> transactions``), kept up to date here, so that a table taking
    many commits is opened once and its log read once, not once per commit.
    """
    schema = _unified_schema([s.schema for s in staged])
    opened = {} if opened is None else opened
    by_file = list(LINEAGE) if staged[0].lineage else None  # lineage in the log
    table = opened.get(table_location.uri) or delta.ensure_table(table_location, schema, by_file)
    opened[table_location.uri] = table
    added = delta.add_missing_columns(table, schema)
    if added:
        logger.warning(f"bronze/{source}: new column(s) {', '.join(added)} added to the table")
        table.update_incremental()
    # Not brought up to date before each commit: the driver did after its own last one, and
    # delta-rs lands an append on any other writer's commits since (refusing one that holds
    # this source's batch), so the log's transactions below are what decides.
    known = opened.get(f"{table_location.uri} transactions")  # not a log replay per file
    known = delta_log.known_transactions(table_location, known)  # + commits since (others')
    opened[f"{table_location.uri} transactions"] = known
    ingested = known.ids
    taken = {s.path for s in staged if ingested.get(s.file.app_id) == s.file.fingerprint}
    for path in taken:  # a concurrent run committed a file of it first: the others of the
        table_location.fs.rm(table_location.child(path).uri)  # Parquet file go next run
    fresh = [s for s in staged if s.path not in taken]
    if not fresh:  # the table's version as its log says, others' commits included
        return delta.WriteResult(
            table_location.name, table_location.uri, "append", 0, known.through
        )

    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        AddAction(
            path,  # deltalake writes it to the log as a URI (a partition folder's % escaped)
            group[0].size,
            group[0].lineage or {},
            now_ms,
            True,
            json.dumps({"numRecords": rows}),
        )
        for path, group in by_parquet(fresh).items()
        for rows in [sum(s.rows for s in group)]
    ]
    app_id = f"bronze:{source}"
    batch = ingested.get(app_id, 0) + 1
    rows = sum(s.rows for s in fresh)
    watermark = {"rows": rows, "files": [{"name": s.file.name, "size": s.file.size} for s in fresh]}
    properties = delta.commit_properties(
        app_id,
        batch,
        watermark,
        run_id,
        extra_transactions=[Transaction(s.file.app_id, s.file.fingerprint) for s in fresh],
    )
    delta.check_not_committed(table, properties, ingested)
    table.create_write_transaction(
        actions,
        "append",
        table.schema(),
        partition_by=table.metadata().partition_columns or None,
        commit_properties=properties,
    )
    table.update_incremental()
    landed = sum(s.file.size for s in fresh)
    return delta.WriteResult(
        table_location.name,
        table_location.uri,
        "append",
        rows,
        table.version(),
        rows,
        landed,
        files=len(fresh),
        inputs=tuple(sorted({s.file.uri.rsplit("/", 1)[0] for s in fresh})),
    )


def by_parquet(staged: list[StagedFile]) -> dict[str, list[StagedFile]]:
    """Staged landing files by the Parquet file holding their rows."""
    files: dict[str, list[StagedFile]] = {}
    for s in staged:
        files.setdefault(s.path, []).append(s)
    return files


def discard(staged: list[StagedFile]) -> None:
    """Remove staged Parquet files that will not be committed."""
    for path, group in by_parquet(staged).items():
        group[0].file.table.fs.rm(group[0].file.table.child(path).uri)


def commit_groups(staged: list[StagedFile], max_rows: int) -> list[list[StagedFile]]:
    """Staged files grouped per table into commits of at most ``max_rows`` rows each (a
    Parquet file larger than that gets a commit of its own), in file-name order; the files
    sharing a Parquet file are always in the same commit."""
    groups: list[list[StagedFile]] = []
    current: list[StagedFile] = []
    held = 0  # rows in ``current``
    parquets = sorted(by_parquet(staged).values(), key=lambda g: (g[0].file.source, g[0].file.name))
    for parquet in parquets:
        source, rows = parquet[0].file.source, sum(s.rows for s in parquet)
        same_table = current and current[0].file.source == source
        if current and (not same_table or held + rows > max_rows):
            groups.append(current)
            current, held = [], 0
        current += parquet
        held += rows
    return groups + ([current] if current else [])
