"""Bronze ingestion edges: list new landing files, stage each as Parquet, commit them at once.

The file watermark lives in the bronze table's own log: each ingested file is an app
transaction ``file:<source>/<name>`` whose version is a fingerprint of the file's size and
modification time (or etag). A file is new when its fingerprint differs from the one
recorded, so a late file with an old name and a file rewritten in place are both picked up,
and a run costs one folder listing plus one read of the table's transactions.

Staging writes each file's rows as a Parquet file inside the table folder (in parallel, one
Hamilton task per file); one Delta commit per table then adds all of them together with the
per-file transactions and the batch watermark. A run killed before that commit leaves only
unreferenced Parquet files behind (removed by ``vacuum``), never half a batch.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake.transaction import AddAction, Transaction

from lakehouse import delta
from lakehouse.storage import Location

FORMATS = {"csv": (".csv",), "parquet": (".parquet",)}
LINEAGE = {
    "_source_file": pl.String,
    "_ingested_at": pl.Datetime("us", "UTC"),
    "_run_id": pl.String,
}


@dataclass(frozen=True)
class LandingFile:
    """One landing file not yet ingested, and where its rows go."""

    source: str
    uri: str
    name: str
    format: str
    size: int
    fingerprint: int
    table: Location

    @property
    def app_id(self) -> str:
        return f"file:{self.source}/{self.name}"


@dataclass(frozen=True)
class StagedFile:
    """A landing file's rows written as Parquet inside its bronze table, not yet committed."""

    file: LandingFile
    path: str  # relative to the table root
    size: int
    rows: int
    schema: pa.Schema


def fingerprint(info: dict) -> int:
    """A 62-bit number that changes when the file's size or version (etag, mtime) changes."""
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    digest = hashlib.sha256(f"{info['size']}:{version}".encode()).hexdigest()
    return int(digest[:15], 16)


def list_new_files(landing: Location, lake: Location, source: str, fmt: str) -> list[LandingFile]:
    """The files of ``landing/<source>/`` whose fingerprint the bronze table has not recorded."""
    if fmt not in FORMATS:
        raise ValueError(f"source {source!r}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    folder = landing.child(source)
    table_location = lake.child("bronze", source)
    if not folder.exists():
        return []
    ingested = delta.app_transactions(table_location)
    files = []
    for info in sorted(folder.fs.ls(folder.uri, detail=True), key=lambda i: i["name"]):
        name = info["name"].rsplit("/", 1)[-1]
        if info["type"] != "file" or name.startswith((".", "_")) or not name.endswith(FORMATS[fmt]):
            continue
        candidate = LandingFile(
            source,
            f"{folder.uri}/{name}",
            name,
            fmt,
            info["size"],
            fingerprint(info),
            table_location,
        )
        if ingested.get(candidate.app_id) != candidate.fingerprint:
            files.append(candidate)
    return files


def by_source(files: list[LandingFile]) -> dict[str, list[LandingFile]]:
    grouped: dict[str, list[LandingFile]] = {}
    for file in files:
        grouped.setdefault(file.source, []).append(file)
    return grouped


def estimate_rows(file: LandingFile) -> int:
    """Rows in a landing file without parsing it: Parquet's footer, or CSV lines less the header."""
    fs = Location(file.uri).fs
    with fs.open(file.uri, "rb") as handle:
        if file.format == "parquet":
            return pq.ParquetFile(handle).metadata.num_rows
        return max(0, handle.read().count(b"\n") - 1)


def read_landing_file(file: LandingFile, fs) -> pl.DataFrame:
    """The file's rows as landed: CSV columns all as text (typing happens in silver)."""
    with fs.open(file.uri, "rb") as handle:
        if file.format == "csv":
            return pl.read_csv(handle, infer_schema=False)
        return pl.read_parquet(handle).with_columns(pl.col(pl.String).cast(pl.String))


def stage(file: LandingFile, fs, run_id: str, ingested_at: datetime) -> StagedFile:
    """Read one landing file, add lineage columns and write it as Parquet into its table."""
    rows = read_landing_file(file, fs).with_columns(
        _source_file=pl.lit(file.uri, pl.String),
        _ingested_at=pl.lit(ingested_at, LINEAGE["_ingested_at"]),
        _run_id=pl.lit(run_id, pl.String),
    )
    data = rows.to_arrow()
    relative = f"part-{run_id}-{uuid.uuid4().hex[:12]}.parquet"
    target = file.table.child(relative)
    file.table.fs.makedirs(file.table.uri, exist_ok=True)
    with file.table.fs.open(target.uri, "wb") as out:
        pq.write_table(data, out, compression="zstd")
    return StagedFile(file, relative, file.table.fs.size(target.uri), data.num_rows, data.schema)


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
    table_location: Location, source: str, staged: list[StagedFile], run_id: str
) -> delta.WriteResult:
    """Add the staged files to the bronze table in one commit with their file watermarks."""
    schema = _unified_schema([s.schema for s in staged])
    table = delta.ensure_table(table_location, schema)
    delta.add_missing_columns(table, schema)
    table.update_incremental()

    fresh = [s for s in staged if delta.last_batch(table, s.file.app_id) != s.file.fingerprint]
    for s in staged:
        if s not in fresh:  # a concurrent run committed this file first
            table_location.fs.rm(table_location.child(s.path).uri)
    if not fresh:
        return delta.WriteResult(
            f"bronze/{source}", table_location.uri, "append", 0, table.version()
        )

    now_ms = int(time.time() * 1000)
    actions = [
        AddAction(s.path, s.size, {}, now_ms, True, json.dumps({"numRecords": s.rows}))
        for s in fresh
    ]
    app_id = f"bronze:{source}"
    batch = delta.last_batch(table, app_id) + 1
    rows = sum(s.rows for s in fresh)
    watermark = {"rows": rows, "files": [{"name": s.file.name, "size": s.file.size} for s in fresh]}
    properties = delta.commit_properties(
        app_id,
        batch,
        watermark,
        run_id,
        extra_transactions=[Transaction(s.file.app_id, s.file.fingerprint) for s in fresh],
    )
    table.create_write_transaction(actions, "append", table.schema(), commit_properties=properties)
    table.update_incremental()
    return delta.WriteResult(
        f"bronze/{source}", table_location.uri, "append", rows, table.version()
    )


def commit_groups(staged: list[StagedFile], max_rows: int) -> list[list[StagedFile]]:
    """Staged files grouped per table into commits of at most ``max_rows`` rows each
    (a file larger than that gets a commit of its own), in file-name order."""
    groups: list[list[StagedFile]] = []
    current: list[StagedFile] = []
    for file in sorted(staged, key=lambda s: (s.file.source, s.file.name)):
        same_table = current and current[0].file.source == file.file.source
        if current and (not same_table or sum(s.rows for s in current) + file.rows > max_rows):
            groups.append(current)
            current = []
        current.append(file)
    return groups + ([current] if current else [])
