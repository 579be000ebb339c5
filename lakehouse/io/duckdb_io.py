"""DuckDB database file plugins: a table or query source, and a sink for BI tools.

The sink never writes the file readers open. It copies the database to a hidden file next
to it, replaces the change's scope there in one transaction, checkpoints, and renames the
copy over the original: a reader that opened the file before sees the old tables, one that
opens it after sees the new ones, and neither waits on a lock. Each publish copies the file,
which suits mart-sized databases (tens of GB would call for PostgreSQL).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pyarrow as pa

from lakehouse.core.storage import absolute_uri, is_local
from lakehouse.io import sql
from lakehouse.io.base import BATCH_ROWS, Change, Moved, PluginError, Sink, register


def _connect(path: str, read_only: bool = False):
    import duckdb  # here, not at the top: every pipeline imports the plugins, few use DuckDB

    return duckdb.connect(path, read_only=read_only)


def _path(plugin, must_exist: bool) -> str:
    path = str(plugin.spec["path"])
    if not is_local(path):
        raise PluginError(
            f"{plugin.where}.path: {path} must be a local file (DuckDB writes locally)"
        )
    path = absolute_uri(path)
    if must_exist and not os.path.exists(path):
        raise PluginError(f"{plugin.where}.path: {path} does not exist")
    return path


@register
class DuckDBSource(sql.SqlSource):
    """Rows of a ``table`` or ``query`` of the database file at ``path``, read-only."""

    format = "duckdb"
    keys = ("path", *sql.SqlSource.keys)
    required = ("path",)

    def execute(self, query: str) -> Iterator[pa.RecordBatch]:
        con = _connect(_path(self, must_exist=True), read_only=True)
        try:
            yield from con.sql(query).to_arrow_reader(BATCH_ROWS)  # no extra copy of the rows
        finally:
            con.close()


@register
class DuckDBSink(Sink):
    """Each mart a table of the database file at ``path``, replaced atomically per publish."""

    format = "duckdb"
    keys = ("path",)
    required = ("path",)
    _versions: dict[str, int]
    _versions_of: tuple | None = None  # (path, mtime, size) the versions were read at

    def target(self, table: str) -> str:
        return f"duckdb://{_path(self, must_exist=False)}/main.{table}"

    def published_version(self, table: str) -> int | None:
        return self._published().get(table)

    def _published(self) -> dict[str, int]:
        """Every mart's published gold version, read in one connection and kept while the
        file is unchanged (a publish replaces the file, so its stat changes): in this process,
        and across runs in ``.<file>.published.json`` beside it, so that a run with nothing
        to publish needs neither a connection nor DuckDB's import."""
        path = _path(self, must_exist=False)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return {}
        seen = (path, stat.st_mtime_ns, stat.st_size)
        if self._versions_of != seen:
            versions = _remembered(path, seen)
            if versions is None:
                versions = _read_versions(path)
                _remember(path, seen, versions)
            self._versions, self._versions_of = versions, seen
        return self._versions

    def write(self, change: Change) -> Moved:
        path = _path(self, must_exist=False)
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        working = os.path.join(folder, f".{name}.publishing")
        for leftover in (working, f"{working}.wal"):
            if os.path.exists(leftover):  # a publish killed before its rename
                os.remove(leftover)
        if os.path.exists(path):
            shutil.copyfile(path, working)
        moved = Moved()
        con = _connect(working)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(sql.create_table(change.table, change.schema, change.keys))
            con.execute(sql.create_state_table())
            con.register(
                "staged", pa.RecordBatchReader.from_batches(change.schema, _counted(change, moved))
            )
            scope = None
            if not change.whole:
                con.register("scope", pa.table({"value": list(change.values)}))
                scope = "scope"
            for statement in sql.replace_scope(change, "staged", scope):
                con.execute(statement)
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        except BaseException:
            con.close()
            os.remove(working)
            raise
        con.close()
        with open(working, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(working, path)
        return moved


def _read_versions(path: str) -> dict[str, int]:
    con = _connect(path, read_only=True)
    try:
        known = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
            [sql.STATE_TABLE],
        ).fetchall()[0][0]
        return dict(con.execute(sql.published_versions()).fetchall()) if known else {}
    finally:
        con.close()


def _memo(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.published.json")


def _remembered(path: str, seen: tuple) -> dict[str, int] | None:
    """The versions noted for the file as it is now (same path, mtime and size), else None."""
    try:
        with open(_memo(path)) as handle:
            memo = json.load(handle)
    except (OSError, ValueError):
        return None
    return memo["versions"] if memo.get("seen") == list(seen) else None


def _remember(path: str, seen: tuple, versions: dict[str, int]) -> None:
    """Note the versions read from the file as it is now; best effort (a read-only folder
    only means the next run opens the file)."""
    memo = _memo(path)
    try:
        with open(f"{memo}.tmp", "w") as handle:
            json.dump({"seen": list(seen), "versions": versions}, handle)
        os.replace(f"{memo}.tmp", memo)
    except OSError:
        pass


def _counted(change: Change, moved: Moved) -> Iterator[pa.RecordBatch]:
    for batch in change.batches:
        moved.count(batch)
        yield batch
