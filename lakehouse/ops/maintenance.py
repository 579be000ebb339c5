"""Maintenance of one Delta table: compaction, a checkpoint, a full vacuum, sizes around them.
A table made before the engine set its checkpoint interval is given it.

Compaction rewrites small files into large ones in commits that change no data
(``dataChange = false``), so no change data feed reader (silver, gold) sees rows twice. The
full vacuum deletes every file the log no longer references and that is older than the
retention: files replaced by compaction, MERGE or partition replacement, and the Parquet
files a killed bronze run staged but never committed. Keep the retention longer than any
downstream layer may fall behind: the change data feed of an old version needs its files.
Log files are kept (the watermarks are in the commits' metadata). The row hashes bronze
keeps beside its data files (``core.row_hashes``) go with their data files.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from lakehouse.core import delta, fence, row_hashes
from lakehouse.core.storage import Location


@dataclass(frozen=True)
class Sizes:
    files: int
    bytes: int


@dataclass(frozen=True)
class Maintained:
    table: str
    before: Sizes
    after: Sizes
    compacted: int  # files rewritten
    vacuumed: int  # files deleted


def data_files(location: Location) -> Sizes:
    """Every data file in the table's folder, referenced or not (the log excluded)."""
    found = location.fs.find(location.uri, detail=True)
    sizes = [
        info["size"]
        for path, info in found.items()
        if path.endswith(".parquet")
        and "/_delta_log/" not in path
        and f"/{row_hashes.FOLDER}/" not in path
    ]
    return Sizes(len(sizes), sum(sizes))


def maintain(location: Location, target_file_mb: int, retention_hours: int) -> Maintained:
    table = delta.open_table(location)
    if table is None:
        raise ValueError(f"maintenance: {location.uri} is not a Delta table")
    before = data_files(location)
    fence.check()  # compaction and vacuum are writes too
    interval = "delta.checkpointInterval"  # a table made before the engine set it
    if interval not in table.metadata().configuration:
        table.alter.set_table_properties({interval: delta.TABLE_PROPERTIES[interval]})
    metrics = table.optimize.compact(target_size=target_file_mb * 1024 * 1024)
    table.create_checkpoint()
    deleted = table.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
        full=True,
    )
    swept = row_hashes.sweep(location)  # Delta's vacuum leaves the _row_hashes folder alone
    after = data_files(location)
    done = Maintained(
        location.name, before, after, int(metrics.get("numFilesRemoved", 0)), len(deleted)
    )
    logger.info(
        f"maintenance: {done.table}: {before.files} files {before.bytes:,} bytes -> "
        f"{after.files} files {after.bytes:,} bytes ({done.compacted} compacted, "
        f"{done.vacuumed} vacuumed" + (f", {swept} row-hash files of them" if swept else "") + ")"
    )
    return done
