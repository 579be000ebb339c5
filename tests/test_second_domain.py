"""The engine on a dataset that is not TPC-H, declared only under conf/ and pipelines/.

landing -> bronze -> silver -> gold -> publish for web page views (see web_events.py):
bad rows quarantined by rule, a late row that updates an old partition, a rerun that
writes nothing, and the TPC-H demo switched off throughout.
"""

from __future__ import annotations

import re
from datetime import date

import duckdb
import polars as pl
import pytest
import web_events
from crash_harness import silver_killed_at_the_merge
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

DAY_1, DAY_2, DAY_3 = date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)


@pytest.fixture
def web(lakehouse):
    web_events.install(lakehouse.project)
    return lakehouse


def _land_first_drop(web) -> list[dict]:
    users = web_events.users()
    web_events.write_csv(web.landing / "users" / "users_2024-02-28.csv", users)
    good = web_events.views(DAY_1, 40, "d1") + web_events.views(DAY_2, 30, "d2")
    again = {**good[3], "page": "/pricing?again"}  # the same view sent twice: the last wins
    bad = [row for row, _ in web_events.bad_views(DAY_2)]
    web_events.write_jsonl(web.landing / "page_views" / "views_1.jsonl", good + bad + [again])
    return good + [again]


def _silver_views(web) -> pl.DataFrame:
    return (
        web.table("silver/page_views")
        .select("view_id", "user_id", "page", "viewed_at", "dwell_ms", "amount", "view_date")
        .sort("view_id")
    )


def _gold(web) -> pl.DataFrame:
    return web.table("gold/daily_page_stats").sort("view_date", "country")


def test_page_views_flow_to_a_mart_with_bad_rows_quarantined(web):
    good = _land_first_drop(web)
    for layer in ("bronze", "silver", "gold", "publish"):
        web.run(layer)

    assert not (web.lake / "silver" / "orders").exists()  # the demo is off: nothing of it ran
    expected = web_events.expected_views(good)
    assert_frame_equal(_silver_views(web), expected)
    assert web.table("silver/users").height == 12

    quarantined = web.table("_quarantine/page_views")
    rules = dict(quarantined.group_by("rule").len().iter_rows())
    wanted = {}
    for _, rule in web_events.bad_views(DAY_2):
        wanted[rule] = wanted.get(rule, 0) + 1
    wanted["duplicate"] = 1
    assert rules == wanted
    assert quarantined.filter(pl.col("rule") == "orphan")["reason"][0] == (
        "user_id=u-9999 has no row in silver/users"
    )
    assert quarantined["source_file"].str.ends_with("views_1.jsonl").all()

    stats = web_events.expected_daily_stats(expected, web_events.users())
    assert_frame_equal(_gold(web).select(stats.columns), stats)
    with duckdb.connect(str(web.root / "marts.duckdb"), read_only=True) as con:
        published = pl.from_arrow(con.sql("SELECT * FROM daily_page_stats").to_arrow_table())
    assert_frame_equal(published.sort("view_date", "country").select(stats.columns), stats)


def test_a_late_view_recomputes_only_its_old_partition_and_a_rerun_writes_nothing(web):
    good = _land_first_drop(web)
    for layer in ("bronze", "silver", "gold"):
        web.run(layer)
    late = web_events.views(DAY_1, 1, "late")  # arrives a day later for an old partition
    today = web_events.views(DAY_3, 20, "d3")
    web_events.write_jsonl(web.landing / "page_views" / "views_2.jsonl", late + today)
    for layer in ("bronze", "silver", "gold"):
        web.run(layer)

    expected = web_events.expected_views(good + late + today)
    assert_frame_equal(_silver_views(web), expected)
    stats = web_events.expected_daily_stats(expected, web_events.users())
    assert_frame_equal(_gold(web).select(stats.columns), stats)
    last_write = DeltaTable(str(web.lake / "gold/daily_page_stats")).history(1)[0]
    replaced = re.findall(r"\d{4}-\d\d-\d\d", last_write["operationParameters"]["predicate"])
    assert replaced == ["2024-02-28", "2024-03-01"]  # Feb 29 untouched

    tables = (
        "silver/page_views",
        "silver/users",
        "_quarantine/page_views",
        "gold/daily_page_stats",
    )
    before = {name: web.table(name) for name in tables}
    outputs = {layer: web.run(layer) for layer in ("bronze", "silver", "gold")}
    written = [r.rows for results in outputs.values() for out in results.values() for r in out]
    assert sum(written) == 0
    for name in tables:
        assert_frame_equal(web.table(name), before[name])


def _corrected(view: dict) -> dict:
    return {**view, "page": "/pricing" if view["page"] != "/pricing" else "/"}


def test_new_keys_are_appended_and_only_known_keys_merged_even_when_killed_between(
    web, monkeypatch
):
    good = _land_first_drop(web)
    for layer in ("bronze", "silver"):
        web.run(layer)
    views = DeltaTable(str(web.lake / "silver/page_views"))

    fresh, fix = web_events.views(DAY_3, 20, "d3"), _corrected(good[0])
    web_events.write_jsonl(web.landing / "page_views" / "views_2.jsonl", fresh + [fix])
    web.run("bronze")
    web.run("silver")
    views.update_incremental()
    merged, appended = views.history(2)
    assert (appended["operation"], appended["operationMetrics"]["num_added_rows"]) == ("WRITE", 20)
    assert "lakehouse.watermark" not in appended  # not the batch's commit: the MERGE is
    assert merged["operation"] == "MERGE"
    assert merged["operationMetrics"]["num_source_rows"] == 1  # only the corrected view
    assert merged["operationMetrics"]["num_target_rows_updated"] == 1

    more, fix_again = web_events.views(DAY_3, 10, "d3b"), _corrected(good[1])
    web_events.write_jsonl(web.landing / "page_views" / "views_3.jsonl", more + [fix_again])
    web.run("bronze")
    before = views.version()

    silver_killed_at_the_merge(web, monkeypatch)
    views.update_incremental()
    assert views.version() == before + 1  # the 10 new views only

    web.run("silver")
    views.update_incremental()
    assert views.history(1)[0]["operationMetrics"]["num_target_rows_inserted"] == 0
    expected = web_events.expected_views(good + fresh + [fix] + more + [fix_again])
    assert_frame_equal(_silver_views(web), expected)


def test_a_full_refresh_takes_its_range_from_the_data(lakehouse, capfd):
    web_events.install(lakehouse.project, remove_demo=True)
    web = lakehouse
    _land_first_drop(web)
    web.configure("bronze", sources={"sessions": {"format": "csv"}})  # no entity reads it
    web_events.write_csv(web.landing / "sessions" / "s.csv", [{"session_id": "s1"}])
    for layer in ("bronze", "silver", "gold"):
        web.run(layer)
    assert "bronze/sessions has no silver entity" in capfd.readouterr().err

    nothing = {"from_date": "2013-01-01", "to_date": "2013-12-31"}  # a range without data
    web.run("silver", inputs=nothing)
    web.run("gold", inputs=nothing)
    warned = capfd.readouterr().err
    assert "silver/page_views backfill 2013-01-01..2013-12-31: no bronze row in the range" in warned
    assert (
        "gold/daily_page_stats backfill 2013-01-01..2013-12-31: no view_date to recompute" in warned
    )
    expected = {name: web.table(name) for name in ("silver/page_views", "gold/daily_page_stats")}
    DeltaTable(str(web.lake / "silver/page_views")).delete("view_date = '2024-02-28'")
    (web.lake / "gold").rename(web.root / "gold_dropped")

    web.run("silver", inputs={"full_refresh": True})
    web.run("gold", inputs={"full_refresh": True})
    assert_frame_equal(
        web.table("silver/page_views").sort("view_id"),
        expected["silver/page_views"].sort("view_id"),
    )
    assert_frame_equal(_gold(web), expected["gold/daily_page_stats"].sort("view_date", "country"))


def test_budgets_by_integer_date_columns_a_user_check_and_a_closed_schema(web, caplog):
    rows = [
        {"campaign": "spring", "year": 2024, "month": 3, "day": 5, "budget": "250.00"},
        {"campaign": "spring", "year": 2024, "month": 4, "day": 1, "budget": "300.00"},
        {"campaign": "small-ads", "year": 2024, "month": 3, "day": 5, "budget": "80.00"},
        {"campaign": "small-ads", "year": 2024, "month": 3, "day": 6, "budget": "800.00"},
        {"campaign": "spring", "year": 2024, "month": 2, "day": 30, "budget": "10.00"},
    ]
    web_events.write_csv(web.landing / "budgets" / "budgets_1.csv", rows)
    extra = [{**rows[0], "owner": "ops"}]  # a column the closed entity does not declare
    web_events.write_csv(web.landing / "budgets" / "budgets_2.csv", extra)
    web.configure("silver", max_invalid_fraction=0.5)  # 2 of these 5 rows are bad on purpose
    web.run("bronze")
    web.run("silver")

    budgets = web.table("silver/budgets").sort("campaign", "month", "day")
    assert budgets.select("campaign", "budget_month").rows() == [
        ("small-ads", date(2024, 3, 1)),
        ("spring", date(2024, 3, 1)),
        ("spring", date(2024, 4, 1)),
    ]
    quarantined = web.table("_quarantine/budgets").sort("rule")
    assert quarantined["rule"].to_list() == ["contract", "unparseable_value"]
    assert quarantined["reason"].to_list() == [
        "fails small_campaigns_stay_small",
        "year/month/day=2024-2-30 is not a valid date",
    ]
    bad_files = web.table("_quarantine/_files")
    assert bad_files["error"].to_list() == ["new_columns"]
    assert "undeclared column(s) owner" in bad_files["message"][0]
    assert (web.landing / "budgets" / "budgets_2.csv").exists()  # left in place


def test_bronze_can_run_on_some_sources_only(web):
    _land_first_drop(web)
    web.run("bronze", inputs={"only_sources": ["users"]})
    assert sorted(p.name for p in (web.lake / "bronze").iterdir()) == ["users"]
    with pytest.raises(RuntimeError, match="only_sources: no source sesions .declared: budgets"):
        web.run("bronze", inputs={"only_sources": ["sesions"]})
