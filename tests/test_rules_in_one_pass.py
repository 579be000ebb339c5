"""The declared rules checked in one pass (``contracts.keeps_the_rules``) agree with pandera.

Silver checks a batch's rows with one Polars expression and validates with pandera (which
names each failure) only when that finds a row breaking a rule. Random batches of sensor
readings, a declaration of another shape than TPC-H with every kind of rule (bounds of
each kind, a range, allowed values, a pattern, lengths with either bound, the entity's date
span on a date and a zoned timestamp, floats that may be NaN, nullable and required
columns): the pass says "all kept" exactly when pandera finds no failing row.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest
import yaml

from lakehouse.declare import catalog, contracts

READINGS = {
    "sources": {"readings": {"format": "csv"}},
    "entities": {
        "readings": {
            "key": "reading_id",
            "dates": {"from": "2030-01-01", "to": "2030-12-31"},
            "columns": {
                "reading_id": {"type": "int64", "rules": {"ge": 1}},
                "site": {"type": "string", "nullable": True, "rules": {"isin": ["N", "S"]}},
                "code": {
                    "type": "string",
                    "rules": {"regex": "[A-Z]{2}-[0-9]+", "str_length": {"min": 4, "max": 6}},
                },
                "label": {"type": "string", "nullable": True, "rules": {"str_length": {"max": 3}}},
                "note": {"type": "string", "nullable": True, "rules": {"str_length": {"min": 2}}},
                "level": {"type": "float64", "rules": {"between": [0, 100]}},
                "ratio": {"type": "float32", "nullable": True, "rules": {"gt": 0, "lt": 1}},
                "weight": {"type": "float64"},
                "amount": {"type": "decimal(10,2)", "rules": {"le": 500}},
                "taken": {"type": "date"},
                "seen": {"type": "timestamptz"},
                "ok": {"type": "bool"},
            },
        }
    },
}


@pytest.fixture(scope="module")
def readings(tmp_path_factory):
    path = tmp_path_factory.mktemp("declared") / "readings.yml"
    path.write_text(yaml.safe_dump(READINGS))
    return catalog.load_dataset(path).entities["readings"]


def _choices(column: str) -> list:
    """A column's test values: the first half keep every rule, the rest are at or past a
    bound, empty or NaN (some of which still keep them: a null where it may be)."""
    return {
        "reading_id": [1, 2, 90, 0, -3, None],
        "site": ["N", "S", "N", "E", None],
        "code": ["AB-1", "XY-123", "AB-12", "ab-1", "xAB-1", "AB-1234", "A-1", "AB-", None],
        "label": ["a", "abc", "abcd", "", None],
        "note": ["ok", "fine", "x", "", None],
        "level": [0.0, 50.5, 100.0, 100.01, -0.5, float("nan"), None],
        "ratio": [0.5, 0.999, None, 0.0, 1.0, float("nan")],
        "weight": [1.5, -2.0, float("nan"), None],
        "amount": [Decimal("1.50"), Decimal("500.00"), Decimal("500.01"), None],
        "taken": [date(2030, 1, 1), date(2030, 12, 31), date(2031, 1, 1), date(2029, 12, 31)],
        "seen": [
            datetime(2030, 6, 1, tzinfo=UTC),
            datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2031, 1, 1, tzinfo=UTC),
            datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC),
        ],
        "ok": [True, False, None],
    }[column]


def _batch(entity, rng: random.Random) -> pl.DataFrame:
    """Rows of good values, and in most batches one cell set to any of its column's values:
    the batch then keeps the rules or not by that one value."""

    def good(column: str):
        choices = _choices(column)
        return rng.choice(choices[: max(1, len(choices) // 2)])

    rows = [{c: good(c) for c in entity.columns} for _ in range(rng.randint(1, 20))]
    if rng.random() < 0.75:
        column = rng.choice(list(entity.columns))
        rng.choice(rows)[column] = rng.choice(_choices(column))
    return pl.DataFrame(rows, schema=dict(entity.columns))


@pytest.mark.parametrize("seed", range(4))
def test_one_pass_says_all_kept_exactly_when_pandera_finds_no_failure(readings, seed):
    rng = random.Random(seed)
    kept_batches = broken_batches = 0
    for _ in range(40):
        frame = _batch(readings, rng)
        found = contracts.failures(frame, contracts.row_schema(readings), "silver/readings")
        kept = contracts.keeps_the_rules(frame, readings)
        assert kept == found.is_empty(), frame
        rows = contracts.row_failures(frame, readings, "silver/readings")  # pandera or not
        assert rows["__row"].to_list() == found["__row"].to_list()
        kept_batches, broken_batches = kept_batches + kept, broken_batches + (not kept)
    assert kept_batches and broken_batches  # both sides tried


def test_each_value_alone_is_judged_as_pandera_judges_it(readings):
    """Every test value of every column, alone among good rows: the value decides."""
    rng = random.Random(7)
    for column in readings.columns:
        for value in _choices(column):
            frame = (
                _batch(readings, rng)
                .head(1)
                .with_columns(pl.Series(column, [value], readings.columns[column]))
            )
            found = contracts.failures(frame, contracts.row_schema(readings), "silver/readings")
            assert contracts.keeps_the_rules(frame, readings) == found.is_empty(), (column, value)


def test_a_column_of_another_type_is_left_to_pandera_to_name(readings):
    frame = _batch(readings, random.Random(1)).with_columns(pl.col("level").cast(pl.String))
    assert not contracts.keeps_the_rules(frame, readings)
    with pytest.raises(contracts.ContractError, match="level"):
        contracts.row_failures(frame, readings, "silver/readings")
