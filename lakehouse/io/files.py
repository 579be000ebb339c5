"""File plugins: CSV, JSON lines and Parquet sources (any fsspec URI, folder or glob,
compressed or not) and a Parquet sink (one file per partition, replaced whole).

Sources read a landing file as it landed: CSV and JSON values as text (silver types them),
Parquet as typed. A file that is not what its format promises raises ``BadFileError``
naming the problem; bronze records it and leaves the file in place.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import zlib
from typing import ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.core import names
from lakehouse.core.storage import Location, replace_file
from lakehouse.io import listing
from lakehouse.io.base import Change, Moved, PluginError, Sink, Source, register

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".xz": "xz"}
GLOB_CHARACTERS = "*?["


class BadFileError(Exception):
    """A landing file that cannot be read as its format says; ``kind`` names the problem."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def compression_of(name: str, compression: str) -> str | None:
    """The codec a file is read with: the YAML's ``compression``, or from its suffix."""
    if compression == "infer":
        return next(
            (codec for suffix, codec in COMPRESSIONS.items() if name.endswith(suffix)), None
        )
    return None if compression == "none" else compression


def decompress(data: bytes, codec: str | None) -> bytes:
    try:
        if codec is None:
            return data
        if codec == "gzip":
            return gzip.decompress(data)
        if codec == "bz2":
            return bz2.decompress(data)
        if codec == "xz":
            return lzma.decompress(data)
        return pa.CompressedInputStream(pa.BufferReader(data), codec).read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as error:
        raise BadFileError(f"corrupt_{codec}", f"not a complete {codec} stream ({error})") from None


class FileSource(Source):
    """Files under ``uri`` (a folder or a glob; default ``landing_root/<source>/``)."""

    kind = "files"
    keys = ("uri", "compression")
    suffixes: ClassVar[tuple[str, ...]]

    def __init__(self, name: str, spec: dict, where: str):
        super().__init__(name, spec, where)
        self.compression = self.spec.get("compression", "infer")
        known = ("infer", "none", *sorted(set(COMPRESSIONS.values())))
        if self.compression not in known:
            raise PluginError(
                f"{where}.compression: {self.compression!r} is not one of {', '.join(known)}"
            )

    def matches(self, name: str) -> bool:
        """A file of this format, by its name (compressed or not); hidden files never."""
        if name.startswith((".", "_")):
            return False
        for suffix in COMPRESSIONS:
            if self.compression == "infer" and name.endswith(suffix):
                name = name[: -len(suffix)]
        return name.endswith(self.suffixes) or self.compression not in ("infer", "none")

    def list_files(self, default: Location) -> list[listing.Listed]:
        """Every file to consider, by name; ``name`` is unique within the source (the path
        below the folder, or below the glob's fixed part). A folder is read entry by entry,
        nothing kept of a file but a ``Listed`` (``lakehouse.io.listing``)."""
        uri = self.spec.get("uri")
        place = Location.from_uri(uri) if uri else default
        if not any(c in place.uri for c in GLOB_CHARACTERS):
            if not place.exists():
                return []
            entries = listing.files_in(place.fs, place.uri)
            base = place.uri
        else:
            globbed = place.fs.glob(place.uri, detail=True).values()
            entries = (listing.entry(info) for info in globbed if info["type"] == "file")
            base = place.uri[: min(place.uri.find(c) for c in GLOB_CHARACTERS if c in place.uri)]
            base = base.rsplit("/", 1)[0]
        protocol = place.uri.split("://", 1)[0] + "://" if "://" in place.uri else ""
        found = []
        for path, size, version, modified in entries:
            full = path if path.startswith(protocol) else f"{protocol}{path}"
            name = full[len(base) :].lstrip("/") if full.startswith(base) else path.rsplit("/")[-1]
            if self.matches(name.rsplit("/", 1)[-1]):
                found.append(listing.Listed(full, name, size, version, modified))
        return sorted(found, key=lambda f: f.name)

    def parse(self, data: bytes) -> pl.DataFrame:
        raise NotImplementedError


def read_file(uri: str, fmt: str, compression: str, data: bytes | None = None) -> pl.DataFrame:
    """One landing file's rows as landed (``data``: its bytes, when read already). Raises
    ``BadFileError`` for a file that is empty, badly compressed, not UTF-8 (text formats) or
    unparseable."""
    return FILE_FORMATS[fmt].parse(read_bytes(uri, compression) if data is None else data)


def read_bytes(uri: str, compression: str) -> bytes:
    """One landing file's bytes, decompressed. Raises ``BadFileError`` for a file that is
    empty or badly compressed."""
    with Location(uri).fs.open(uri, "rb") as handle:
        data = handle.read()
    if not data:
        raise BadFileError("empty_file", "the file has zero bytes")
    return decompress(data, compression_of(uri, compression))


def portable_columns(rows: pl.DataFrame, header: list[str] | None = None) -> pl.DataFrame:
    """``rows`` with the column names bronze gives them (``names.portable``: each character
    Delta cannot hold without column mapping becomes ``_``); ``header``: the names as the
    file gives them, when the parser altered them. Two names mapping to one: a bad file."""
    given = header if header is not None and len(header) == rows.width else rows.columns
    mapped = [names.portable(name) for name in given]
    clashes = sorted({name for name in mapped if mapped.count(name) > 1 or not name})
    if clashes:
        sources = [repr(g) for g, m in zip(given, mapped, strict=True) if m in clashes]
        raise BadFileError(
            "bad_column_names",
            f"columns {', '.join(sources)} would all be named {clashes[0]!r} in bronze "
            "(a name may appear once; space , ; { } ( ) = tab and newline become _)",
        )
    return (
        rows
        if mapped == rows.columns
        else rows.rename(dict(zip(rows.columns, mapped, strict=True)))
    )


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BadFileError("not_utf8", f"byte {error.start} (line {line}) is not UTF-8") from None


@register
class CsvSource(FileSource):
    format = "csv"
    suffixes = (".csv",)

    @staticmethod
    def parse(data: bytes) -> pl.DataFrame:
        text = _text(data)
        try:
            rows = pl.read_csv(io.BytesIO(data), infer_schema=False)
        except (pl.exceptions.PolarsError, ValueError) as error:
            raise BadFileError("unreadable_csv", str(error).strip().splitlines()[0]) from None
        # the header unescaped as CSV: Polars keeps a quoted name's doubled quotes (x""y)
        # and renames repeated names, where the file says x"y, or names a column twice
        header = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), None)
        return portable_columns(rows, header)


@register
class JsonLinesSource(FileSource):
    format = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    @staticmethod
    def parse(data: bytes) -> pl.DataFrame:
        rows = []
        for number, line in enumerate(_text(data).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise BadFileError("broken_json_line", f"line {number}: {error.msg}") from None
        return portable_columns(
            pl.DataFrame(rows, infer_schema_length=None).select(pl.all().cast(pl.String))
        )


@register
class ParquetSource(FileSource):
    format = "parquet"
    suffixes = (".parquet",)

    @staticmethod
    def parse(data: bytes) -> pl.DataFrame:
        try:
            rows = pl.read_parquet(io.BytesIO(data))
        except (pl.exceptions.PolarsError, OSError) as error:
            raise BadFileError("unreadable_parquet", str(error).strip().splitlines()[0]) from None
        return portable_columns(rows)


FILE_FORMATS = {cls.format: cls for cls in (CsvSource, JsonLinesSource, ParquetSource)}


@register
class ParquetSink(Sink):
    """``uri/<mart>/<partition>=<value>/data.parquet`` per partition (``uri/<mart>/data.parquet``
    for a keyed mart), each replaced whole; ``uri/<mart>/_published.json`` holds the gold
    version, written last. Readers see each file old or new; a publish touching several
    partitions is not atomic across them (use Delta, DuckDB or PostgreSQL for that)."""

    format = "parquet"
    keys = ("uri", "compression")
    required = ("uri",)

    def folder(self, table: str) -> Location:
        return Location.from_uri(self.spec["uri"]).child(table)

    def target(self, table: str) -> str:
        return self.folder(table).uri

    def published_version(self, table: str) -> int | None:
        state = self.folder(table).child("_published.json")
        if not state.exists():
            return None
        return json.loads(state.fs.cat_file(state.uri))["version"]

    def write(self, change: Change) -> Moved:
        folder, moved = self.folder(change.table), Moved()
        rows = pa.Table.from_batches(list(change.batches), change.schema)
        moved.count(rows)
        if change.partition is None:
            self._replace_rows(folder, change, rows)
        else:
            values = rows.column(change.partition).unique().to_pylist()
            if change.whole and folder.exists():
                for info in folder.fs.ls(folder.uri, detail=True):
                    if info["type"] == "directory":
                        folder.fs.rm(info["name"], recursive=True)
            for value in sorted(set(values) | set(change.values)):
                part = folder.child(f"{change.partition}={value}", "data.parquet")
                mask = pc.equal(rows.column(change.partition), pa.scalar(value))
                self._put(part, rows.filter(mask).drop_columns([change.partition]))
        state = {"version": change.version, "table": change.table}
        replace_file(folder.child("_published.json"), json.dumps(state).encode())
        return moved

    def _replace_rows(self, folder: Location, change: Change, rows: pa.Table) -> None:
        target = folder.child("data.parquet")
        if not change.whole and target.exists():
            with target.fs.open(target.uri, "rb") as handle:
                kept = pq.read_table(handle)
            kept = kept.filter(
                pc.invert(pc.is_in(kept.column(change.column), pa.array(change.values)))
            )
            rows = pa.concat_tables([kept, rows.cast(kept.schema)])
        self._put(target, rows)

    def _put(self, target: Location, rows: pa.Table) -> None:
        if rows.num_rows == 0 and not target.exists():
            return
        if rows.num_rows == 0:
            target.fs.rm(target.uri)
            return
        buffer = io.BytesIO()
        pq.write_table(rows, buffer, compression=self.spec.get("compression", "zstd"))
        replace_file(target, buffer.getvalue())
