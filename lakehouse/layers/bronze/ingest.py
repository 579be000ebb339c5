"""Bronze staging: each new landing file read as its format promises and written, with
lineage columns, as Parquet inside its bronze table; the files that cannot be read recorded
(which files are new: ``landing_files``; committing the staged files: ``commit``).

Staging runs in parallel, one Hamilton task per batch of a source's files. A text source's
files are written several to a Parquet file, the lineage columns in it. A Parquet source's
table keeps its lineage as partition values in the Delta log instead (``LINEAGE`` its
partition columns, one data file per landing file), so a landing file already in types
Delta holds is added as it is, its bytes copied after it was read and checked, not
re-encoded (``_staged_as_is``). A staged Parquet file is invisible until a commit adds it:
a run killed before that leaves only unreferenced Parquet files behind (removed by
``vacuum``), never half a landing file.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import Transaction

from lakehouse.core import delta, delta_log, fence, row_hashes
from lakehouse.core.storage import Location
from lakehouse.io.files import BadFileError, read_bytes, read_file
from lakehouse.layers.bronze.landing_files import LandingFile, bad_files_location
from lakehouse.layers.bronze.pending import Pending

BAD_FILES_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("file", pa.string()),
        ("size", pa.int64()),
        ("fingerprint", pa.int64()),
        ("error", pa.string()),
        ("message", pa.string()),
        ("run_id", pa.string()),
        ("recorded_at", pa.timestamp("us", "UTC")),
    ]
)
LINEAGE = {
    "_source_file": pl.String(),
    "_ingested_at": pl.Datetime("us", "UTC"),
    "_run_id": pl.String(),
}


@dataclass(frozen=True)
class BadFile:
    """A landing file left in place, not ingested, and why."""

    file: LandingFile
    error: str
    message: str

    def __str__(self) -> str:
        return f"{self.file.uri}: {self.error}: {self.message}"


@dataclass(frozen=True)
class StagedFile:
    """A landing file's rows written as Parquet inside its bronze table, not yet committed."""

    file: LandingFile
    path: str  # the Parquet file (relative to the table root), shared by the files of a task
    size: int  # that Parquet file's bytes
    rows: int  # this landing file's rows
    schema: pa.Schema  # the table's columns it brings, lineage included
    lineage: dict[str, str] | None = None  # partition values: lineage kept in the log


def lineage_in_log(table: DeltaTable | None, file: LandingFile) -> bool:
    """Whether ``file``'s table keeps lineage as partition values, a landing file to a data
    file: a Parquet source's table made since it does (an older one keeps the columns)."""
    if table is None:
        return file.format == "parquet"
    return table.metadata().partition_columns == list(LINEAGE)


def read_landing_file(
    file: LandingFile, expected: pa.Schema | None = None, data: bytes | None = None
) -> pl.DataFrame:
    """The file's rows as landed: CSV and JSON values as text (typing happens in silver);
    ``data``: its bytes, when read already.

    Raises ``BadFileError`` for a file that is not what its format and source promise:
    zero bytes, broken compression, not UTF-8, unparseable, or columns missing or retyped
    against ``expected`` (the bronze table's schema so far).
    """
    frame = read_file(file.uri, file.format, file.compression, data)
    if file.format == "parquet":
        frame = frame.with_columns(pl.col(pl.String).cast(pl.String))
    _check_columns(frame, expected, file)
    return frame


def _check_columns(frame: pl.DataFrame, expected: pa.Schema | None, file: LandingFile) -> None:
    """The declared columns must be there; columns the table has keep their type; new
    columns are welcome (schema evolution) unless an entity of the source says ``fail``."""
    missing = [name for name in file.required if name not in frame.columns]
    if missing:
        hint = ""
        header = frame.columns[0] if frame.width == 1 else ""
        if sum(name in header for name in file.required) > 1:  # ; and tab arrive as _
            hint = f" (the header is one column, {header!r}: wrong delimiter?)"
        raise BadFileError(
            "missing_columns", f"bronze/{file.source} needs {', '.join(missing)}{hint}"
        )
    extra = [name for name in frame.columns if name not in file.required]
    if file.closed and extra:
        raise BadFileError(
            "new_columns",
            f"bronze/{file.source} has undeclared column(s) {', '.join(extra)} and its entity's "
            "schema_evolution is fail (declare them, or set add_columns)",
        )
    if expected is None:
        return
    arrow = frame.head(0).to_arrow().schema
    for field in expected:
        if field.name.startswith("_") or field.name not in arrow.names:
            continue
        new, old = _comparable(arrow.field(field.name).type), _comparable(field.type)
        if new != old:
            raise BadFileError(
                "changed_type",
                f"bronze/{file.source} column {field.name} was {old}, this file has {new}",
            )


def _comparable(dtype: pa.DataType) -> pa.DataType:
    return (
        pa.string() if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype) else dtype
    )


def _run_lineage(run_id: str, ingested_at: datetime) -> list[pl.Expr]:
    """The run's lineage columns but ``_source_file`` (made once per task, not per file)."""
    return [
        pl.lit(ingested_at, LINEAGE["_ingested_at"]).alias("_ingested_at"),
        pl.lit(run_id, pl.String).alias("_run_id"),
    ]


def _write_staged(
    table: Location, files: list[tuple[LandingFile, int]], frames: list, run_id: str
) -> list[StagedFile]:
    """The rows of ``files`` ((file, rows) of one source; their data in ``frames``) written
    as one Parquet file in the table."""
    data = pl.concat(frames, how="diagonal_relaxed")
    relative = f"part-{run_id}-{uuid.uuid4().hex[:12]}.parquet"
    size = _written(table, relative, data)
    row_hashes.write(table, relative, data, dict(files[0][0].hashed))
    schema = data.head(0).to_arrow().schema
    return [StagedFile(f, relative, size, rows, schema) for f, rows in files]


def _written(table: Location, relative: str, data: pl.DataFrame | bytes) -> int:
    """``data`` staged as the Parquet file ``relative`` inside the table: rows encoded, or a
    Parquet file's bytes as they are; its size in bytes."""
    target = table.child(relative)
    fence.check()  # a run that lost its lease stages no file either
    table.fs.makedirs(target.uri.rsplit("/", 1)[0], exist_ok=True)
    with table.fs.open(target.uri, "wb") as out:
        if isinstance(data, bytes):
            out.write(data)
        else:  # Polars' writer: twice pyarrow's speed here
            data.write_parquet(out, compression="zstd", compression_level=1)
    return table.fs.size(target.uri)


def stage(
    files: list[LandingFile], run_id: str, ingested_at: datetime, max_rows: int
) -> list[StagedFile | BadFile]:
    """Read landing files of one source, add lineage columns and write their rows as Parquet
    into the table, several files to a Parquet file of at most ``max_rows`` rows (a bigger
    file alone), or each file as a data file of its own with its lineage in the log (a
    Parquet source's table); a file that cannot be read as promised comes back as a
    ``BadFile``."""
    table_location = files[0].table
    table = delta.open_table(table_location)  # once per task, not per file
    expected = pa.schema(table.schema().to_arrow()) if table is not None else None
    if lineage_in_log(table, files[0]):
        staged: list[StagedFile | BadFile] = []
        for file in files:  # a new table's first file sets the types the others keep
            staged.append(_staged_as_is(file, expected, run_id, ingested_at))
            if expected is None and isinstance(staged[-1], StagedFile):
                expected = staged[-1].schema
        return staged
    outcomes: list[StagedFile | BadFile] = []
    run = _run_lineage(run_id, ingested_at)
    pending = Pending(run)
    for file in files:
        try:
            rows = read_landing_file(file, expected)
        except BadFileError as error:
            outcomes.append(BadFile(file, error.kind, str(error)))
            continue
        if pending.files and pending.rows + rows.height > max_rows:
            outcomes += _write_staged(table_location, pending.files, pending.frames(), run_id)
            pending = Pending(run)
        pending.add(file, rows)
    if pending.files:
        outcomes += _write_staged(table_location, pending.files, pending.frames(), run_id)
    return outcomes


def _staged_as_is(
    file: LandingFile, expected: pa.Schema | None, run_id: str, ingested_at: datetime
) -> StagedFile | BadFile:
    """One landing file as a data file of its own, its lineage the partition values: the
    file's bytes when bronze would store what they hold (read, checked, then copied), its
    rows re-encoded otherwise (names bronze changes, types Delta does not hold as they are)."""
    try:
        data = read_bytes(file.uri, file.compression)
        rows = read_landing_file(file, expected, data)
    except BadFileError as error:
        return BadFile(file, error.kind, str(error))
    lineage = {
        "_source_file": file.relative,
        "_ingested_at": ingested_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "_run_id": run_id,
    }
    folder = "/".join(f"{name}={quote(value, safe='')}" for name, value in lineage.items())
    relative = f"{folder}/part-{uuid.uuid4().hex[:12]}.parquet"
    rows = rows.drop(list(LINEAGE), strict=False)  # a landed column of that name: the log's
    size = _written(file.table, relative, data if _as_is(data, rows) else rows)
    row_hashes.write(file.table, relative, rows, dict(file.hashed))
    schema = pa.schema([*rows.head(0).to_arrow().schema, *_lineage_fields()])
    return StagedFile(file, relative, size, rows.height, schema, lineage)


def _lineage_fields() -> list[pa.Field]:
    return list(pl.DataFrame(schema=LINEAGE).to_arrow().schema)


DELTA_AS_IS = (  # Arrow types a Delta table holds without a cast on read
    pa.types.is_boolean, pa.types.is_signed_integer, pa.types.is_float32,
    pa.types.is_float64, pa.types.is_decimal128, pa.types.is_string,
    pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
    pa.types.is_date32,
)  # fmt: skip


def _as_is(data: bytes, rows: pl.DataFrame) -> bool:
    """Whether a Parquet file's bytes hold what bronze stores of it: every column, under the
    name bronze gives it, of a type Delta holds as it is (microsecond timestamps included)."""
    if not data.startswith(b"PAR1"):
        return False
    schema = pq.read_schema(io.BytesIO(data))
    return schema.names == rows.columns and all(
        any(kind(f.type) for kind in DELTA_AS_IS)
        or (pa.types.is_timestamp(f.type) and f.type.unit == "us")
        for f in schema
    )


def record_bad_files(lake: Location, bad: list[BadFile], run_id: str) -> delta.WriteResult | None:
    """Record unreadable files (left where they are) in ``_quarantine/_files``, each once per
    version of the file: an app transaction per file holds the fingerprint recorded."""
    location = bad_files_location(lake)
    known = delta_log.app_transactions(location)
    new = [b for b in bad if known.get(b.file.app_id) != b.file.fingerprint]
    if not new:
        return None
    now = datetime.now(UTC)
    rows = pa.Table.from_pylist(
        [
            {
                "source": b.file.source,
                "file": b.file.relative,
                "size": b.file.size,
                "fingerprint": b.file.fingerprint,
                "error": b.error,
                "message": b.message,
                "run_id": run_id,
                "recorded_at": now,
            }
            for b in new
        ],
        schema=BAD_FILES_SCHEMA,
    )
    app_id = "bronze:bad_files"
    batch = delta.last_batch(delta.open_table(location), app_id) + 1
    properties = delta.commit_properties(
        app_id,
        batch,
        {"files": len(new)},
        run_id,
        extra_transactions=[Transaction(b.file.app_id, b.file.fingerprint) for b in new],
    )
    version = delta.append(location, rows, properties)
    return delta.WriteResult(location.name, location.uri, "append", len(new), version)
