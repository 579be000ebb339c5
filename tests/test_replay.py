"""Replay: quarantined rows re-processed after an upstream fix, merged exactly once."""

from __future__ import annotations

import polars as pl


def test_orphans_are_replayed_once_their_orders_arrive(lakehouse):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.run("daily")
    quarantined = lakehouse.table("_quarantine/lineitem")
    orphans = quarantined.filter(pl.col("rule") == "orphan")
    orphan_keys = sorted({int(r.split('"l_orderkey":"')[1].split('"')[0]) for r in orphans["row"]})
    assert orphan_keys and all(k > 9_000_000_000_000 for k in orphan_keys)
    lines_before = lakehouse.table("silver/lineitem").height

    header = "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_orderpriority,o_clerk,o_shippriority,o_comment\n"
    rows = "".join(
        f"{k},1,O,10.00,1992-01-02,1-URGENT,Clerk#1,0,the order arrived late\n" for k in orphan_keys
    )
    (lakehouse.landing / "orders" / "orders_late_upstream_fix.csv").write_text(header + rows)
    lakehouse.run("bronze")
    lakehouse.run("silver")
    assert lakehouse.table("silver/lineitem").height == lines_before  # orphans stay quarantined

    lakehouse.run("silver", inputs={"replay": True})
    lakehouse.run("silver", inputs={"replay": True})  # a second replay changes nothing
    lines = lakehouse.table("silver/lineitem")
    assert lines.height == lines_before + orphans.height
    assert lines.filter(pl.col("l_orderkey").is_in(orphan_keys)).height == orphans.height
    after = lakehouse.table("_quarantine/lineitem")
    assert after.height == quarantined.height  # nothing deleted, nothing added
    replayed = after.filter(pl.col("replayed_at").is_not_null())
    assert sorted(replayed["row_key"].to_list()) == sorted(orphans["row_key"].to_list())

    lakehouse.run("gold")  # the replayed lines reach the marts like any new silver rows
    revenue = lakehouse.table("gold/daily_revenue").filter(
        pl.col("order_date") == pl.date(1992, 1, 2)
    )
    assert revenue["line_count"].sum() >= orphans.height


def test_replay_runs_on_its_own(lakehouse):
    import pytest

    with pytest.raises(RuntimeError, match="replay runs on its own"):
        lakehouse.run("silver", inputs={"replay": True, "full_refresh": True})
