"""The engine's promise: after any change in silver, incremental gold equals a rebuild.

No mart here says which partitions a change touches: the engine derives it from the
query. Dimension changes are the hard case (a renamed nation, a customer moved to another
nation, a user who changed country): the changed rows are not in the fact table, yet
every partition they reach through a join must be recomputed.
"""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import web_events
from deltalake import DeltaTable
from openlineage_model import check_event
from rebuild import assert_gold_equals_rebuild, rebuilt
from truth import land_snapshot, latest_snapshot


def test_a_renamed_nation_and_a_customer_moved_reach_the_demo_marts(lakehouse):
    house = lakehouse
    house.configure("landing", defect_rate=0.0)
    for layer in ("landing", "bronze", "silver", "gold"):
        house.run(layer)
    before = house.table("gold/daily_revenue")
    nation = latest_snapshot(house, "nation")
    renamed = nation.filter(pl.col("n_nationkey") == 3)["n_name"][0]
    assert renamed in before["nation"].to_list()
    nation = nation.with_columns(
        pl.when(pl.col("n_nationkey") == 3)
        .then(pl.lit("NEW " + renamed))
        .otherwise(pl.col("n_name"))
        .alias("n_name")
    )
    land_snapshot(house, "nation", nation, "2099-01-01")
    customer = latest_snapshot(house, "customer")
    ordering = house.table("silver/orders")["o_custkey"].unique().sort()[0]
    moved_from = customer.filter(pl.col("c_custkey") == ordering)["c_nationkey"][0]
    customer = customer.with_columns(
        pl.when(pl.col("c_custkey") == ordering)
        .then((pl.col("c_nationkey") + 1) % 25)
        .otherwise(pl.col("c_nationkey"))
        .alias("c_nationkey")
    )
    land_snapshot(house, "customer", customer, "2099-01-01")
    _carry(house)

    after = house.table("gold/daily_revenue")
    assert renamed not in after["nation"].to_list()
    assert "NEW " + renamed in after["nation"].to_list()
    assert (
        house.table("silver/customer").filter(pl.col("c_custkey") == ordering)["c_nationkey"][0]
        == (moved_from + 1) % 25
    )
    assert_gold_equals_rebuild(house, ["daily_revenue", "pricing_summary", "customer_value"])


def _land_views_and_users(house) -> tuple[list[dict], list[dict]]:
    users = web_events.users()
    web_events.write_csv(house.landing / "users" / "users_1.csv", users)
    views = web_events.views(date(2024, 2, 28), 30, "a") + web_events.views(
        date(2024, 3, 2), 30, "b"
    )
    web_events.write_jsonl(house.landing / "page_views" / "views_1.jsonl", views)
    return users, views


def _move_to_another_country(house, users: list[dict], mover: str) -> None:
    """A later users file: ``mover`` now lives in another country."""
    moved = [
        {**u, "country": "JP" if u["country"] != "JP" else "DE"}
        for u in users
        if u["user_id"] == mover
    ]
    web_events.write_csv(house.landing / "users" / "users_2.csv", moved)


def _carry(house) -> None:
    for layer in ("bronze", "silver", "gold"):
        house.run(layer)


def test_a_user_who_changes_country_reaches_every_day_they_viewed(lakehouse):
    """A second domain: string keys, day partitions, a .sql mart joining a dimension."""
    web_events.install(lakehouse.project)
    users, views = _land_views_and_users(lakehouse)
    _carry(lakehouse)
    assert_gold_equals_rebuild(lakehouse, ["daily_page_stats"])
    first = lakehouse.table("gold/daily_page_stats")

    mover = views[0]["user_id"]
    _move_to_another_country(lakehouse, users, mover)
    reassigned = {**views[1], "user_id": mover if views[1]["user_id"] != mover else "u-0002"}
    web_events.write_jsonl(lakehouse.landing / "page_views" / "views_2.jsonl", [reassigned])
    _carry(lakehouse)

    assert_gold_equals_rebuild(lakehouse, ["daily_page_stats"])
    second = lakehouse.table("gold/daily_page_stats")
    assert not second.sort("view_date", "country").equals(first.sort("view_date", "country"))
    assert set(second["view_date"]) == set(first["view_date"])


def test_a_mart_whose_input_has_no_data_yet_is_skipped_and_blocks_no_other(lakehouse, capfd):
    """web_events' users never land: its mart waits, the demo's marts run, plan works."""
    web_events.install(lakehouse.project)
    lakehouse.switch_demo(True)
    lakehouse.configure("landing", defect_rate=0.0)
    assert not lakehouse.landing.exists()  # a fresh machine: nothing landed, no lake
    planned = lakehouse.cli("daily", "--inputs", '{"plan": true}')
    assert planned.returncode == 0, planned.stderr
    assert "gold/daily_revenue: skipped, silver/orders" in planned.stderr
    for layer in ("landing", "bronze", "silver", "gold"):
        lakehouse.run(layer)
    assert "gold/daily_page_stats: skipped, silver/page_views, silver/users does not exist" in (
        capfd.readouterr().err
    )
    assert lakehouse.table("gold/daily_revenue").height > 0
    assert not (lakehouse.lake / "gold" / "daily_page_stats").exists()


def test_the_audit_catches_a_touched_override_that_forgets_a_dimension(lakehouse):
    web_events.install(lakehouse.project)
    path = lakehouse.project / "conf" / "datasets" / "web_events.yml"
    path.write_text(
        path.read_text().replace(
            "    sql: marts/daily_page_stats.sql\n",
            "    sql: marts/daily_page_stats.sql\n"
            "    touched: SELECT DISTINCT view_date FROM changed_page_views\n",
        )
    )
    users, views = _land_views_and_users(lakehouse)
    _carry(lakehouse)
    clean = lakehouse.cli("gold", "--inputs", '{"audit": true}')
    assert clean.returncode == 0, clean.stderr
    assert "audit gold/daily_page_stats: equal to its rebuild" in clean.stdout
    version = lakehouse.version("gold/daily_page_stats")

    _move_to_another_country(lakehouse, users, views[0]["user_id"])
    _carry(lakehouse)  # the override reads no user change: the mart keeps the old country
    events_file = lakehouse.root / "lineage.jsonl"
    lineage = {"LINEAGE_TRANSPORT": "file", "LINEAGE_FILE": str(events_file)}
    drift = lakehouse.cli("gold", "--inputs", '{"audit": true, "sample": 1000}', env=lineage)

    assert drift.returncode == 4, drift.stderr
    assert "gold/daily_page_stats differs from its rebuild from silver" in drift.stdout
    assert lakehouse.version("gold/daily_page_stats") == version + 1  # the audit wrote nothing
    runs = pl.from_arrow(DeltaTable(str(lakehouse.lake / "_runs")).to_pyarrow_table())
    last = runs.filter(pl.col("pipeline") == "gold").sort("started_at")[-1].row(0, named=True)
    assert last["status"] == "failed" and "differs from its rebuild" in last["error_message"]
    found = json.loads(last["tables"])[0]["drift"]
    assert found["missing"] + found["changed"] >= 1 and found["examples"]
    assert found["rows_checked"] == rebuilt(lakehouse, "daily_page_stats").height
    (failed,) = [json.loads(line) for line in events_file.read_text().splitlines()][1:]
    check_event(failed)
    assert failed["eventType"] == "FAIL"
    (mart,) = [d for d in failed["inputs"] if d["name"].endswith("gold/daily_page_stats")]
    (assertion,) = mart["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertion["assertion"] == "equals_rebuild" and assertion["success"] is False
    assert int(assertion["actual"]) == found["missing"] + found["extra"] + found["changed"]


def test_an_audit_of_a_sample_recomputes_only_that_many_parts(lakehouse):
    web_events.install(lakehouse.project)
    _land_views_and_users(lakehouse)
    _carry(lakehouse)
    result = lakehouse.run("gold", inputs={"audit": True, "sample": 1})
    (audited,) = result["gold_tables"]
    assert audited.operation == "audit" and audited.drift["parts"] == 1
    days = lakehouse.table("gold/daily_page_stats")["view_date"]
    assert 0 < audited.rows < days.len()
    assert audited.rows in days.value_counts()["count"].to_list()  # the rows of one day


def test_a_changed_query_recomputes_its_mart_whole_and_a_new_layout_does_not(lakehouse, capfd):
    web_events.install(lakehouse.project)
    _land_views_and_users(lakehouse)
    _carry(lakehouse)
    query = lakehouse.project / "marts" / "daily_page_stats.sql"
    version = lakehouse.version("gold/daily_page_stats")
    query.write_text("-- the same query, laid out anew\n" + query.read_text().replace("\n", "\n  "))
    lakehouse.run("gold")
    assert lakehouse.version("gold/daily_page_stats") == version  # nothing to recompute

    query.write_text(query.read_text().replace("count(*) AS views", "count(*) + 1 AS views"))
    lakehouse.run("gold")
    assert "gold/daily_page_stats: its query or contract changed" in capfd.readouterr().err
    assert_gold_equals_rebuild(lakehouse, ["daily_page_stats"])
    lakehouse.run("gold")
    assert lakehouse.version("gold/daily_page_stats") == version + 1  # once, then up to date
