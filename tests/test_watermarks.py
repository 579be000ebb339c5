"""The column watermark: late rows inside the lookback are merged, older ones are not."""

from __future__ import annotations

from datetime import date

import truth
from polars.testing import assert_frame_equal

LATE_ORDERS = (
    (
        "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,"
        "o_orderpriority,o_clerk,o_shippriority,o_comment\n"
    )
    + """900000001,1,O,100.00,1992-01-03,1-URGENT,Clerk#000000001,0,late but inside the lookback
900000002,1,O,200.00,1992-01-01,1-URGENT,Clerk#000000001,0,late and outside the lookback
"""
)


def test_column_watermark_with_lookback(lakehouse):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.configure(
        "silver",
        watermark={
            "kind": "column",
            "column": "_ingested_at",
            "lookback_days": 2,
            "columns": {"orders": "o_orderdate"},
        },
    )
    lakehouse.run("daily")  # days 1992-01-01..04: the orders watermark is now 1992-01-04
    con = truth.delivered(
        lakehouse.generated(), lakehouse.manifests(), date(1992, 1, 1), lakehouse.last_day()
    )
    orders = lakehouse.table("silver/orders").select(truth.entity_rows(con, "orders").columns)
    assert_frame_equal(orders.sort("o_orderkey"), truth.entity_rows(con, "orders"))
    quarantined = lakehouse.table("_quarantine/orders").height

    (lakehouse.landing / "orders" / "orders_late.csv").write_text(LATE_ORDERS)
    lakehouse.run("bronze")
    lakehouse.run("silver")  # window: 1992-01-02 (04 less 2 days) .. newest
    lakehouse.run("silver")  # the lookback re-reads the window: nothing twice
    keys = set(lakehouse.table("silver/orders")["o_orderkey"].to_list())
    assert 900000001 in keys and 900000002 not in keys
    assert lakehouse.table("silver/orders").height == orders.height + 1
    assert lakehouse.table("_quarantine/orders").height == quarantined
    lines = truth.entity_rows(con, "lineitem")  # by _ingested_at: every line item, once
    assert_frame_equal(
        lakehouse.table("silver/lineitem").select(lines.columns).sort(lines.columns[:4]),
        lines.sort(lines.columns[:4]),
    )
