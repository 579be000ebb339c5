"""Gold: business marts recomputed for exactly the partitions silver changed.

Upstream: ``lake_root/silver/{orders,lineitem,customer,nation}`` (change data feed since
each mart's watermark). Outputs under ``lake_root/gold/``:
  * ``daily_revenue``   one row per (order_date, nation, market_segment), partitioned by order_month
  * ``pricing_summary`` TPC-H Q1, one row per (ship_month, l_returnflag, l_linestatus)
  * ``customer_value``  one row per customer with at least one order
A late line item for an old order touches that order's month, and only that month is
replaced. Money is summed as exact decimals in DuckDB.
"""

from __future__ import annotations

import polars as pl
from loguru import logger

from lakehouse import delta, gold
from lakehouse.runs import new_run_id
from lakehouse.storage import Location

DAILY_REVENUE_SQL = f"""
SELECT o.o_orderdate AS order_date,
       n.n_name AS nation,
       c.c_mktsegment AS market_segment,
       sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue,
       count(DISTINCT o.o_orderkey) AS order_count,
       count(*) AS line_count,
       o.order_month
FROM orders o
JOIN lineitem l ON l.l_orderkey = o.o_orderkey
JOIN customer c ON c.c_custkey = o.o_custkey
JOIN nation n ON n.n_nationkey = c.c_nationkey
WHERE o.order_month IN (SELECT order_month FROM months)
  AND l.ship_month >= (SELECT min(order_month) FROM months)
  AND l.ship_month <= (SELECT max(order_month) FROM months)
                      + INTERVAL {gold.SHIP_MONTHS_AFTER_ORDER} MONTH
GROUP BY ALL
ORDER BY order_date, nation, market_segment
"""

PRICING_SUMMARY_SQL = """
SELECT ship_month,
       l_returnflag,
       l_linestatus,
       sum(l_quantity) AS sum_qty,
       sum(l_extendedprice) AS sum_base_price,
       sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
       avg(l_quantity) AS avg_qty,
       avg(l_extendedprice) AS avg_price,
       avg(l_discount) AS avg_disc,
       count(*) AS count_order
FROM lineitem
WHERE ship_month IN (SELECT ship_month FROM months)
GROUP BY ALL
ORDER BY ship_month, l_returnflag, l_linestatus
"""

CUSTOMER_VALUE_SQL = """
WITH customer_orders AS (
    SELECT o_orderkey, o_custkey, o_orderdate FROM orders
    WHERE o_custkey IN (SELECT c_custkey FROM customers)
)
SELECT o.o_custkey AS c_custkey,
       min(o.o_orderdate) AS first_order_date,
       max(o.o_orderdate) AS last_order_date,
       count(DISTINCT o.o_orderkey) AS order_count,
       coalesce(sum(l.l_extendedprice * (1 - l.l_discount)), 0)::DECIMAL(38, 4) AS lifetime_revenue
FROM customer_orders o
LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey
GROUP BY ALL
ORDER BY c_custkey
"""

ORDER_MONTHS_OF_LINES_SQL = """
SELECT DISTINCT o.order_month FROM orders o
WHERE o.o_orderkey IN (SELECT l_orderkey FROM changed_lines)
   OR o.o_custkey IN (SELECT c_custkey FROM changed_customers)
"""

CUSTOMERS_OF_LINES_SQL = """
SELECT DISTINCT o.o_custkey AS c_custkey FROM orders o
WHERE o.o_orderkey IN (SELECT l_orderkey FROM changed_lines)
"""


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return Location.from_uri(lake_root)


def run_id() -> str:
    """This run's id, stamped on every commit."""
    return new_run_id("gold")


def _mart(lake: Location, name: str) -> Location:
    return lake.child("gold", name)


def daily_revenue(lake: Location, run_id: str) -> delta.WriteResult:
    """One row per (order_date, nation, market_segment): revenue of the order lines."""
    app_id, target = "gold:daily_revenue", _mart(lake, "daily_revenue")
    changes = gold.silver_changes(lake, target, app_id)
    con = gold.connect(lake)
    months = (
        pl.concat(
            [
                changes.orders.select("order_month").cast(pl.Date),
                pl.from_arrow(
                    gold.query(
                        con,
                        ORDER_MONTHS_OF_LINES_SQL,
                        changed_lines=changes.lineitem.select(pl.col("l_orderkey").cast(pl.Int64)),
                        changed_customers=changes.customer.select(
                            pl.col("c_custkey").cast(pl.Int64)
                        ),
                    )
                ).cast({"order_month": pl.Date}),
            ]
        )
        .unique()
        .drop_nulls()
    )
    data = gold.query(con, DAILY_REVENUE_SQL, months=months) if months.height else None
    return _replace(
        target, data, "order_month", months["order_month"].to_list(), changes, app_id, run_id
    )


def pricing_summary(lake: Location, run_id: str) -> delta.WriteResult:
    """TPC-H Q1 per (ship_month, l_returnflag, l_linestatus) over the line items ingested."""
    app_id, target = "gold:pricing_summary", _mart(lake, "pricing_summary")
    changes = gold.silver_changes(lake, target, app_id)
    months = changes.lineitem.select(pl.col("ship_month").cast(pl.Date)).unique().drop_nulls()
    con = gold.connect(lake)
    data = gold.query(con, PRICING_SUMMARY_SQL, months=months) if months.height else None
    return _replace(
        target, data, "ship_month", months["ship_month"].to_list(), changes, app_id, run_id
    )


def customer_value(lake: Location, run_id: str) -> delta.WriteResult:
    """One row per customer with an order: first and last order date, orders, revenue."""
    app_id, target = "gold:customer_value", _mart(lake, "customer_value")
    changes = gold.silver_changes(lake, target, app_id)
    con = gold.connect(lake)
    customers = (
        pl.concat(
            [
                changes.orders.select(pl.col("o_custkey").cast(pl.Int64).alias("c_custkey")),
                pl.from_arrow(
                    gold.query(
                        con,
                        CUSTOMERS_OF_LINES_SQL,
                        changed_lines=changes.lineitem.select(pl.col("l_orderkey").cast(pl.Int64)),
                    )
                ),
            ]
        )
        .unique()
        .drop_nulls()
    )
    properties = delta.commit_properties(
        app_id, _next_batch(target, app_id), changes.watermark, run_id
    )
    if customers.is_empty():
        return gold.record_unchanged(target, properties)
    data = gold.query(con, CUSTOMER_VALUE_SQL, customers=customers)
    result = gold.upsert(target, data, ["c_custkey"], properties)
    logger.info(f"gold: {result} ({customers.height} customers touched)")
    return result


def _next_batch(target: Location, app_id: str) -> int:
    return delta.last_batch(delta.open_table(target), app_id) + 1


def _replace(target, data, column, values, changes, app_id, run_id) -> delta.WriteResult:
    properties = delta.commit_properties(
        app_id, _next_batch(target, app_id), changes.watermark, run_id
    )
    if data is None:
        return gold.record_unchanged(target, properties)
    result = gold.replace_partitions(target, data, column, values, properties)
    logger.info(f"gold: {result} ({len(values)} partitions replaced)")
    return result


def gold_tables(
    daily_revenue: delta.WriteResult,
    pricing_summary: delta.WriteResult,
    customer_value: delta.WriteResult,
) -> list[delta.WriteResult]:
    """Everything this run wrote to gold."""
    return [daily_revenue, pricing_summary, customer_value]
