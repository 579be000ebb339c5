"""Silver conforming on tiny literal frames: each rule, its reason, and deduplication."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from truth import ENTITIES

from lakehouse.declare import contracts
from lakehouse.layers.silver import batch, conform, dedup

ORDERS = ENTITIES["orders"]
GOOD = {
    "o_orderkey": "1",
    "o_custkey": "7",
    "o_orderstatus": "O",
    "o_totalprice": "100.25",
    "o_orderdate": "1995-03-01",
    "o_orderpriority": "1-URGENT",
    "o_clerk": "Clerk#1",
    "o_shippriority": "0",
    "o_comment": "fine",
}


def _raw(*changes: dict) -> pl.DataFrame:
    rows = [{**GOOD, **change} for change in changes]
    return pl.DataFrame(rows, schema={c: pl.String for c in GOOD}).with_columns(
        _commit_version=pl.Series(range(len(rows)), dtype=pl.Int64),
        _source_file=pl.lit("orders_1995-03-01.csv"),
    )


@pytest.mark.parametrize(
    ("change", "rule", "reason"),
    [
        ({"o_orderkey": None}, "null_key", "o_orderkey is empty"),
        ({"o_comment": None}, "missing_value", "o_comment is empty"),
        (
            {"o_orderdate": "1995-02-30"},
            "unparseable_value",
            "o_orderdate='1995-02-30' is not a valid Date",
        ),
        ({"o_totalprice": "12,5"}, "unparseable_value", "o_totalprice='12,5'"),
    ],
)
def test_each_rule_rejects_with_a_readable_reason(change, rule, reason):
    rows = conform.with_reasons(conform.conformed(_raw({}, change), ORDERS), ORDERS)
    assert rows["_rule"].to_list() == [None, rule]
    assert rows["_reason"][0] == ""  # a valid row breaks nothing
    assert reason in rows["_reason"][1]
    assert '"o_orderkey"' in rows.select(conform.raw_text(rows)).item(1, 0)  # kept for quarantine


@pytest.mark.parametrize(
    ("change", "rule", "reason"),
    [
        (
            {"o_totalprice": "-1.00"},
            "out_of_range",
            "o_totalprice=-1.00 fails greater_than_or_equal_to(0)",
        ),
        (
            {"o_orderdate": "2031-01-01"},
            "out_of_range",
            "o_orderdate=2031-01-01 fails less_than_or_equal_to(1998-12-31)",
        ),
        ({"o_orderstatus": "X"}, "not_allowed", "o_orderstatus=X fails isin(['O', 'F', 'P'])"),
    ],
)
def test_the_contract_rejects_with_a_readable_reason(change, rule, reason):
    valid, rejected = batch.validated(_raw({}, change), ORDERS, parent_keys=None)
    assert valid["o_orderkey"].to_list() == [1] and rejected["_rule"].to_list() == [rule]
    assert reason in rejected["_reason"][0]
    assert '"o_totalprice"' in rejected["_raw"][0]  # the row as it arrived, for quarantine


def test_a_batch_of_the_wrong_type_breaks_the_contract_as_a_whole():
    frame = conform.without_raw(conform.conformed(_raw({}), ORDERS)).drop("_rule")
    with pytest.raises(
        contracts.ContractError, match="silver/orders breaks its contract as a whole: o_custkey"
    ):
        contracts.failures(
            frame.with_columns(pl.col("o_custkey").cast(pl.String)).select(list(ORDERS.columns)),
            contracts.table_schema(ORDERS),
            "silver/orders",
        )


def test_valid_rows_are_typed():
    rows = conform.conformed(_raw({}), ORDERS)
    assert rows["o_orderdate"].to_list() == [date(1995, 3, 1)]
    assert rows.schema["o_totalprice"] == pl.Decimal(15, 2)
    assert str(rows["o_totalprice"][0]) == "100.25"


def test_the_latest_arrival_wins_and_a_copy_in_the_same_drop_is_a_duplicate():
    raw = _raw({"o_comment": "first"}, {"o_comment": "second"}, {"o_orderkey": "2"})
    rows = conform.conformed(raw.with_columns(_commit_version=pl.lit(7, pl.Int64)), ORDERS)
    kept, duplicates = dedup.deduplicated(rows, ORDERS)  # one file, one bronze commit
    assert sorted(kept["o_comment"].to_list()) == ["fine", "second"]
    assert duplicates["o_comment"].to_list() == ["first"]
    assert duplicates["_rule"].to_list() == ["duplicate"]


def test_a_copy_from_an_earlier_drop_is_an_earlier_version_not_a_duplicate():
    raw = _raw({"o_comment": "first"}, {"o_comment": "second"}, {"o_comment": "third"})
    raw = raw.with_columns(_commit_version=pl.Series([1, 1, 2], dtype=pl.Int64))
    kept, duplicates = dedup.deduplicated(conform.conformed(raw, ORDERS), ORDERS)
    assert kept["o_comment"].to_list() == ["third"]  # the later drop's, as a merge would
    assert duplicates["o_comment"].to_list() == ["first"]  # only the copy its own drop repeats


def test_line_items_without_an_order_are_orphans():
    entity = ENTITIES["lineitem"]
    raw = pl.DataFrame(
        {
            c: ["1" if c != "l_shipdate" and "date" not in c else "1995-03-05"] * 2
            for c in entity.columns
        }
    ).with_columns(
        l_orderkey=pl.Series(["1", "2"]),
        l_returnflag=pl.lit("N"),
        l_linestatus=pl.lit("O"),
        l_discount=pl.lit("0.05"),
        l_tax=pl.lit("0.02"),
        _commit_version=pl.lit(1),
    )
    valid, rejected = batch.validated(raw, entity, parent_keys=pl.Series([1], dtype=pl.Int64))
    assert valid["l_orderkey"].to_list() == [1]
    assert valid["ship_month"].to_list() == [date(1995, 3, 1)]
    assert rejected["_rule"].to_list() == ["orphan"]


def test_a_missing_column_names_the_table_and_the_column():
    with pytest.raises(
        ValueError, match=r"bronze/orders lacks column\(s\) o_comment that silver/orders declares"
    ):
        batch.validated(_raw({}).drop("o_comment"), ORDERS, parent_keys=None)


def test_orders_without_a_customer_are_orphans():
    valid, rejected = batch.validated(
        _raw({}, {"o_orderkey": "2", "o_custkey": "8"}), ORDERS, parent_keys=pl.Series([7])
    )
    assert valid["o_orderkey"].to_list() == [1]
    assert rejected["_rule"].to_list() == ["orphan"]
    assert rejected["_reason"][0] == "o_custkey=8 has no row in silver/customer"
