"""Gold: business marts recomputed for exactly the partitions silver changed.

Upstream: ``lake_root/silver/{orders,lineitem,customer,nation}`` and their change data feed
since each mart's watermark. Outputs under ``lake_root/gold/``:
  * ``daily_revenue``   one row per (order_date, nation, market_segment), partitioned by order_month
  * ``pricing_summary`` TPC-H Q1, one row per (ship_month, l_returnflag, l_linestatus)
  * ``customer_value``  one row per customer with at least one order
A late line item for an old order touches that order's month, and only that month is
replaced. Money is summed as exact decimals in DuckDB.
"""

from __future__ import annotations

import sys

from hamilton.htypes import Collect, Parallelizable
from loguru import logger

from lakehouse import gold, settings
from lakehouse.delta import WriteResult
from lakehouse.runs import RunMode, check_watermark, new_run_id
from lakehouse.runs import run_mode as parse_run_mode
from lakehouse.storage import Location

DAILY_REVENUE = gold.Mart(
    name="daily_revenue",
    reads=("orders", "lineitem", "customer", "nation"),
    prune=(
        ("orders", "order_month >= '{first}' AND order_month <= '{last}'"),
        ("lineitem", "ship_month >= '{first}' AND ship_month <= '{last_ship}'"),
    ),
    partition="order_month",
    range_sql="""
        SELECT DISTINCT order_month FROM orders
        WHERE o_orderdate BETWEEN DATE '{first}' AND DATE '{last}'
    """,
    touched_sql="""
        SELECT order_month FROM changed_orders
        UNION
        SELECT o.order_month FROM orders o
        WHERE o.o_orderkey IN (SELECT l_orderkey FROM changed_lines)
           OR o.o_custkey IN (SELECT c_custkey FROM changed_customers)
    """,
    compute_sql=f"""
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
        WHERE o.order_month IN (SELECT order_month FROM touched)
          AND o.order_month BETWEEN DATE '{{first}}' AND DATE '{{last}}'
          AND l.ship_month BETWEEN DATE '{{first}}'
              AND DATE '{{last}}' + INTERVAL {gold.SHIP_MONTHS_AFTER_ORDER} MONTH
        GROUP BY ALL
        ORDER BY order_date, nation, market_segment
    """,
)

PRICING_SUMMARY = gold.Mart(
    name="pricing_summary",
    reads=("lineitem",),
    prune=(("lineitem", "ship_month >= '{first}' AND ship_month <= '{last}'"),),
    partition="ship_month",
    touched_sql="SELECT DISTINCT ship_month FROM changed_lines",
    range_sql="""
        SELECT DISTINCT ship_month FROM lineitem
        WHERE l_shipdate BETWEEN DATE '{first}' AND DATE '{last}'
    """,
    compute_sql="""
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
        WHERE ship_month IN (SELECT ship_month FROM touched)
          AND ship_month BETWEEN DATE '{first}' AND DATE '{last}'
        GROUP BY ALL
        ORDER BY ship_month, l_returnflag, l_linestatus
    """,
)

CUSTOMER_VALUE = gold.Mart(
    name="customer_value",
    reads=("orders", "lineitem"),
    keys=("c_custkey",),
    range_sql="""
        SELECT DISTINCT o_custkey AS c_custkey FROM orders
        WHERE o_orderdate BETWEEN DATE '{first}' AND DATE '{last}'
    """,
    touched_sql="""
        SELECT o_custkey AS c_custkey FROM changed_orders
        UNION
        SELECT o.o_custkey FROM orders o
        WHERE o.o_orderkey IN (SELECT l_orderkey FROM changed_lines)
    """,
    compute_sql="""
        WITH customer_orders AS (
            SELECT o_orderkey, o_custkey, o_orderdate FROM orders
            WHERE o_custkey IN (SELECT c_custkey FROM touched)
        )
        SELECT o.o_custkey AS c_custkey,
               min(o.o_orderdate) AS first_order_date,
               max(o.o_orderdate) AS last_order_date,
               count(DISTINCT o.o_orderkey) AS order_count,
               coalesce(sum(l.l_extendedprice * (1 - l.l_discount)), 0)::DECIMAL(38, 4)
                   AS lifetime_revenue
        FROM customer_orders o
        LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey
        GROUP BY ALL
        ORDER BY c_custkey
    """,
)


MARTS = (DAILY_REVENUE, PRICING_SUMMARY, CUSTOMER_VALUE)


def lake(lake_root: str) -> Location:
    """The lake's root folder (the YAML's keys are checked here, before any read or write)."""
    settings.check_keys("gold", sys.modules[__name__])
    return settings.location("lake_root", lake_root, "gold")


def silver_snapshot(lake: Location) -> gold.SilverSnapshot:
    """The silver tables this run reads, opened once for all marts."""
    return gold.SilverSnapshot.open(lake)


def run_id() -> str:
    """This run's id, stamped on every commit."""
    return new_run_id("gold")


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    watermark: dict | None = None,
) -> RunMode:
    """What this run does, from ``--inputs``: what silver changed (default), ``plan``, a
    backfill (``from_date``/``to_date``) or ``full_refresh``."""
    check_watermark(watermark or {}, "gold", ("version",))
    return parse_run_mode(plan, from_date, to_date, full_refresh)


def mart_plans(
    lake: Location, silver_snapshot: gold.SilverSnapshot, run_mode: RunMode
) -> list[gold.MartPlan]:
    """Per mart, what this run recomputes (read in the driver from the change data feed)."""
    plans = [gold.plan(lake, silver_snapshot, mart, run_mode) for mart in MARTS]
    silver_snapshot.con.close()
    return plans


def mart_task(
    mart_plans: list[gold.MartPlan],
    lake: Location,
    partitions_per_task: int,
    keys_per_task: int,
) -> Parallelizable[gold.PartTask]:
    """One executor task per group of touched partitions (or keys) of a mart."""
    parts = gold.tasks(mart_plans, lake, partitions_per_task, keys_per_task)
    logger.info(f"gold: {len(parts)} tasks")
    yield from parts


def mart_part(mart_task: gold.PartTask) -> gold.MartPart:
    """The task's partitions recomputed from silver and checked by the mart's contract."""
    return gold.compute(mart_task)


def gold_tables(
    mart_part: Collect[gold.MartPart], mart_plans: list[gold.MartPlan], run_id: str
) -> list[WriteResult]:
    """Each mart's recomputed parts written in one commit with its watermark."""
    parts = list(mart_part)
    return [gold.write(plan, parts, run_id) for plan in mart_plans]
