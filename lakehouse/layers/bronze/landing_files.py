"""Which landing files bronze takes next: listed per source, new by fingerprint against the
bronze table's log (and the bad-file table's), settled (not changed for ``settle_seconds``).

The file watermark lives in the bronze table's own log: each ingested file is an app
transaction ``file:<source>/<name>`` whose version is a fingerprint of the file's size and
modification time (or etag). A file is new when its fingerprint differs from the one
recorded, so a late file with an old name and a file rewritten in place are both picked up,
and a run costs one folder listing plus one read of the table's transactions.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pyarrow.parquet as pq
from loguru import logger

from lakehouse.core import delta_log
from lakehouse.core.storage import Location
from lakehouse.io.files import BadFileError, FileSource, compression_of, decompress
from lakehouse.io.listing import version_of


@dataclass(frozen=True, slots=True)  # slots: a drop of 200,000 files makes as many
class LandingFile:
    """One landing file not yet ingested, and where its rows go."""

    source: str
    uri: str
    name: str
    format: str
    size: int
    fingerprint: int
    table: Location
    compression: str = "infer"
    required: tuple[str, ...] = ()  # columns the entities reading this source declare
    closed: bool = False  # an entity's schema_evolution is fail: no other columns allowed
    modified: float | None = None  # seconds since the epoch, as the store reports it
    hashed: tuple[tuple[str, tuple[str, ...]], ...] = ()  # snapshot entities: name, columns

    @property
    def app_id(self) -> str:
        return file_app_id(self.source, self.name)

    @property
    def relative(self) -> str:
        """``<source>/<name>``: the file's name wherever the landing zone or project sits
        (bronze's ``_source_file``, quarantine's ``source_file`` and ``row_key``)."""
        return f"{self.source}/{self.name}"


def file_app_id(source: str, name: str) -> str:
    """The app transaction that records a landing file as ingested (its version: the
    file's fingerprint)."""
    return f"file:{source}/{name}"


def fingerprint(info: dict) -> int:
    """``fingerprint_of`` an fsspec ``info`` of the file."""
    return fingerprint_of(info["size"], version_of(info))


def fingerprint_of(size: int, version: object) -> int:
    """A 62-bit number that changes when the file's size or version (etag, mtime) changes."""
    digest = hashlib.sha256(f"{size}:{version}".encode()).hexdigest()
    return int(digest[:15], 16)


def settled(files: list[LandingFile], settle_seconds: float) -> list[LandingFile]:
    """The files that have not changed for ``settle_seconds``: a file changed more recently
    is watched until it is that old, and left for the next run if its size or modification
    time moved meanwhile (a writer still at work). A file dated in the future (the clock of
    the system that wrote it is ahead of this host's) is watched for ``settle_seconds``, never
    for its skew."""
    now = time.time()
    young = [
        (f, f.modified)  # (file, its modification time)
        for f in files
        if f.modified is not None and now - f.modified < settle_seconds
    ]
    if not young:
        return files
    for file, modified in young:
        if modified > now + 1:
            logger.warning(
                f"bronze: {file.uri} is dated {modified - now:,.0f} s in the future (its "
                f"writer's clock is ahead of this host's?): watched for {settle_seconds:g} s only"
            )
    wait = min(settle_seconds, max(settle_seconds - (now - m) for _, m in young))
    logger.info(
        f"bronze: {len(young)} landing file(s) changed in the last {settle_seconds:g} s: "
        f"waiting {wait:.1f} s to see that they are complete"
    )
    time.sleep(wait)
    moving = set()
    for file, _ in young:
        fs = Location(file.uri).fs
        fs.invalidate_cache()
        info = fs.info(file.uri) if fs.exists(file.uri) else None
        if info is None or fingerprint(info) != file.fingerprint:
            moving.add(file.uri)
            logger.warning(
                f"bronze: {file.uri} changed within {settle_seconds:g} s (still being written?): "
                "left for the next run"
            )
    return [f for f in files if f.uri not in moving]


def list_new_files(
    landing: Location,
    lake: Location,
    source: str,
    plugin: FileSource,
    required: tuple[str, ...] = (),
    closed: bool = False,
    hashed: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> list[LandingFile]:
    """The source's files (``landing/<source>/`` or the plugin's ``uri``) whose fingerprint
    the bronze table has not recorded (as ingested) nor the bad-file table (as unreadable:
    such a file is retried only once it changes). ``hashed``: the snapshot entities whose
    row hashes bronze keeps beside the file's rows (``core.row_hashes``)."""
    table_location = lake.child("bronze", source)
    listed = plugin.list_files(landing.child(source))
    if not listed:
        return []
    ingested = delta_log.app_transactions(table_location)
    bad = delta_log.app_transactions(bad_files_location(lake))
    files = []
    for uri, name, size, version, modified in listed:  # a file taken costs a lookup, no object
        version, app_id = fingerprint_of(size, version), file_app_id(source, name)
        if version in (ingested.get(app_id), bad.get(app_id)):
            continue
        files.append(
            LandingFile(
                source,
                uri,
                name,
                plugin.format,
                size,
                version,
                table_location,
                plugin.compression,
                required,
                closed,
                modified,
                hashed,
            )
        )
    return files


def by_source(files: list[LandingFile]) -> dict[str, list[LandingFile]]:
    grouped: dict[str, list[LandingFile]] = {}
    for file in files:
        grouped.setdefault(file.source, []).append(file)
    return grouped


def oldest(files: list[LandingFile], count: int) -> list[LandingFile]:
    """The ``count`` files landed first (by modification time, then source and name), all of
    them when there are no more."""
    if len(files) <= count:
        return files
    return sorted(files, key=lambda f: (f.modified or 0.0, f.source, f.name))[:count]


def estimate_rows(file: LandingFile) -> int:
    """Rows in a landing file without typing it: Parquet's footer, else lines (less the CSV
    header); 0 for a file that cannot be read."""
    fs = Location(file.uri).fs
    with fs.open(file.uri, "rb") as handle:
        if file.format == "parquet":
            return pq.ParquetFile(handle).metadata.num_rows
        try:
            data = decompress(handle.read(), compression_of(file.uri, file.compression))
        except BadFileError:
            return 0
    return max(0, data.count(b"\n") - (file.format == "csv"))


@dataclass(frozen=True)
class Batch:
    """Landing files of one source that one task stages. ``position``: the batch's place
    among this run's batches of its source, in name order (the order of their commits)."""

    files: list[LandingFile]
    position: int

    @property
    def table(self) -> Location:
        return self.files[0].table


FILES_PER_BATCH = 10_000  # a batch's commit holds an app transaction per file: its memory


def batches(
    files: list[LandingFile], max_bytes: int, max_files: int = FILES_PER_BATCH
) -> list[Batch]:
    """``files`` cut into batches of one source each, in name order, of at most ``max_bytes``
    landed (a bigger file makes a batch alone) and at most ``max_files`` files: a drop of
    200,000 small files is staged and committed in steps, each of bounded memory, and a
    stopped run keeps the steps it committed."""
    cut: list[list[LandingFile]] = []
    held = 0  # bytes in the last batch: a running total (200,000 small files, one pass)
    for file in sorted(files, key=lambda f: (f.source, f.name)):
        fits = held + file.size <= max_bytes and len(cut[-1]) < max_files if cut else False
        if fits and cut[-1][0].source == file.source:
            cut[-1].append(file)
            held += file.size
        else:
            cut.append([file])
            held = file.size
    positions: dict[str, int] = {}
    numbered = []
    for batch in cut:
        position = positions.get(batch[0].source, 0)
        positions[batch[0].source] = position + 1
        numbered.append(Batch(batch, position))
    return numbered


def bad_files_location(lake: Location) -> Location:
    return lake.child("_quarantine", "_files")
