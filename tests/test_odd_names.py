"""Names that need quoting load, update and merge like any other; names Delta cannot hold
are refused in a declaration (one line) and mapped by a documented rule in landing files.

The dataset: meter readings keyed on a reserved word (``order``) and a name with a double
quote (``meter"id"``), a column with a dash, a date column named ``from`` partitioning by
month into ``group``, and a CSV header with a space (``read at``, arriving as ``read_at``).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.declare import catalog
from lakehouse.declare.declaration import DeclarationError

METERS = """
description: Meter readings whose names need quoting in SQL.
sources:
  readings: {format: csv}
entities:
  readings:
    grain: One row per (order, meter"id").
    key: [order, 'meter"id"']
    partition: {column: group, from: from, by: month}
    columns:
      order: {type: string}
      'meter"id"': {type: int64}
      from: {type: date}
      read_at: {type: "timestamp[us, UTC]"}
      value-kWh: {type: "decimal(12,3)", rules: {ge: 0}}
marts:
  monthly_use:
    sql: marts/monthly_use.sql
    grain: One row per (group, meter"id").
    key: [group, 'meter"id"']
    partition: group
    columns:
      group: {type: date}
      'meter"id"': {type: int64}
      readings: {type: int64}
      total: {type: "decimal(38,3)"}
"""
MART = (
    'SELECT "group", "meter""id""", count(*) AS readings, sum("value-kWh") AS total '
    'FROM readings GROUP BY "group", "meter""id"""'
)
HEADER = ["order", 'meter"id"', "from", "read at", "value-kWh"]


@pytest.fixture
def meters(lakehouse):
    lakehouse.switch_demo(False)
    (lakehouse.project / "conf" / "datasets" / "meters.yml").write_text(METERS)
    (lakehouse.project / "marts").mkdir(exist_ok=True)
    (lakehouse.project / "marts" / "monthly_use.sql").write_text(MART)
    return lakehouse


def _land(house, name: str, rows: list[tuple], header: list[str] = HEADER) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes the header's "id" as CSV does
    writer.writerows([header, *rows])
    path = house.landing / "readings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.getvalue())


def _reading(order: str, meter: int, day: str, value: str) -> tuple:
    return (order, meter, day, f"{day}T06:00:00Z", value)


def _expected(rows: list[tuple]) -> pl.DataFrame:
    latest = {(r[0], r[1]): r for r in rows}
    frame = pl.DataFrame(
        [(o, m, date.fromisoformat(d), v) for o, m, d, _, v in latest.values()],
        schema={"order": pl.String, 'meter"id"': pl.Int64, "from": pl.Date, "value": pl.String},
        orient="row",
    )
    return frame.with_columns(pl.col("value").cast(pl.Decimal(12, 3)).alias("value-kWh")).drop(
        "value"
    )


def _silver(house) -> pl.DataFrame:
    columns = ["order", 'meter"id"', "from", "value-kWh"]
    return house.table("silver/readings").select(columns).sort(columns[:2])


def test_names_that_need_quoting_load_update_and_merge_like_any_other(meters):
    first = [_reading(f"o-{i}", i % 3, f"2024-0{1 + i % 2}-1{i % 9}", f"{i}.5") for i in range(12)]
    _land(meters, "readings_1.csv", first)
    for layer in ("bronze", "silver", "gold"):
        meters.run(layer)
    bronze = meters.table("bronze/readings")
    assert {'meter"id"', "read_at", "value-kWh", "from"} <= set(bronze.columns)

    updated = [_reading("o-1", 1, "2024-02-11", "99.000"), _reading("o-2", 2, "2024-01-12", "7")]
    fresh = [_reading("o-new", 5, "2024-03-01", "1.25")]
    _land(meters, "readings_2.csv", updated + fresh)  # known keys MERGE, new ones append
    for layer in ("bronze", "silver", "gold"):
        meters.run(layer)

    expected = _expected(first + updated + fresh).sort("order", 'meter"id"')
    assert_frame_equal(_silver(meters), expected)
    assert meters.table("silver/readings")["group"].min() == date(2024, 1, 1)

    mart = meters.table("gold/monthly_use").sort("group", 'meter"id"')
    wanted = (
        expected.with_columns(pl.col("from").dt.truncate("1mo").alias("group"))
        .group_by("group", 'meter"id"')
        .agg(readings=pl.len().cast(pl.Int64), total=pl.col("value-kWh").sum())
        .sort("group", 'meter"id"')
    )
    assert_frame_equal(mart.select(wanted.columns), wanted, check_dtypes=False)
    meters.run("gold", inputs={"audit": True})  # raises on drift: incremental == rebuild
    meters.run("silver", inputs={"full_refresh": True})
    assert_frame_equal(_silver(meters), expected)


def test_a_declared_name_delta_cannot_hold_is_one_line_naming_the_declaration(tmp_path):
    spec = METERS.replace("value-kWh", "value kWh")
    path = tmp_path / "meters.yml"
    path.write_text(spec)
    with pytest.raises(DeclarationError) as refused:
        catalog.load_dataset(path)
    message = str(refused.value)
    assert message.startswith(f"{path} entities.readings.columns: 'value kWh' holds ' '")
    assert "name it 'value_kWh'" in message and "\n" not in message
    path.write_text(METERS.replace("  readings:\n    grain", "  read-ings:\n    grain"))
    with pytest.raises(DeclarationError, match=r"entities.read-ings: 'read-ings' is not a table"):
        catalog.load_dataset(path)


def test_landing_headers_are_read_as_csv_and_clashing_names_make_a_bad_file(meters):
    odd = ['x"; DROP TABLE y; --', *HEADER]
    _land(meters, "readings_1.csv", [("1", *_reading("o-1", 1, "2024-01-02", "1"))], odd)
    clash = [*HEADER, "read_at"]  # 'read at' and 'read_at' would both be read_at
    _land(meters, "readings_2.csv", [(*_reading("o-2", 2, "2024-01-03", "2"), "x")], clash)
    meters.run("bronze")
    bronze = meters.table("bronze/readings")
    assert 'x"__DROP_TABLE_y__--' in bronze.columns  # unescaped as CSV, then made portable
    assert bronze["order"].to_list() == ["o-1"]
    found = json.dumps(meters.table("_quarantine/_files").to_dicts(), default=str)
    assert "readings_2.csv" in found and "bad_column_names" in found
    assert (meters.landing / "readings" / "readings_2.csv").exists()  # left in place
