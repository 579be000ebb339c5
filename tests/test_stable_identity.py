"""A quarantined row keeps its identity (``row_key``): the same bad rows are counted once
whether bronze gained a column since, the same file was ingested again (copied without its
modification time), or a full refresh re-read a day whose file was rewritten. On the page
views of ``web_events`` (string keys, JSON lines, a day partition), not TPC-H."""

from __future__ import annotations

import json
import os
from datetime import date

import polars as pl
import pytest
import web_events
from polars.testing import assert_frame_equal

DAY_1, DAY_2 = date(2024, 5, 6), date(2024, 5, 7)


@pytest.fixture
def web(lakehouse):
    web_events.install(lakehouse.project)
    web_events.write_csv(lakehouse.landing / "users" / "users.csv", web_events.users())
    return lakehouse


def _land(web, name: str, rows: list[dict]) -> None:
    web_events.write_jsonl(web.landing / "page_views" / name, rows)


def _bad_and_good(day: date, seed: str) -> list[dict]:
    good = web_events.views(day, 25, seed)
    again = {**good[0], "page": "/docs"}  # the same view twice in one file: a duplicate
    return good + [row for row, _ in web_events.bad_views(day)] + [again]


def _quarantine(web) -> pl.DataFrame:
    return web.table("_quarantine/page_views").select("rule", "source_file", "row_key")


def _counts(web) -> dict[str, int]:
    return dict(_quarantine(web).group_by("rule").len().sort("rule").iter_rows())


def _silver(web) -> pl.DataFrame:
    views = web.table("silver/page_views").drop("_ingested_at", "_run_id", strict=False)
    return views.select(sorted(c for c in views.columns if not c.startswith("_"))).sort("view_id")


def _layers(web, **inputs) -> None:
    web.run("bronze")
    web.run("silver", inputs=inputs) if inputs else web.run("silver")


def test_a_column_bronze_gained_since_changes_no_row_key(web):
    _land(web, "views_1.jsonl", _bad_and_good(DAY_1, "a"))
    _layers(web)
    first = _quarantine(web)
    assert first["row_key"].n_unique() == first.height == 9  # 8 bad rows, 1 duplicate

    newer = [{**row, "referrer": "news"} for row in web_events.views(DAY_2, 10, "b")]
    _land(web, "views_2.jsonl", newer)  # bronze gains a column its old rows lack
    _layers(web)
    assert "referrer" in web.table("bronze/page_views").columns
    _layers(web, full_refresh=True)  # reads the old bad rows again, now with referrer null

    again = _quarantine(web)
    assert again.height == first.height
    assert set(again["row_key"]) == set(first["row_key"])


def test_a_file_ingested_again_with_a_new_mtime_quarantines_nothing_new(web):
    path = web.landing / "page_views" / "views_1.jsonl"
    _land(web, "views_1.jsonl", _bad_and_good(DAY_1, "a"))
    _layers(web)
    counts, silver = _counts(web), _silver(web)
    bronze_rows = web.table("bronze/page_views").height

    stat = path.stat()  # `cp` without -p: the same bytes, another modification time
    os.utime(path, (stat.st_atime, stat.st_mtime + 3600))
    _layers(web)
    assert web.table("bronze/page_views").height == 2 * bronze_rows  # taken again
    assert _counts(web) == counts
    assert_frame_equal(_silver(web), silver)


def test_a_rewritten_day_then_a_full_refresh_quarantines_what_the_incremental_runs_did(web):
    rows = _bad_and_good(DAY_1, "a")
    _land(web, "views_1.jsonl", rows)
    _layers(web)
    first_counts = _counts(web)
    rewritten = [
        {**row, "page": "/blog/launch"} if 0 < i < 25 and i % 3 == 0 else row
        for i, row in enumerate(rows)
    ]  # fmt: skip  (8 good views corrected)
    path = web.landing / "page_views" / "views_1.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rewritten))
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 60))
    _layers(web)
    counts, silver = _counts(web), _silver(web)
    assert counts == first_counts  # the bad rows and the duplicate it repeats: known
    assert silver.filter(pl.col("page") == "/blog/launch").height >= 8

    _layers(web, full_refresh=True)
    assert _counts(web) == counts
    assert_frame_equal(_silver(web), silver)
