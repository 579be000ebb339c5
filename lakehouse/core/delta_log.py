"""What a Delta table's log says, read from its files directly: the app transactions of a
table with thousands of them (bronze's per-file watermarks) and the data files plain appends
added (silver's fast read). deltalake answers both by replaying the log per question."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow.parquet as pq
from deltalake import DeltaTable

from lakehouse.core.storage import Location


def app_transactions(location: Location) -> dict[str, int]:
    """Every app transaction of the table (app id -> version), read from its log in one pass.

    ``DeltaTable.transaction_version`` replays the log for each id it is asked about; for the
    thousands of per-file ids of a bronze table, reading the newest checkpoint's ``txn``
    column and the commits after it once is what keeps listing cost flat.
    """
    return known_transactions(location).ids


@dataclass
class Transactions:
    """A table's app transactions (app id -> version) through log version ``through``."""

    ids: dict[str, int]
    through: int


def known_transactions(location: Location, known: Transactions | None = None) -> Transactions:
    """The table's app transactions now: ``known`` brought up to date by the commits after
    it, read one by one in order (a run committing to a table many times reads each of its
    commits once, not every commit since the last checkpoint each time), or all of them."""
    fs, log = location.fs, location.child("_delta_log").uri
    if known is not None:
        version = known.through + 1
        while True:
            try:
                entry = fs.cat_file(f"{log}/{version:020d}.json").decode()
            except FileNotFoundError:
                return known
            _note_transactions(entry, known.ids)
            known.through, version = version, version + 1
    fs.invalidate_cache(log)  # a listing cached before our own last commit would hide it
    if not fs.exists(log):
        return Transactions({}, -1)
    versions: dict[str, int] = {}
    checkpoint = _last_checkpoint(fs, log)
    if checkpoint is not None:
        version, parts = checkpoint
        names = (
            [f"{version:020d}.checkpoint.parquet"]
            if not parts
            else [
                f"{version:020d}.checkpoint.{i:010d}.{parts:010d}.parquet"
                for i in range(1, parts + 1)
            ]
        )
        for name in names:
            with fs.open(f"{log}/{name}", "rb") as handle:
                for txn in pq.read_table(handle, columns=["txn"]).column("txn").to_pylist():
                    if txn:
                        versions[txn["appId"]] = txn["version"]
    after = -1 if checkpoint is None else checkpoint[0]
    commits = sorted(
        (int(path.rsplit("/", 1)[-1][:20]), path)
        for path in fs.ls(log, detail=False)
        if path.endswith(".json") and int(path.rsplit("/", 1)[-1][:20]) > after
    )
    for _, path in commits:
        _note_transactions(fs.cat_file(path).decode(), versions)
    return Transactions(versions, commits[-1][0] if commits else after)


def _note_transactions(entry: str, versions: dict[str, int]) -> None:
    """Add the app transactions of one commit's log entry to ``versions``."""
    for line in entry.splitlines():
        if '"txn"' in line:
            txn = json.loads(line).get("txn")
            if txn:
                versions[txn["appId"]] = txn["version"]


def appended_files(location: Location, table: DeltaTable, after: int, through: int):
    """(version, data file URI, partition values) of the files that commits ``(after,
    through]`` added, oldest first, read from their log entries; None unless each of those
    commits only added whole files to a table without column mapping (a compaction, a
    delete or a cleaned-up log entry: ``load_cdf`` then reads the changes)."""
    if table.metadata().configuration.get("delta.columnMapping.mode", "none") not in (
        "none",
        None,
    ):
        return None
    fs, log = location.fs, location.child("_delta_log").uri
    fs.invalidate_cache(log)  # s3fs answers from a listing it cached before these commits
    files = []
    for version in range(after + 1, through + 1):
        try:
            entry = fs.cat_file(f"{log}/{version:020d}.json").decode()
        except FileNotFoundError:
            return None
        for line in entry.splitlines():
            action = json.loads(line)
            if "remove" in action or "cdc" in action:
                return None
            add = action.get("add")
            if add is None:
                continue
            if add.get("deletionVector") or not add.get("dataChange", True):
                return None
            path = unquote(add["path"])
            uri = path if "://" in path else location.child(path).uri
            files.append((version, uri, add.get("partitionValues") or {}))
    return files


def _last_checkpoint(fs, log: str) -> tuple[int, int | None] | None:
    try:
        last = json.loads(fs.cat_file(f"{log}/_last_checkpoint"))
    except FileNotFoundError:
        return None
    if "v2Checkpoint" in last:
        raise NotImplementedError(f"{log}: v2 checkpoints are not read here")
    return last["version"], last.get("parts")
