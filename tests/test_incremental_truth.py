"""The engine's promise: after any change in silver, incremental gold equals a rebuild.

No mart here says which partitions a change touches: the engine derives it from the
query. Dimension changes are the hard case (a renamed nation, a customer moved to another
nation, a user who changed country): the changed rows are not in the fact table, yet
every partition they reach through a join must be recomputed.
"""

from __future__ import annotations

import json
from datetime import date

import duckdb
import polars as pl
import web_events
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from lakehouse import catalog


def rebuilt(house, name: str) -> pl.DataFrame:
    """The mart computed whole from silver as it is now, by its declared query alone."""
    mart = catalog.load(house.project / "conf" / "datasets").marts[name]
    con = duckdb.connect()
    for table in mart.inputs:
        con.register(table, DeltaTable(str(house.lake / "silver" / table)).to_pyarrow_table())
    return con.sql(mart.query.sql).pl()


def assert_gold_equals_rebuild(house, names) -> None:
    for name in names:
        expected = rebuilt(house, name)
        actual = house.table(f"gold/{name}").select(expected.columns)
        floats = [c for c, t in expected.schema.items() if t.is_float()]
        order = [c for c in expected.columns if c not in floats]
        expected, actual = expected.sort(order), actual.sort(order)
        assert_frame_equal(actual.drop(floats), expected.drop(floats), check_dtypes=False)
        assert_frame_equal(actual.select(floats), expected.select(floats), rel_tol=1e-12)


def _latest_snapshot(house, entity: str) -> pl.DataFrame:
    files = sorted((house.landing / entity).glob("*.parquet"))
    day = files[-1].name.split("_")[1]
    return pl.concat([pl.read_parquet(f) for f in files if f.name.split("_")[1] == day])


def _land_snapshot(house, entity: str, frame: pl.DataFrame, day: str) -> None:
    frame.write_parquet(house.landing / entity / f"{entity}_{day}_part0.parquet")


def test_a_renamed_nation_and_a_customer_moved_reach_the_demo_marts(lakehouse):
    house = lakehouse
    house.configure("landing", defect_rate=0.0)
    for layer in ("landing", "bronze", "silver", "gold"):
        house.run(layer)
    before = house.table("gold/daily_revenue")
    nation = _latest_snapshot(house, "nation")
    renamed = nation.filter(pl.col("n_nationkey") == 3)["n_name"][0]
    assert renamed in before["nation"].to_list()
    nation = nation.with_columns(
        pl.when(pl.col("n_nationkey") == 3)
        .then(pl.lit("NEW " + renamed))
        .otherwise(pl.col("n_name"))
        .alias("n_name")
    )
    _land_snapshot(house, "nation", nation, "2099-01-01")
    customer = _latest_snapshot(house, "customer")
    ordering = house.table("silver/orders")["o_custkey"].unique().sort()[0]
    moved_from = customer.filter(pl.col("c_custkey") == ordering)["c_nationkey"][0]
    customer = customer.with_columns(
        pl.when(pl.col("c_custkey") == ordering)
        .then((pl.col("c_nationkey") + 1) % 25)
        .otherwise(pl.col("c_nationkey"))
        .alias("c_nationkey")
    )
    _land_snapshot(house, "customer", customer, "2099-01-01")
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
    lakehouse.run("gold", inputs={"plan": True})  # a fresh lake: nothing exists
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
    drift = lakehouse.cli("gold", "--inputs", '{"audit": true, "sample": 1000}')

    assert drift.returncode == 4, drift.stderr
    assert "gold/daily_page_stats differs from its rebuild from silver" in drift.stdout
    assert lakehouse.version("gold/daily_page_stats") == version + 1  # the audit wrote nothing
    runs = pl.from_arrow(DeltaTable(str(lakehouse.lake / "_runs")).to_pyarrow_table())
    last = runs.filter(pl.col("pipeline") == "gold").sort("started_at")[-1].row(0, named=True)
    assert last["status"] == "failed" and "differs from its rebuild" in last["error_message"]
    found = json.loads(last["tables"])[0]["drift"]
    assert found["missing"] + found["changed"] >= 1 and found["examples"]
    assert found["rows_checked"] == rebuilt(lakehouse, "daily_page_stats").height


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
