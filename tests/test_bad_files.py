"""Bad landing files: each recorded with its error, left in place, the good files loaded."""

from __future__ import annotations

import gzip
import io

import polars as pl
import pytest
from deltalake import DeltaTable

HEADER = (
    "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,"
    "o_orderpriority,o_clerk,o_shippriority,o_comment\n"
)
ROW = "900000001,1,O,100.00,1992-01-03,1-URGENT,Clerk#000000001,0,fine\n"


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


BAD_FILES = {  # name under landing_root -> (bytes, the error recorded)
    "orders/orders_zero.csv": (b"", "empty_file"),
    "orders/orders_semicolons.csv": ((HEADER + ROW).replace(",", ";").encode(), "missing_columns"),
    "orders/orders_latin1.csv": (
        (HEADER + ROW.replace("fine", "café")).encode("latin-1"),
        "not_utf8",
    ),
    "orders/orders_broken.csv.gz": (gzip.compress((HEADER + ROW).encode())[:-12], "corrupt_gzip"),
    "orders/orders_no_comment.csv": (
        (HEADER + ROW).replace(",o_comment", "").replace(",fine", "").encode(),
        "missing_columns",
    ),
    "orders/orders_broken.jsonl": (b'{"o_orderkey": "1"}\n{"o_orderkey": \n', "broken_json_line"),
    "customer/customer_retyped.parquet": (
        _parquet(
            pl.DataFrame(
                {
                    "c_custkey": ["x"],
                    "c_name": ["n"],
                    "c_address": ["a"],
                    "c_nationkey": [1],
                    "c_phone": ["p"],
                    "c_acctbal": ["12.5"],
                    "c_mktsegment": ["s"],
                    "c_comment": ["c"],
                }
            )
        ),
        "changed_type",
    ),
    "customer/customer_garbage.parquet": (b"PAR1 this is not parquet", "unreadable_parquet"),
}


@pytest.fixture
def landed(lakehouse):
    lakehouse.configure(
        "bronze",
        sources={
            "orders": {"format": "csv"},
            "customer": {"format": "parquet"},
            "lineitem": {"format": "csv"},
        },
    )
    lakehouse.run("landing")
    lakehouse.run("bronze")  # the good files of the first days
    return lakehouse


def _drop_bad_files(lakehouse):
    for name, (data, _) in BAD_FILES.items():
        (lakehouse.landing / name).write_bytes(data)
    jsonl = lakehouse.landing / "orders" / "orders_broken.jsonl"
    jsonl.rename(jsonl.with_suffix(".csv.jsonl"))  # orders is a csv source: not even listed
    (lakehouse.landing / "orders" / "orders_late.csv").write_text(HEADER + ROW)  # a good one


def test_bad_files_are_recorded_left_in_place_and_the_rest_loads(landed):
    before = landed.table("bronze/orders").height
    _drop_bad_files(landed)
    landed.run("bronze")
    recorded = landed.table("_quarantine/_files")
    expected = {
        name.split("/")[1]: error for name, (_, error) in BAD_FILES.items() if "jsonl" not in name
    }
    got = {row["file"].rsplit("/", 1)[1]: row["error"] for row in recorded.iter_rows(named=True)}
    assert got == expected
    assert all(message for message in recorded["message"])
    assert (
        "wrong delimiter?"
        in recorded.filter(pl.col("error") == "missing_columns")["message"].str.join(" ")[0]
    )
    assert (
        "c_custkey was int64, this file has string"
        in recorded.filter(pl.col("error") == "changed_type")["message"][0]
    )
    for name in BAD_FILES:  # left in place
        assert (landed.landing / name).exists() or name.endswith(".jsonl")
    assert landed.table("bronze/orders").height == before + 1  # the good late file loaded

    landed.run("bronze")  # unchanged bad files are neither re-read nor recorded twice
    assert landed.table("_quarantine/_files").height == recorded.height

    (landed.landing / "orders/orders_semicolons.csv").write_text(
        HEADER + ROW.replace("900000001", "900000002")
    )
    landed.run("bronze")  # fixed upstream: ingested
    assert landed.table("bronze/orders").height == before + 2


def test_with_on_bad_file_fail_nothing_is_committed(landed):
    landed.configure("bronze", on_bad_file="fail")
    _drop_bad_files(landed)
    versions = {
        t: DeltaTable(str(landed.lake / t)).version() for t in ("bronze/orders", "bronze/customer")
    }
    with pytest.raises(
        RuntimeError, match=r"7 unreadable landing file\(s\), nothing committed"
    ) as failure:
        landed.run("bronze")
    assert "orders_latin1.csv: not_utf8: byte" in str(failure.value)
    assert {t: DeltaTable(str(landed.lake / t)).version() for t in versions} == versions
    assert not (landed.lake / "_quarantine" / "_files").exists()
    staged = list((landed.lake / "bronze" / "orders").glob("part-*.parquet"))
    assert len(staged) == len(
        DeltaTable(str(landed.lake / "bronze/orders")).file_uris()
    )  # no leftovers


def test_json_lines_sources_load_and_a_broken_line_is_named(lakehouse):
    lakehouse.configure("bronze", sources={"events": {"format": "jsonl"}})
    events = lakehouse.landing / "events"
    events.mkdir(parents=True)
    (events / "events_1.jsonl").write_text('{"id": 1, "kind": "a"}\n{"id": 2, "kind": "b"}\n')
    (events / "events_2.jsonl.gz").write_bytes(gzip.compress(b'{"id": 3, "kind": "c"}\n'))
    (events / "events_3.jsonl").write_text('{"id": 4}\n{"id": \n')
    lakehouse.run("bronze")
    assert sorted(lakehouse.table("bronze/events")["id"].to_list()) == ["1", "2", "3"]
    recorded = lakehouse.table("_quarantine/_files")
    assert recorded["message"].to_list() == ["line 2: Expecting value"]


def test_the_quarantine_report_counts_rows_and_files_by_rule(landed):
    _drop_bad_files(landed)
    landed.run("bronze")
    landed.run("silver")
    counts = landed.run("quarantine", final_vars=["quarantine_counts", "quarantine_report"])
    report = counts["quarantine_counts"]
    lines = landed.table("_quarantine/lineitem")["rule"].value_counts()
    for rule, rows in lines.iter_rows():
        assert (
            report.filter((pl.col("table") == "silver/lineitem") & (pl.col("rule") == rule))[
                "rows"
            ].item()
            == rows
        )
    files = report.filter(pl.col("table") == "landing files")
    assert files["rows"].sum() == 7 and "not_utf8" in files["rule"].to_list()
    assert "Quarantined in the last 7 days" in counts["quarantine_report"]
