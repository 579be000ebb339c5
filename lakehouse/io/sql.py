"""SQL shared by the DuckDB and PostgreSQL plugins: what to select from a table source, and
how a sink table is created and has a scope of its rows replaced in one transaction."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

import pyarrow as pa

from lakehouse.core.sqltext import quoted, sql_literal
from lakehouse.io.base import Change, Plugin, PluginError, Source

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
STATE_TABLE = "_lakehouse_published"  # (mart, gold_version, published_at), one row per mart


def quote(name: str) -> str:
    """``schema.table`` (checked against ``IDENTIFIER``) as quoted SQL identifiers."""
    return ".".join(quoted(part) for part in name.split("."))


def source_sql(plugin: Plugin, column: str | None, since) -> str:
    """``SELECT`` of the plugin's ``table`` or ``query``, from ``since`` on ``column``."""
    table, query = plugin.spec.get("table"), plugin.spec.get("query")
    if bool(table) == bool(query):
        raise PluginError(f"{plugin.where}: give exactly one of `table` and `query`")
    if table and not IDENTIFIER.fullmatch(table):
        raise PluginError(f"{plugin.where}.table: {table!r} is not a [schema.]table name")
    base = quote(table) if table else f"({query})"
    sql = f"SELECT * FROM {base} AS src"
    if column:
        if not IDENTIFIER.fullmatch(column) or "." in column:
            raise PluginError(f"{plugin.where}.column: {column!r} is not a column name")
        if since is not None:
            sql += f" WHERE {quoted(column)} >= {sql_literal(since)}"
    return sql


class SqlSource(Source):
    """A database source: rows of a ``table`` or ``query`` from the watermark on ``column``;
    a subclass says how to run a query (``execute``) and what else it needs (``keys``)."""

    kind = "table"
    keys: ClassVar[tuple[str, ...]] = ("table", "query", "column", "lookback")

    def describe(self) -> str:
        return f"{self.format}:{self.spec.get('table') or 'query'}"

    def batches(self, column: str | None, since) -> Iterator[pa.RecordBatch]:
        for batch in self.execute(source_sql(self, column, since)):
            self.moved.count(batch)
            yield batch

    def execute(self, query: str) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError


def column_type(dtype: pa.DataType) -> str:
    if pa.types.is_decimal(dtype):
        return f"NUMERIC({dtype.precision}, {dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    for check, name in (
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_int8, "SMALLINT"),
        (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_int32, "INTEGER"),
        (pa.types.is_int64, "BIGINT"),
        (pa.types.is_floating, "DOUBLE PRECISION"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_string, "TEXT"),
        (pa.types.is_large_string, "TEXT"),
        (pa.types.is_string_view, "TEXT"),
    ):
        if check(dtype):
            return name
    raise PluginError(f"no SQL column type for Arrow {dtype}")


def create_table(table: str, schema: pa.Schema, keys: tuple[str, ...]) -> str:
    columns = [
        f"{quoted(f.name)} {column_type(f.type)}{' NOT NULL' if f.name in keys else ''}"
        for f in schema
    ]
    if keys:
        columns.append(f"PRIMARY KEY ({', '.join(quoted(k) for k in keys)})")
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(columns)})"


def create_state_table() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (mart TEXT PRIMARY KEY, "
        "gold_version BIGINT NOT NULL, published_at TIMESTAMPTZ NOT NULL)"
    )


def published_version(table: str, state: str = STATE_TABLE) -> str:
    return f"SELECT gold_version FROM {state} WHERE mart = {sql_literal(table)}"


def published_versions(state: str = STATE_TABLE) -> str:
    """(mart, gold version) of every published mart."""
    return f"SELECT mart, gold_version FROM {state}"


def replace_scope(change: Change, staged: str, scope: str | None) -> list[str]:
    """Statements making the rows of ``change``'s scope equal the ``staged`` rows: delete the
    scope's rows (``scope`` is a table of the scope's values, all rows when None), upsert the
    staged rows on the grain keys, record the gold version. Run them in one transaction."""
    target, columns = quote(change.table), [f.name for f in change.schema]
    names = ", ".join(quoted(c) for c in columns)
    delete = f"DELETE FROM {target}"
    if scope is not None and change.column is not None:
        delete += f" WHERE {quoted(change.column)} IN (SELECT value FROM {scope})"
    casts = ", ".join(f"CAST({quoted(f.name)} AS {column_type(f.type)})" for f in change.schema)
    insert = f"INSERT INTO {target} ({names}) SELECT {casts} FROM {staged}"
    if change.keys:
        updates = ", ".join(
            f"{quoted(c)} = {quoted(c, 'excluded')}" for c in columns if c not in change.keys
        )
        conflict = ", ".join(quoted(k) for k in change.keys)
        insert += f" ON CONFLICT ({conflict}) DO " + (
            f"UPDATE SET {updates}" if updates else "NOTHING"
        )
    state = (
        f"INSERT INTO {STATE_TABLE} VALUES ({sql_literal(change.table)}, {change.version}, "
        "CURRENT_TIMESTAMP) ON CONFLICT (mart) DO UPDATE SET gold_version = excluded.gold_version, "
        "published_at = excluded.published_at"
    )
    return [delete, insert, state]
