"""Every run ends with a few lines on stdout saying what moved: per pipeline for daily, per
table for one layer, failures first with their cause. Tested on the meter readings dataset
(not the demo), the figures checked against the ledger and the quarantine table."""

from __future__ import annotations

import re

import polars as pl
from test_sturdy import drop, good_rows, install_meters

SILVER_ONLY = ["landing", "bronze", "silver"]


def _bad_rows() -> list[str]:
    return [
        "X001,2031-01-05,1.0,1.000,2031-01-05T08:00:00Z,x",  # meter breaks its regex
        "M950,2031-01-05,-4.0,1.000,2031-01-05T08:00:00Z,x",  # kwh below 0
        "M951,2031-01-05,-5.0,1.000,2031-01-05T08:00:00Z,x",
    ]


def _summary(stdout: str, first_column: str) -> dict[str, list[str]]:
    """The summary table's rows by their first cell."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    rows = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  ") or line.startswith("  quarantined by rule"):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_daily_prints_what_each_pipeline_moved_as_the_ledger_records_it(lakehouse):
    install_meters(lakehouse)
    drop(lakehouse, "r1.csv", good_rows(1, 12) + _bad_rows())  # 20 %: within the budget
    drop(lakehouse, "r2.csv", good_rows(20, 4, day="2031-02-01"))
    (lakehouse.landing / "readings" / "broken.csv").write_bytes(b"")  # a bad file
    lakehouse.configure("daily", layers=SILVER_ONLY)
    done = lakehouse.cli("daily")
    assert done.returncode == 0, done.stderr

    headline = done.stdout.splitlines()[0]
    assert re.fullmatch(r"daily daily-\S+: succeeded in \d+\.\d s", headline), headline
    rows = _summary(done.stdout, "pipeline")
    assert list(rows) == SILVER_ONLY
    runs = lakehouse.table("_runs").filter(pl.col("status") == "succeeded")
    for pipeline, (_, rows_in, written, quarantined, _, seconds) in rows.items():
        ledger = runs.filter(pl.col("pipeline") == pipeline).row(0, named=True)
        assert _number(written) == ledger["rows_written"], pipeline
        assert _number(quarantined) == ledger["rows_quarantined"], pipeline
        assert _number(rows_in) == ledger["rows_read"], pipeline
        assert abs(float(seconds) - ledger["seconds"]) < 0.2, pipeline
    files, rows_in, written, quarantined, bad, _ = rows["bronze"]
    assert (_number(files), _number(rows_in), _number(bad)) == (2, 19, 1)
    assert (_number(written), _number(quarantined)) == (19, 0)  # bronze keeps every row
    assert rows["silver"][1:4] == ["19", "16", "3"]  # silver: 19 in, 16 kept, 3 held back

    rules = lakehouse.table("_quarantine/readings").group_by("rule").len()
    expected = ", ".join(
        f"{rule} {count}"
        for rule, count in rules.sort(["len", "rule"], descending=[True, False]).iter_rows()
    )
    assert f"  quarantined by rule: {expected}" in done.stdout.splitlines()
    # the console is the summary, progress and warnings: no library banners
    assert "Running pipeline" not in done.stderr and "completed successfully" not in done.stderr
    assert len((done.stdout + done.stderr).splitlines()) < 20, done.stdout + done.stderr


def test_one_layer_prints_a_line_per_table_and_a_failure_says_where_first(lakehouse):
    install_meters(lakehouse)
    drop(lakehouse, "r1.csv", good_rows(1, 5) + _bad_rows()[:1])
    (lakehouse.landing / "readings" / "broken.csv").write_bytes(b"\xff\xfe not text")
    done = lakehouse.cli("bronze")
    assert done.returncode == 0, done.stderr
    tables = _summary(done.stdout, "table")
    assert tables["bronze/readings"][:3] == ["1", "6", "6"]
    assert tables["_quarantine/_files"][4] == "1"  # the bad file, left in place

    lakehouse.configure("silver", on_invalid="fail")
    lakehouse.configure("daily", layers=["bronze", "silver"])
    failed = lakehouse.cli("daily")
    assert failed.returncode != 0
    headline = failed.stdout.splitlines()[0]
    assert re.match(r"daily daily-\S+: FAILED at silver after \d+\.\d s: \w+: ", headline), headline
    assert "X001" in headline or "regex" in headline or "meter" in headline, headline
    rows = _summary(failed.stdout, "pipeline")
    assert {name: cells[-1] for name, cells in rows.items()} == {
        "bronze": "succeeded",
        "silver": "failed",
    }
