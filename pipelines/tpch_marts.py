"""The TPC-H demo's gold marts: each one query over silver entities.

Each function is named after its mart and its parameters name the silver entities it
reads; it returns the SELECT (DuckDB SQL, so money sums stay exact decimals). The output
contracts (grain, key, types, rules, partition) are declared in ``conf/datasets/tpch.yml``.
Which partitions or keys a change reaches is the engine's work, not the query's.
"""


def daily_revenue(orders: str, lineitem: str, customer: str, nation: str) -> str:
    """One row per (order_date, nation, market_segment): the revenue of the day's orders."""
    return """
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
        GROUP BY ALL
    """


def pricing_summary(lineitem: str) -> str:
    """TPC-H Q1 per ship month: one row per (ship_month, l_returnflag, l_linestatus)."""
    return """
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
        GROUP BY ALL
    """


def customer_value(orders: str, lineitem: str) -> str:
    """One row per customer with at least one order: their orders and lifetime revenue."""
    return """
        SELECT o.o_custkey AS c_custkey,
               min(o.o_orderdate) AS first_order_date,
               max(o.o_orderdate) AS last_order_date,
               count(DISTINCT o.o_orderkey) AS order_count,
               coalesce(sum(l.l_extendedprice * (1 - l.l_discount)), 0)::DECIMAL(38, 4)
                   AS lifetime_revenue
        FROM orders o
        LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey
        GROUP BY ALL
    """
