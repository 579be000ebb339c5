"""The TPC-H demo's gold marts: what each reads, what a change touches, how it is recomputed.

Declared in ``conf/datasets/tpch.yml`` (``mart_module: tpch_marts``), where each mart's
output contract lives. Money is summed as exact decimals in DuckDB. A late line item for
an old order touches that order's month, and only that month is recomputed.
"""

from __future__ import annotations

from lakehouse.gold import Mart, Prune

# TPC-H ships every line 1..121 days after its order: an order month's lines ship within
# that month and the five after it. Only used to read fewer line-item partitions.
SHIP_MONTHS_AFTER_ORDER = 5

DAILY_REVENUE = Mart(
    name="daily_revenue",
    reads={
        "orders": ("o_orderkey", "o_custkey", "order_month"),
        "lineitem": ("l_orderkey",),
        "customer": ("c_custkey",),
        "nation": (),
    },
    partition="order_month",
    prune={
        "orders": Prune("order_month"),
        "lineitem": Prune("ship_month", months_after=SHIP_MONTHS_AFTER_ORDER),
    },
    params={"ship_months_after_order": SHIP_MONTHS_AFTER_ORDER},
    range_sql="""
        SELECT DISTINCT order_month FROM orders
        WHERE o_orderdate BETWEEN DATE '{first}' AND DATE '{last}'
    """,
    touched_sql="""
        SELECT order_month FROM changed_orders
        UNION
        SELECT o.order_month FROM orders o
        WHERE o.o_orderkey IN (SELECT l_orderkey FROM changed_lineitem)
           OR o.o_custkey IN (SELECT c_custkey FROM changed_customer)
    """,
    compute_sql="""
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
          AND o.order_month BETWEEN DATE '{first}' AND DATE '{last}'
          AND l.ship_month BETWEEN DATE '{first}'
              AND DATE '{last}' + INTERVAL {ship_months_after_order} MONTH
        GROUP BY ALL
        ORDER BY order_date, nation, market_segment
    """,
)

PRICING_SUMMARY = Mart(
    name="pricing_summary",
    reads={"lineitem": ("ship_month",)},
    partition="ship_month",
    prune={"lineitem": Prune("ship_month")},
    touched_sql="SELECT DISTINCT ship_month FROM changed_lineitem",
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

CUSTOMER_VALUE = Mart(
    name="customer_value",
    reads={"orders": ("o_custkey",), "lineitem": ("l_orderkey",)},
    keys=("c_custkey",),
    range_sql="""
        SELECT DISTINCT o_custkey AS c_custkey FROM orders
        WHERE o_orderdate BETWEEN DATE '{first}' AND DATE '{last}'
    """,
    touched_sql="""
        SELECT o_custkey AS c_custkey FROM changed_orders
        UNION
        SELECT o.o_custkey FROM orders o
        WHERE o.o_orderkey IN (SELECT l_orderkey FROM changed_lineitem)
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
