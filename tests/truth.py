"""What the lake must contain, computed straight from tpchgen-cli output with DuckDB.

Independent of the pipelines: only the generated Parquet files and the landing manifests
(which say which original line items the upstream still holds back) are read.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from lakehouse.declare import catalog

ENTITIES = catalog.load_dataset(
    Path(__file__).resolve().parent.parent / "demo" / "tpch.yml"
).entities


def _held_back_after(manifests: list[dict], last_day: date) -> pl.DataFrame:
    pending = [
        (row["l_orderkey"], row["l_linenumber"])
        for manifest in manifests
        for row in manifest["held_back"]
        if date.fromisoformat(row["deliver_on"]) > last_day
    ]
    return pl.DataFrame(
        pending, schema={"l_orderkey": pl.Int64, "l_linenumber": pl.Int32}, orient="row"
    )


def delivered(
    generated: Path, manifests: list[dict], first_day: date, last_day: date
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``orders``, ``lineitem``, ``customer``, ``nation`` as delivered."""
    con = duckdb.connect()
    held = _held_back_after(manifests, last_day)  # noqa: F841  (used by name in SQL)
    con.execute(
        f"CREATE TABLE orders AS SELECT * FROM '{generated}/orders.parquet' "
        f"WHERE o_orderdate BETWEEN DATE '{first_day}' AND DATE '{last_day}'"
    )
    con.execute(
        f"CREATE TABLE lineitem AS SELECT l.* FROM '{generated}/lineitem.parquet' l "
        "JOIN orders o ON o.o_orderkey = l.l_orderkey "
        "ANTI JOIN held h ON h.l_orderkey = l.l_orderkey AND h.l_linenumber = l.l_linenumber"
    )
    for name in ("customer", "nation"):
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM '{generated}/{name}.parquet'")
    return con


def entity_rows(con: duckdb.DuckDBPyConnection, entity: str) -> pl.DataFrame:
    columns = list(ENTITIES[entity].columns)
    frame = pl.from_arrow(con.sql(f"SELECT {', '.join(columns)} FROM {entity}").to_arrow_table())
    return frame.with_columns(pl.col(pl.String).cast(pl.String)).sort(ENTITIES[entity].keys)


def daily_revenue(con) -> pl.DataFrame:
    return pl.from_arrow(
        con.sql("""
        SELECT o_orderdate AS order_date, n_name AS nation, c_mktsegment AS market_segment,
               sum(l_extendedprice * (1 - l_discount)) AS revenue,
               count(DISTINCT o_orderkey) AS order_count, count(*) AS line_count
        FROM lineitem JOIN orders ON o_orderkey = l_orderkey
        JOIN customer ON c_custkey = o_custkey JOIN nation ON n_nationkey = c_nationkey
        GROUP BY ALL ORDER BY ALL""").to_arrow_table()
    )


def pricing_summary(con) -> pl.DataFrame:
    return pl.from_arrow(
        con.sql("""
        SELECT date_trunc('month', l_shipdate)::DATE AS ship_month, l_returnflag, l_linestatus,
               sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price,
               avg(l_discount) AS avg_disc, count(*) AS count_order
        FROM lineitem GROUP BY ALL ORDER BY ALL""").to_arrow_table()
    )


def customer_value(con) -> pl.DataFrame:
    return pl.from_arrow(
        con.sql("""
        SELECT o_custkey AS c_custkey, min(o_orderdate) AS first_order_date,
               max(o_orderdate) AS last_order_date, count(DISTINCT o_orderkey) AS order_count,
               coalesce(sum(l_extendedprice * (1 - l_discount)), 0) AS lifetime_revenue
        FROM orders LEFT JOIN lineitem ON l_orderkey = o_orderkey
        GROUP BY ALL ORDER BY ALL""").to_arrow_table()
    )


def latest_snapshot(house, entity: str) -> pl.DataFrame:
    """The rows of the newest (by name) snapshot of a demo dimension in the landing zone."""
    files = sorted((house.landing / entity).glob("*.parquet"))
    day = files[-1].name.split("_")[1]
    return pl.concat([pl.read_parquet(f) for f in files if f.name.split("_")[1] == day])


def land_snapshot(house, entity: str, frame: pl.DataFrame, day: str) -> None:
    """A snapshot of a demo dimension landed under ``day``'s name, the way landing names one."""
    frame.write_parquet(house.landing / entity / f"{entity}_{day}_part0.parquet")
