"""Bad input never blocks an entity: a value that breaks conversion is one quarantined row, a
bad drop above the error budget is held whole while later drops flow, a file still being
written waits, watermark kinds can be switched, and row identity does not depend on where
the project sits. Tested on a dataset of another shape than the demo (meter readings:
composite string/date key, month partition, floats, decimals, zoned timestamps, 2031)."""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from conftest import sandbox

METERS = """\
description: Meter readings (a test dataset; nothing like TPC-H).
sources:
  readings: {format: csv}
entities:
  readings:
    grain: One reading per meter and day.
    key: [meter, read_on]
    partition: {column: read_month, from: read_on, by: month}
    columns:
      meter: {type: string, rules: {regex: "^M[0-9]{3}$"}}
      read_on: {type: date}
      kwh: {type: float64, rules: {ge: 0}}
      tariff: {type: "decimal(8,3)"}
      read_at: {type: "timestamp[ms, Europe/Berlin]"}
      note: {type: string, nullable: true}
"""
HEADER = "meter,read_on,kwh,tariff,read_at,note\n"


def good_rows(first: int, count: int, day: str = "2031-01-05") -> list[str]:
    return [
        f"M{i:03d},{day},{i * 1.5},{i}.125,{day}T08:00:00+01:00,ok"
        for i in range(first, first + count)
    ]


def drop(house, name: str, rows: list[str]) -> Path:
    path = house.landing / "readings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def install_meters(house) -> None:
    house.switch_demo(False)
    (house.project / "conf" / "datasets" / "meters.yml").write_text(METERS)


@pytest.fixture
def meters(lakehouse):
    install_meters(lakehouse)
    return lakehouse


def silver_meters(house) -> set[str]:
    return set(house.table("silver/readings")["meter"].to_list())


def quarantined(house) -> pl.DataFrame:
    return house.table("_quarantine/readings")


UNCONVERTIBLE = {  # row -> the column its reason names
    "M901,0000-01-01,1.0,1.000,2031-01-05T08:00:00Z,x": "read_on",
    "M902,2031-01-05,NaN,1.000,2031-01-05T08:00:00Z,x": "kwh",
    "M903,2031-01-05,inf,1.000,2031-01-05T08:00:00Z,x": "kwh",
    "M904,2031-01-05,1.0,123456.125,2031-01-05T08:00:00Z,x": "tariff",
    "M905,2031-01-05,1.0,1.000,0000-01-01T00:00:00Z,x": "read_at",
}


@pytest.mark.parametrize("on_invalid", ["quarantine", "warn"])
def test_values_that_break_conversion_are_quarantined_beside_the_good_rows(meters, on_invalid):
    meters.configure("silver", on_invalid=on_invalid)
    drop(meters, "2031-01-05.csv", good_rows(1, 20) + list(UNCONVERTIBLE))
    meters.run("bronze")
    meters.run("silver")
    assert silver_meters(meters) == {f"M{i:03d}" for i in range(1, 21)}
    rejects = quarantined(meters)
    assert sorted(rejects["rule"]) == ["unparseable_value"] * 5
    for row, column in UNCONVERTIBLE.items():
        meter = row.split(",")[0]
        reason = rejects.filter(pl.col("row").str.contains(meter))["reason"].item()
        assert reason.startswith(f"{column}="), reason
    silver = meters.table("silver/readings").sort("meter")
    assert silver["tariff"][0] == Decimal("1.125")
    assert str(silver.schema["read_at"]) == "Datetime(time_unit='us', time_zone='UTC')"
    assert silver["read_at"][0].hour == 7  # 08:00 in Berlin, winter


def test_a_drop_above_the_error_budget_is_held_whole_and_later_drops_flow(meters):
    drop(meters, "2031-02-01.csv", good_rows(1, 10, "2031-02-01"))
    overflowing = [r.replace(".125,", "999999.125,") for r in good_rows(101, 3, "2031-02-02")]
    drop(meters, "2031-02-02.csv", good_rows(110, 6, "2031-02-02") + overflowing)  # 3 of 9 bad
    meters.run("bronze")
    meters.run("silver")
    assert silver_meters(meters) == {f"M{i:03d}" for i in range(1, 11)}
    held = quarantined(meters)
    assert held.height == 9
    assert set(held["source_file"]) == {"readings/2031-02-02.csv"}
    assert sorted(held["rule"].value_counts().rows()) == [
        ("error_budget", 6),
        ("unparseable_value", 3),
    ]
    assert "3 of 9 rows invalid" in held.filter(pl.col("rule") == "error_budget")["reason"][0]

    drop(meters, "2031-02-03.csv", good_rows(201, 4, "2031-02-03"))  # a later good drop
    meters.run("bronze")
    meters.run("silver")
    assert {f"M{i:03d}" for i in range(201, 205)} <= silver_meters(meters)
    assert quarantined(meters).height == 9  # nothing judged twice

    meters.run("silver", inputs={"replay": True})  # the held drop accepted as it is
    assert {f"M{i:03d}" for i in range(110, 116)} <= silver_meters(meters)
    assert not {"M101", "M102", "M103"} & silver_meters(meters)


def test_with_warn_a_drop_above_the_budget_is_merged_with_a_warning(meters):
    meters.configure("silver", on_invalid="warn")
    overflowing = [r.replace(".125,", "999999.125,") for r in good_rows(101, 3)]
    drop(meters, "2031-01-05.csv", good_rows(110, 6) + overflowing)
    meters.run("bronze")
    meters.run("silver")
    assert silver_meters(meters) == {f"M{i:03d}" for i in range(110, 116)}
    assert sorted(quarantined(meters)["rule"]) == ["unparseable_value"] * 3


@pytest.mark.parametrize("first,then", [("version", "column"), ("column", "version")])
def test_switching_the_watermark_kind_goes_on_from_the_same_place(meters, first, then):
    marks = {
        "version": {"kind": "version"},
        "column": {"kind": "column", "column": "_ingested_at", "lookback_days": 0},
    }
    meters.configure("silver", watermark=marks[first])
    drop(meters, "a.csv", good_rows(1, 5) + ["M999,2031-01-05,-1,1.000,2031-01-05T08:00:00Z,"])
    meters.run("bronze")
    meters.run("silver")
    drop(meters, "b.csv", good_rows(6, 5))
    meters.run("bronze")
    meters.configure("silver", watermark=marks[then])
    meters.run("silver")
    assert silver_meters(meters) == {f"M{i:03d}" for i in range(1, 11)}
    assert quarantined(meters).height == 1  # the bad row of a.csv, quarantined once
    before = meters.table("silver/readings").sort("meter")
    meters.run("silver")  # nothing new (a column watermark re-reads its newest value)
    assert meters.table("silver/readings").sort("meter").equals(before)
    assert quarantined(meters).height == 1


def test_a_file_still_being_written_waits_for_the_next_run(meters):
    meters.configure("bronze", settle_seconds=1.5)
    drop(meters, "complete.csv", good_rows(1, 3))
    growing = drop(meters, "growing.csv", good_rows(10, 1))
    done = threading.Event()

    def write_slowly():
        with growing.open("a") as out:
            for row in good_rows(11, 8):
                time.sleep(0.4)
                out.write(row + "\n")
                out.flush()
        done.set()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        meters.run("bronze")
    finally:
        writer.join()
    bronze = meters.table("bronze/readings")
    assert set(bronze["_source_file"]) == {"readings/complete.csv"}
    assert done.is_set()
    time.sleep(1.6)
    meters.run("bronze")
    bronze = meters.table("bronze/readings")
    assert bronze.filter(pl.col("_source_file") == "readings/growing.csv").height == 9


def test_a_file_dated_in_the_future_waits_the_settle_time_not_its_skew(meters, capfd):
    """An upstream clock a day ahead: the file is watched for settle_seconds, then taken."""
    meters.configure("bronze", settle_seconds=1.5)
    ahead = drop(meters, "ahead.csv", good_rows(1, 3))
    tomorrow = time.time() + 86_400
    os.utime(ahead, (tomorrow, tomorrow))
    started = time.monotonic()
    meters.run("bronze")
    assert time.monotonic() - started < 30
    assert meters.table("bronze/readings").height == 3
    assert "ahead.csv is dated 86,4" in capfd.readouterr().err


def test_quarantined_rows_are_the_same_from_two_project_folders(tmp_path, tpch_cache):
    found = []
    for host in ("host-a", "elsewhere/host-b"):
        with sandbox(tmp_path / host, tpch_cache) as house:
            install_meters(house)
            drop(house, "2031-03-01.csv", good_rows(1, 8) + list(UNCONVERTIBLE)[:2])
            house.run("bronze")
            house.run("silver")
            rows = quarantined(house).select("source_file", "row", "rule", "row_key")
            found.append(rows.sort("row_key"))
            assert set(house.table("bronze/readings")["_source_file"]) == {
                "readings/2031-03-01.csv"
            }
    assert found[0].height == 2
    assert found[0].equals(found[1])


def _text(*rows: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return (header + "".join(row + "\n" for row in rows)).replace("\n", newline).encode()


GOOD = good_rows(701, 2)  # the good rows of a case that must land
CORPUS = {  # case -> (file name, bytes, where its rows go: "silver" or the bad-file error)
    "bom": ("bom.csv", "\ufeff".encode() + _text(*GOOD), "silver"),
    "crlf": ("crlf.csv", _text(*GOOD, newline="\r\n"), "silver"),
    "quoted newline": (
        "quoted.csv",
        _text(GOOD[0], GOOD[1].replace(",ok", ',"two\nlines"')),
        "silver",
    ),
    "reordered columns": (
        "reordered.csv",
        _text(
            *[",".join(reversed(row.split(","))) for row in GOOD],
            header=",".join(reversed(HEADER.strip().split(","))) + "\n",
        ),
        "silver",
    ),
    "extra column": (
        "extra.csv",
        _text(*[row + ",spare" for row in GOOD], header=HEADER.strip() + ",spare\n"),
        "silver",
    ),
    "odd name": ("réading 2031 #1 (copy).csv", _text(*GOOD), "silver"),
    "header only": ("header_only.csv", _text(), "nothing"),
    "zero bytes": ("zero.csv", b"", "empty_file"),
    "utf-16": ("utf16.csv", _text(*GOOD).decode().encode("utf-16"), "not_utf8"),
    "renamed column": (
        "renamed.csv",
        _text(*GOOD, header=HEADER.replace("kwh", "kWh")),
        "missing_columns",
    ),
    "mislabelled gzip": ("plain.csv.gz", _text(*GOOD), "corrupt_gzip"),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_a_corpus_of_odd_files_each_lands_or_is_recorded_and_good_files_flow(meters, case):
    name, data, outcome = CORPUS[case]
    drop(meters, "good.csv", good_rows(1, 3))
    (meters.landing / "readings" / name).write_bytes(data)
    meters.run("bronze")
    meters.run("silver")
    landed = silver_meters(meters)
    assert {"M001", "M002", "M003"} <= landed
    bad = (
        meters.table("_quarantine/_files")
        if (meters.lake / "_quarantine" / "_files").exists()
        else None
    )
    if outcome == "silver":
        assert {"M701", "M702"} <= landed
        assert bad is None
        sources = set(meters.table("bronze/readings")["_source_file"])
        assert f"readings/{name}" in sources
    elif outcome == "nothing":
        assert landed == {"M001", "M002", "M003"} and bad is None
    else:
        assert not {"M701", "M702"} & landed
        assert bad.select("file", "error").rows() == [(f"readings/{name}", outcome)]
        assert (meters.landing / "readings" / name).read_bytes() == data  # left in place
    if case == "quoted newline":
        notes = meters.table("silver/readings").filter(pl.col("meter") == "M702")["note"]
        assert notes.to_list() == ["two\nlines"]
    meters.run("bronze")  # a rerun takes nothing again
    assert silver_meters(meters) == landed


def test_directories_named_like_files_symlink_loops_and_duplicates(meters):
    folder = meters.landing / "readings"
    drop(meters, "good.csv", good_rows(1, 3) + good_rows(2, 1))  # M002 twice
    (folder / "nested.csv").mkdir()
    (folder / "nested.csv" / "inner.csv").write_text(_text(*GOOD).decode())
    (folder / "loop.csv").symlink_to(folder / "loop.csv")
    meters.run("bronze")
    meters.run("silver")
    assert silver_meters(meters) == {"M001", "M002", "M003"}
    rules = quarantined(meters).select("rule", "source_file").rows()
    assert rules == [("duplicate", "readings/good.csv")]


COUNTERS = """\
description: Door counters (a test dataset; integers of several widths).
sources:
  counts: {format: csv}
entities:
  counts:
    grain: One count per door and hour.
    key: [door, hour]
    columns:
      door: {type: int16}
      hour: {type: int8, rules: {ge: 0, le: 23}}
      visitors: {type: int64}
      sensors: {type: int32}
"""


def test_an_integer_beyond_its_type_is_one_quarantined_row(lakehouse):
    lakehouse.switch_demo(False)
    (lakehouse.project / "conf" / "datasets" / "counters.yml").write_text(COUNTERS)
    too_big = {  # row -> the column its reason names
        "40000,1,5,1": "door",  # int16 ends at 32767
        "2,1,99999999999999999999,1": "visitors",  # past int64
        "3,1,5,3000000000": "sensors",  # int32 ends at 2147483647
        "4,300,5,1": "hour",  # int8 ends at 127
    }
    good = [f"{door},{hour},{door * hour},2" for door in range(10, 15) for hour in range(24)]
    path = lakehouse.landing / "counts" / "day1.csv"
    path.parent.mkdir(parents=True)
    path.write_text("door,hour,visitors,sensors\n" + "\n".join(good + list(too_big)) + "\n")
    lakehouse.run("bronze")
    lakehouse.run("silver")
    silver = lakehouse.table("silver/counts")
    assert silver.height == len(good)
    assert silver.schema["door"] == pl.Int16 and silver.schema["sensors"] == pl.Int32
    rejects = lakehouse.table("_quarantine/counts")
    assert sorted(rejects["rule"]) == ["unparseable_value"] * len(too_big)
    for row, column in too_big.items():
        reason = rejects.filter(pl.col("row").str.contains(f'"{row.split(",")[0]}"'))
        assert reason["reason"].item().startswith(f"{column}="), reason["reason"].item()
