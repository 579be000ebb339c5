"""Source plugins feeding bronze: files by glob and compression, a DuckDB file, a Delta table
and a real PostgreSQL server, each read incrementally and exactly once."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from postgres_server import PASSWORD

from lakehouse import io as plugins
from lakehouse.io import plain

LINEAGE = ["_source_file", "_ingested_at", "_run_id", "_row_md5"]
EVENTS = pl.DataFrame({"id": [str(i) for i in range(1, 7)], "kind": ["a", "b", "c", "a", "b", "c"]})


def bronze(lakehouse, name: str) -> pl.DataFrame:
    return lakehouse.table(f"bronze/{name}")


def only_sources(lakehouse, **sources) -> None:
    lakehouse.switch_demo(False)
    lakehouse.configure("bronze", sources=sources)


def test_file_sources_read_globs_and_every_compression_once(lakehouse, tmp_path):
    exports = tmp_path / "exports"
    (exports / "2024" / "01").mkdir(parents=True)
    (exports / "2024" / "02").mkdir(parents=True)
    csv = EVENTS.write_csv().encode()
    (exports / "2024" / "01" / "events-1.csv.gz").write_bytes(gzip.compress(csv))
    (exports / "2024" / "02" / "events-2.csv.bz2").write_bytes(bz2.compress(csv))
    with pa.CompressedOutputStream(
        str(exports / "2024" / "02" / "events-3.csv.zst"), "zstd"
    ) as out:
        out.write(csv)
    (exports / "2024" / "02" / "notes.txt").write_text("not an export")
    jsonl = "\n".join(EVENTS.write_ndjson().splitlines()).encode()
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "events.jsonl.xz").write_bytes(lzma.compress(jsonl))
    pq.write_table(EVENTS.to_arrow(), tmp_path / "events.parquet")
    only_sources(
        lakehouse,
        events_csv={"format": "csv", "uri": str(exports / "2024" / "*" / "events-*")},
        events_json={"format": "jsonl", "uri": str(tmp_path / "json")},
        events_parquet={"format": "parquet", "uri": str(tmp_path / "*.parquet")},
    )
    lakehouse.run("bronze")

    csv_rows = bronze(lakehouse, "events_csv")
    assert csv_rows.height == 3 * EVENTS.height
    assert sorted(csv_rows["_source_file"].unique().str.split("/").list.last()) == [
        "events-1.csv.gz",
        "events-2.csv.bz2",
        "events-3.csv.zst",
    ]
    for name in ("events_csv", "events_json", "events_parquet"):
        rows = bronze(lakehouse, name).drop(LINEAGE, strict=False)
        assert rows.unique().sort("id").equals(EVENTS.sort("id")), name

    (exports / "2024" / "02" / "events-4.csv.gz").write_bytes(gzip.compress(csv))
    lakehouse.run("bronze")
    assert bronze(lakehouse, "events_csv").height == 4 * EVENTS.height  # only the new file
    assert bronze(lakehouse, "events_json").height == EVENTS.height


def test_a_corrupt_compressed_file_is_recorded_and_left_in_place(lakehouse, tmp_path):
    (tmp_path / "in").mkdir()
    broken = tmp_path / "in" / "events.csv.zst"
    broken.write_bytes(b"(\xb5/\xfd definitely not zstd")
    only_sources(lakehouse, events={"format": "csv", "uri": str(tmp_path / "in")})
    lakehouse.run("bronze")
    recorded = lakehouse.table("_quarantine/_files")
    assert recorded["error"].to_list() == ["corrupt_zstd"]
    assert broken.exists()


def test_duckdb_and_delta_table_sources_are_read_incrementally(lakehouse, tmp_path):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = pa.table(
        {
            "id": pa.array(range(1, 101), pa.int64()),
            "status": ["new"] * 100,
            "updated_at": pa.array([start + timedelta(minutes=i) for i in range(100)], pa.timestamp("us", "UTC")),
        }
    )  # fmt: skip
    database, table_uri = tmp_path / "app.duckdb", str(tmp_path / "events_delta")
    con = duckdb.connect(str(database))
    con.execute("CREATE TABLE events AS SELECT * FROM rows")
    con.close()
    write_deltalake(table_uri, rows)
    only_sources(
        lakehouse,
        from_duckdb={"format": "duckdb", "path": str(database), "table": "events", "column": "updated_at", "lookback": "1h"},
        from_delta={"format": "delta", "uri": table_uri, "column": "updated_at", "lookback": "1h"},
    )  # fmt: skip
    lakehouse.run("bronze")
    for name in ("from_duckdb", "from_delta"):
        assert bronze(lakehouse, name).height == 100

    changed = pa.table(
        {
            "id": pa.array([5, 101], pa.int64()),
            "status": ["shipped", "new"],
            "updated_at": pa.array([start + timedelta(hours=3)] * 2, pa.timestamp("us", "UTC")),
        }
    )
    con = duckdb.connect(str(database))
    con.execute(
        "UPDATE events SET status = 'shipped', updated_at = ? WHERE id = 5",
        [start + timedelta(hours=3)],
    )
    con.execute("INSERT INTO events VALUES (101, 'new', ?)", [start + timedelta(hours=3)])
    con.close()
    write_deltalake(table_uri, changed, mode="append")  # an append-only change log
    lakehouse.run("bronze")
    lakehouse.run("bronze")  # nothing new: the lookback is read again, nothing added
    for name in ("from_duckdb", "from_delta"):
        rows = bronze(lakehouse, name)
        assert rows.height == 102, name
        latest = rows.sort("updated_at").group_by("id").last()
        assert latest.filter(pl.col("id") == 5)["status"].to_list() == ["shipped"]


def _pg(url: str, *statements: str) -> None:
    with pg.connect(url) as con, con.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        con.commit()


def _pg_rows(url: str, sql: str) -> pl.DataFrame:
    with pg.connect(url) as con, con.cursor() as cur:
        cur.execute(sql)
        return pl.from_arrow(plain(cur.fetch_arrow_table())).with_columns(
            pl.col("amount").cast(pl.String)
        )


BASE = "TIMESTAMPTZ '2024-01-01 00:00:00+00'"


@pytest.fixture
def orders_db(lakehouse, postgres, monkeypatch):
    """A PostgreSQL table of 2,000 orders, one per minute, and bronze reading it."""
    monkeypatch.setenv("SHOP_DB_URL", postgres.url)
    _pg(
        postgres.url,
        "DROP TABLE IF EXISTS shop_orders",
        "CREATE TABLE shop_orders (id INT PRIMARY KEY, status TEXT NOT NULL, "
        "amount NUMERIC(12, 2) NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
        "INSERT INTO shop_orders SELECT i, 'new', i * 1.25, "
        f"{BASE} + i * INTERVAL '1 minute' FROM generate_series(1, 2000) i",
    )
    lakehouse.configure("bronze", max_rows_per_commit=500)
    only_sources(
        lakehouse,
        shop_orders={"format": "postgres", "url_env": "SHOP_DB_URL", "table": "shop_orders",
                     "column": "updated_at", "lookback": "1h"},
    )  # fmt: skip
    return postgres.url


def versions_in_bronze(lakehouse) -> pl.DataFrame:
    rows = bronze(lakehouse, "shop_orders").with_columns(pl.col("amount").cast(pl.String))
    return rows.select("id", "status", "amount", "updated_at")


def assert_bronze_holds_each_version_once(lakehouse, url: str) -> None:
    rows = versions_in_bronze(lakehouse)
    assert rows.height == rows.unique().height  # no row version twice
    latest = rows.sort("updated_at").group_by("id").last().sort("id")
    current = _pg_rows(url, "SELECT id, status, amount, updated_at FROM shop_orders ORDER BY id")
    assert latest.equals(current)


def test_postgres_changes_are_picked_up_once_with_late_updates_in_the_lookback(
    lakehouse, orders_db
):
    url = orders_db
    first = lakehouse.run("bronze")["bronze_tables"][0]
    assert (first.rows, first.rows_read) == (2000, 2000)
    assert lakehouse.version("bronze/shop_orders") == 4  # 500 rows a commit: create + 4
    watermark = f"{BASE} + 2000 * INTERVAL '1 minute'"
    _pg(
        url,
        f"INSERT INTO shop_orders SELECT i, 'new', 9.99, {watermark} + INTERVAL '5 minutes' "
        "FROM generate_series(2001, 2010) i",
        f"UPDATE shop_orders SET status = 'paid', updated_at = {watermark} + INTERVAL '6 minutes' "
        "WHERE id BETWEEN 100 AND 104",
    )
    second = lakehouse.run("bronze")["bronze_tables"][0]
    assert second.rows == 15  # ten new, five updated; the lookback's re-read rows skipped
    assert second.rows_read == 15 + 61  # 2001-2010, 100-104, the hour up to the watermark (ends in)

    _pg(  # committed late: updated_at inside the lookback, one outside it
        url,
        f"UPDATE shop_orders SET status = 'late', updated_at = {watermark} - INTERVAL '30 minutes' "
        "WHERE id IN (7, 8, 9)",
        f"UPDATE shop_orders SET status = 'too late', updated_at = {watermark} - INTERVAL '3 hours' "
        "WHERE id = 10",
    )
    third = lakehouse.run("bronze")["bronze_tables"][0]
    assert third.rows == 3
    rows = versions_in_bronze(lakehouse)
    assert rows.filter(pl.col("status") == "late")["id"].sort().to_list() == [7, 8, 9]
    assert rows.filter(pl.col("status") == "too late").height == 0  # outside the lookback
    _pg(url, "UPDATE shop_orders SET status = 'new', updated_at = "
             f"{BASE} + 10 * INTERVAL '1 minute' WHERE id = 10")  # fmt: skip
    assert lakehouse.run("bronze")["bronze_tables"][0].rows == 0
    assert_bronze_holds_each_version_once(lakehouse, url)


@pytest.mark.slow
def test_a_killed_postgres_pull_reruns_cleanly_and_logs_no_password(lakehouse, orders_db):
    url = orders_db
    _pg(
        url,
        "INSERT INTO shop_orders SELECT i, 'new', i * 0.5, "
        f"{BASE} + i * INTERVAL '1 second' FROM generate_series(2001, 30000) i",
    )
    lakehouse.configure("bronze", max_rows_per_commit=1000)
    env = {**os.environ, **lakehouse.env(), "SHOP_DB_URL": url}
    command = [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "run", "bronze"]
    run = subprocess.Popen(command, cwd=lakehouse.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    commits = lakehouse.lake / "bronze" / "shop_orders" / "_delta_log"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(commits.glob("*.json"))) < 4:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    output = run.communicate()[0].decode()
    committed = bronze(lakehouse, "shop_orders").height
    assert 0 < committed < 30_000, committed  # killed mid-way: some batches in, not all

    rerun = lakehouse.cli("bronze")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_bronze_holds_each_version_once(lakehouse, url)
    assert bronze(lakehouse, "shop_orders").height == 30_000
    for text in (output, rerun.stdout, rerun.stderr, lakehouse.table("_runs").write_csv()):
        assert PASSWORD not in text


def test_an_unreachable_database_is_a_connection_error_without_the_password(monkeypatch):
    monkeypatch.setenv("DOWN_DB_URL", f"postgresql://etl:{PASSWORD}@127.0.0.1:1/shop")
    source = plugins.source(
        "shop", {"format": "postgres", "url_env": "DOWN_DB_URL", "table": "orders"}, "here"
    )
    with pytest.raises(ConnectionError) as raised:
        list(source.batches(None, None))
    assert "postgresql://etl:***@127.0.0.1:1/shop" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    monkeypatch.delenv("DOWN_DB_URL")
    with pytest.raises(plugins.PluginError, match="here.url_env: environment variable DOWN_DB_URL"):
        plugins.source(
            "shop", {"format": "postgres", "url_env": "DOWN_DB_URL", "table": "t"}, "here"
        )
