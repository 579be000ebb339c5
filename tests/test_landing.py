"""The demo upstream: defects are extra rows or files, never edits of the original rows."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from demo import landing
from demo.tpch import read_generated

DAY = date(1992, 1, 2)


@pytest.fixture(scope="module")
def day_rows(tpch_cache):
    from demo import tpch

    generated = tpch.generate(0.01, str(tpch_cache))
    orders = read_generated(generated, "orders").filter(pl.col("o_orderdate") == DAY)
    lines = read_generated(generated, "lineitem").join(
        orders.select("o_orderkey"), left_on="l_orderkey", right_on="o_orderkey"
    )
    return orders, lines


def _drop(day_rows, rate):
    orders, lines = day_rows
    return landing.day_drop(
        DAY, orders, lines, lines.clear(), seed=7, rate=rate, with_channel=False
    )


def test_without_defects_the_drop_is_the_original_rows(day_rows):
    orders, lines = day_rows
    drop = _drop(day_rows, rate=0.0)
    assert drop.orders.equals(landing.as_text(orders))
    assert drop.lineitem.equals(landing.as_text(lines))
    assert drop.lineitem_resend is None and drop.defects == {} and drop.held_back == []


def test_defects_only_add_rows(day_rows):
    orders, lines = day_rows
    drop = _drop(day_rows, rate=0.3)
    held = pl.DataFrame(drop.held_back).select(
        pl.col("l_orderkey"), pl.col("l_linenumber").cast(pl.Int32)
    )
    on_time = landing.as_text(lines.join(held, on=["l_orderkey", "l_linenumber"], how="anti"))
    # every original row is there, unchanged
    assert on_time.join(drop.lineitem, on=on_time.columns, how="anti").is_empty()
    assert landing.as_text(orders).join(drop.orders, on=list(orders.columns), how="anti").is_empty()
    added = drop.lineitem.height - on_time.height
    counts = drop.defects["lineitem"]
    assert added == sum(v for k, v in counts.items() if k not in ("late", "late_arrived"))
    assert counts["late"] == held.height > 0
    negative = drop.lineitem.filter(pl.col("l_quantity").str.starts_with("-"))
    assert negative.height == counts["negative_quantity"] > 0


def test_the_same_seed_gives_the_same_drop(day_rows):
    first, second = _drop(day_rows, 0.2), _drop(day_rows, 0.2)
    assert first.lineitem.equals(second.lineitem) and first.defects == second.defects
    shuffled = (day_rows[0], day_rows[1].sample(fraction=1.0, shuffle=True, seed=1))
    assert _drop(shuffled, 0.2).held_back == first.held_back


def test_truncated_resend_cuts_a_row_before_its_last_field():
    csv = "a,b,c,d,e,f,g\n" + "".join(f"{i},2,3,4,5,6,seven\n" for i in range(10))
    cut = landing.truncated_resend(csv, seed=1, day=DAY)
    lines = cut.splitlines()
    assert csv.startswith(cut)
    assert all(line.count(",") == 6 for line in lines[:-1])
    assert lines[-1].count(",") < 6
