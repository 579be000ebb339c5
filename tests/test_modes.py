"""Plan, backfill and full refresh through --inputs; late and rewritten landing files."""

from __future__ import annotations

import re
import shutil
from datetime import date

import polars as pl
import pytest
import truth
from crash_harness import differences, lake_tables
from deltalake import DeltaTable
from polars.testing import assert_frame_equal


def _versions(lake) -> dict[str, int]:
    return {
        f"{log.parent.parent.name}/{log.parent.name}": DeltaTable(str(log.parent)).version()
        for log in sorted(lake.glob("*/*/_delta_log"))
    }


@pytest.fixture
def processed(lakehouse):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.run("daily")
    return lakehouse


def test_a_plan_writes_nothing_and_says_what_it_would_do(processed, capfd):
    processed.run("landing")  # new files waiting for bronze
    before, manifests = _versions(processed.lake), len(processed.manifests())
    processed.run("daily", inputs={"plan": True})
    assert _versions(processed.lake) == before
    assert len(processed.manifests()) == manifests  # landing dropped nothing either
    log = capfd.readouterr().err
    assert "PLAN landing: would drop 1992-01-09, 1992-01-10, 1992-01-11, 1992-01-12" in log
    assert "PLAN bronze/orders: 4 files" in log
    assert re.search(r"PLAN bronze/lineitem: \d+ files, [\d,]+ bytes, ~[\d,]+ rows", log)
    assert "PLAN silver/orders: up to date" in log  # bronze has not run: nothing new for silver


def test_backfill_over_a_processed_range_changes_nothing(processed):
    before = lake_tables(processed.lake)
    range_ = {"from_date": "1992-01-01", "to_date": "1992-01-31"}
    processed.run("silver", inputs=range_)
    processed.run("gold", inputs=range_)
    assert differences(before, lake_tables(processed.lake)) == []


def test_backfill_repairs_the_range_and_full_refresh_rebuilds(processed):
    expected = lake_tables(processed.lake)
    DeltaTable(str(processed.lake / "silver/orders")).delete("o_orderdate = '1992-01-02'")
    DeltaTable(str(processed.lake / "gold/daily_revenue")).delete("order_date = '1992-01-03'")
    processed.run("daily", inputs={"from_date": "1992-01-02", "to_date": "1992-01-03"})
    assert differences(expected, lake_tables(processed.lake)) == []

    shutil.rmtree(processed.lake / "gold")
    DeltaTable(str(processed.lake / "silver/lineitem")).delete("l_linenumber = 1")
    processed.run("daily", inputs={"full_refresh": True})
    assert differences(expected, lake_tables(processed.lake)) == []


def test_incremental_runs_continue_after_a_backfill(processed):
    processed.run("gold", inputs={"from_date": "1992-01-01", "to_date": "1992-01-02"})
    processed.run("daily")  # lands 4 more days
    con = truth.delivered(
        processed.generated(), processed.manifests(), date(1992, 1, 1), processed.last_day()
    )
    daily = processed.table("gold/daily_revenue").drop("order_month")
    assert_frame_equal(daily.sort(daily.columns[:3]), truth.daily_revenue(con), check_dtypes=False)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"from_date": "1992-01-01"}, "needs both from_date and to_date"),
        ({"from_date": "1992-02-01", "to_date": "1992-01-01"}, "is after to_date"),
        ({"from_date": "1992-13-01", "to_date": "1992-12-31"}, "must be YYYY-MM-DD"),
        (
            {"full_refresh": True, "from_date": "1992-01-01", "to_date": "1992-01-02"},
            "drop from_date",
        ),
    ],
)
def test_bad_inputs_fail_before_anything_is_written(processed, inputs, message):
    before = _versions(processed.lake)
    with pytest.raises(RuntimeError, match=message):
        processed.run("silver", inputs=inputs)
    assert _versions(processed.lake) == before


def test_bronze_has_no_backfill(processed):
    with pytest.raises(RuntimeError, match="bronze keeps every landed file exactly once"):
        processed.run("bronze", inputs={"full_refresh": True})


def test_late_and_rewritten_files_are_ingested_once(processed):
    orders = processed.landing / "orders"
    rows = processed.table("bronze/orders").height
    late = orders / "orders_1991-12-31.csv"  # an old date, delivered after newer days
    shutil.copy(orders / "orders_1992-01-02.csv", late)
    processed.run("bronze")
    processed.run("bronze")
    with_late = processed.table("bronze/orders")
    late_rows = sum(1 for _ in late.open()) - 1
    assert with_late.height == rows + late_rows
    assert with_late.filter(pl.col("_source_file").str.ends_with(late.name)).height == late_rows

    late.write_text(
        late.read_text() + late.read_text().splitlines()[1] + "\n"
    )  # rewritten in place
    processed.run("bronze")
    again = processed.table("bronze/orders").filter(pl.col("_source_file").str.ends_with(late.name))
    assert again.height == late_rows + (late_rows + 1)  # the first version, then the rewritten one
