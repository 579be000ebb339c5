"""I/O plugins side by side: pulling a PostgreSQL table into bronze, and publishing a mart
to every sink, each case in its own process (peak RSS is per process).

    python bench/bench_plugins.py --rows 2000000

Starts its own PostgreSQL on 127.0.0.1 (tests/postgres_server.py). Prints seconds, rows/s
and peak RSS per case, and the ratios that matter: the streamed pull's memory against
reading the table whole, and each sink's time against a bare Delta write of the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mart(rows: int, bump: int = 0):
    import pyarrow as pa

    keys = pa.array(range(1, rows + 1), pa.int64())
    return pa.table(
        {
            "c_custkey": keys,
            "order_count": pa.array([1 + (k + bump) % 9 for k in range(rows)], pa.int64()),
            "lifetime_revenue": pa.array(
                [Decimal(f"{k % 100000}.{bump % 10}500") for k in range(rows)], pa.decimal128(38, 4)
            ),
        }
    )


def case(name: str, work: Path, url: str, rows: int) -> dict:
    """One measurement, in this process."""
    import adbc_driver_postgresql.dbapi as pg

    from lakehouse import io as plugins
    from lakehouse.core import delta
    from lakehouse.core.storage import Location
    from lakehouse.layers.bronze import pull
    from lakehouse.layers.gold import writes
    from lakehouse.layers.publish import publish

    lake = Location.from_uri(str(work / "lake"))
    os.environ["BENCH_DB_URL"] = url
    started = time.perf_counter()
    if name == "pull_streamed":
        spec = {
            "format": "postgres",
            "url_env": "BENCH_DB_URL",
            "table": "orders",
            "column": "updated_at",
        }
        source = plugins.source("orders", spec, "bench")
        result = pull.ingest(source, lake, "bench", datetime.now(UTC), 250_000)
        moved = result.rows_read
    elif name == "pull_whole":  # the same table read into memory at once
        with pg.connect(url) as con, con.cursor() as cur:
            cur.execute("SELECT * FROM orders")
            moved = cur.fetch_arrow_table().num_rows
    else:
        target = lake.child("gold", "customer_value")
        if delta.open_table(target) is None:
            writes.upsert(
                target,
                mart(rows),
                ["c_custkey"],
                delta.commit_properties("gold:customer_value", 1, {}, "b"),
            )
        kind, _, scope = name.partition(":")
        specs = {
            "duckdb": {"format": "duckdb", "path": str(work / "bi.duckdb")},
            "postgres": {"format": "postgres", "url_env": "BENCH_DB_URL", "schema": "marts"},
            "parquet": {"format": "parquet", "uri": str(work / "files")},
            "delta": {"format": "delta", "uri": str(work / "mirror")},
        }
        sink = plugins.sink(kind, specs[kind], "bench")
        (chosen,) = publish.marts(lake, ["customer_value"], "bench")
        if scope == "1pct":  # 1 % of the customers changed since the last publish
            changed = mart(rows, bump=1).slice(0, rows // 100)
            writes.upsert(
                target,
                changed,
                ["c_custkey"],
                delta.commit_properties(
                    "gold:customer_value",
                    delta.last_batch(chosen.table, "gold:customer_value") + 1,
                    {},
                    "b",
                ),
            )
            (chosen,) = publish.marts(lake, ["customer_value"], "bench")
        started = time.perf_counter()
        moved = publish.publish(chosen, sink).rows
    return {
        "case": name,
        "seconds": time.perf_counter() - started,
        "rows": moved,
        "peak_mb": peak_mb(),
    }


def run(name: str, work: Path, url: str, rows: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--case",
            name,
            "--work",
            str(work),
            "--url",
            url,
            "--rows",
            str(rows),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--case")
    parser.add_argument("--work")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.case:
        from loguru import logger

        logger.remove()
        print(json.dumps(case(args.case, Path(args.work), args.url, args.rows)))
        return

    import adbc_driver_postgresql.dbapi as pg
    from postgres_server import PostgresServer

    server = PostgresServer()
    try:
        with pg.connect(server.url) as con, con.cursor() as cur:
            cur.execute(
                "CREATE TABLE orders AS SELECT i AS id, 'open'::text AS status, "
                "(i % 100000) * 1.25::numeric(12, 2) AS amount, "
                "TIMESTAMPTZ '2024-01-01' + i * INTERVAL '1 second' AS updated_at "
                f"FROM generate_series(1, {args.rows}) i"
            )
            con.commit()
        work = Path(tempfile.mkdtemp(prefix="bench-plugins-"))
        results = [run(n, work, server.url, args.rows) for n in ("pull_whole", "pull_streamed")]
        for kind in ("delta", "duckdb", "postgres", "parquet"):
            results.append(run(kind, work, server.url, args.rows))
        for kind in ("delta", "duckdb", "postgres", "parquet"):
            results.append(run(f"{kind}:1pct", work, server.url, args.rows))
    finally:
        server.stop()
    print(f"{'case':<16}{'seconds':>9}{'rows':>11}{'rows/s':>12}{'peak MB':>9}")
    for r in results:
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        print(
            f"{r['case']:<16}{r['seconds']:>9.2f}{r['rows']:>11,}{rate:>12,.0f}{r['peak_mb']:>9.0f}"
        )
    by = {r["case"]: r for r in results}

    def ratio(a: str, b: str, what: str = "seconds") -> str:
        return f"{by[a][what] / by[b][what]:.2f}"

    print(
        "pull: streamed peak RSS / whole-table read = "
        + ratio("pull_streamed", "pull_whole", "peak_mb")
    )
    for kind in ("duckdb", "postgres", "parquet"):
        print(
            f"publish {kind} / delta: whole mart {ratio(kind, 'delta')}, "
            f"1% changed {ratio(kind + ':1pct', 'delta:1pct')}"
        )


if __name__ == "__main__":
    main()
