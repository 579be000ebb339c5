"""PostgreSQL plugins over ADBC (Arrow in and out, no row-by-row Python).

Source: a ``table`` or ``query`` streamed as record batches (the driver reads with COPY),
from the watermark on ``column``. Sink: each mart a table in ``schema``, created from the
mart's contract (types, NOT NULL primary key on the grain) if missing; a publish stages the
rows in a temporary table, deletes the scope, upserts on the grain keys and records the
gold version, all in one transaction, so readers see the old rows or the new, never a mix,
and a failed publish leaves the previous rows. The connection string comes from the
environment variable named by ``url_env`` and is never logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pyarrow as pa

from lakehouse.io import sql
from lakehouse.io.base import (
    Change,
    Moved,
    Plugin,
    PluginError,
    Sink,
    redact,
    register,
)


@contextmanager
def connect(plugin: Plugin):
    """An ADBC connection (not autocommitting) to the database in ``$<url_env>``."""
    try:
        import adbc_driver_postgresql.dbapi as pg
    except ImportError:
        raise PluginError(
            f"{plugin.where}: the postgres plugins need adbc-driver-postgresql "
            "(pip install adbc-driver-postgresql)"
        ) from None
    url = plugin.env("url_env")
    try:
        con = pg.connect(url)
    except pg.Error as error:
        raise ConnectionError(
            f"{plugin.where}: cannot connect to {redact(url)}: {redact(str(error)).strip()}"
        ) from None
    try:
        yield con
    finally:
        con.close()


@register
class PostgresSource(sql.SqlSource):
    """Rows of a ``table`` or ``query``, streamed, from the watermark on ``column``."""

    format = "postgres"
    keys = ("url_env", *sql.SqlSource.keys)
    required = ("url_env",)

    def execute(self, query: str) -> Iterator[pa.RecordBatch]:
        with connect(self) as con:
            cur = con.cursor()
            cur.execute(query)
            yield from cur.fetch_record_batch()
            cur.close()
            con.rollback()


@register
class PostgresSink(Sink):
    """Each mart a table ``<schema>.<mart>``; the gold version per mart in
    ``<schema>._lakehouse_published``."""

    format = "postgres"
    keys = ("url_env", "schema")
    required = ("url_env",)

    @property
    def schema(self) -> str:
        name = self.spec.get("schema", "public")
        if not sql.IDENTIFIER.fullmatch(name) or "." in name:
            raise PluginError(f"{self.where}.schema: {name!r} is not a schema name")
        return name

    def target(self, table: str) -> str:
        """``postgres://host:port/database.schema.table``: no user, no password."""
        url = urlsplit(self.env("url_env"))
        database = url.path.lstrip("/") or "postgres"
        return f"postgres://{url.hostname}:{url.port or 5432}/{database}.{self.schema}.{table}"

    def published_version(self, table: str) -> int | None:
        with connect(self) as con:
            cur = con.cursor()
            cur.execute(f"SELECT to_regclass('{self.schema}.{sql.STATE_TABLE}') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute(sql.published_version(table, f'"{self.schema}".{sql.STATE_TABLE}'))
            found = cur.fetchone()
            con.rollback()
        return found[0] if found else None

    def write(self, change: Change) -> Moved:
        moved = Moved()

        def counted():
            for batch in change.batches:
                moved.count(batch)
                yield batch

        with connect(self) as con:
            cur = con.cursor()
            try:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                cur.execute(f'SET LOCAL search_path TO "{self.schema}"')
                cur.execute(sql.create_table(change.table, change.schema, change.keys))
                cur.execute(sql.create_state_table())
                staged = pa.RecordBatchReader.from_batches(change.schema, counted())
                cur.adbc_ingest("_lakehouse_staged", staged, mode="create", temporary=True)
                scope = None
                if not change.whole:
                    values = pa.table({"value": list(change.values)})
                    cur.adbc_ingest("_lakehouse_scope", values, mode="create", temporary=True)
                    scope = "pg_temp._lakehouse_scope"
                for statement in sql.replace_scope(change, "pg_temp._lakehouse_staged", scope):
                    cur.execute(statement)
                con.commit()
            except BaseException:
                con.rollback()
                raise
            finally:
                cur.close()
        return moved
