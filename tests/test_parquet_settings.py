"""The Parquet files the engine writes: a dictionary only for the columns whose values
repeat (``delta.parquet_settings``), snappy everywhere; the rows read back unchanged.

A shape of its own: parcel scans (a unique parcel id, a depot of six, a weight, a list of
tags), and the vendor price list of ``test_snapshots`` taken through silver."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from test_snapshots import declare, land, price_list
from test_snapshots import prices as house  # noqa: F401  (a fixture)

from lakehouse.core import delta


def _encodings(table_dir) -> dict[str, set[str]]:
    """Column -> the encodings and compression of its chunks, over a table's data files."""
    found: dict[str, set[str]] = {}
    for path in table_dir.rglob("*.parquet"):
        if "_delta_log" in path.parts:
            continue
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            for i in range(meta.num_columns):
                chunk = meta.row_group(group).column(i)
                found.setdefault(chunk.path_in_schema.split(".")[0], set()).update(
                    {*chunk.encodings, chunk.compression}
                )
    return found


def _dictionary(encodings: set[str]) -> bool:
    return bool({"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & encodings)


def test_only_repeating_columns_get_a_dictionary_and_rows_read_back_the_same(tmp_path):
    rng = random.Random(11)
    count = 20_000
    scans = pa.table(
        {
            "parcel_id": pa.array([f"P{n:08d}" for n in rng.sample(range(10**8), count)]),
            "depot": pa.array([rng.choice("ABCDEF") + "-hub" for _ in range(count)]),
            "grams": pa.array([rng.randint(1, 30_000) for _ in range(count)], pa.int32()),
            "tags": pa.array([["fragile"] if n % 7 == 0 else [] for n in range(count)]),
        }
    )
    settings = delta.parquet_settings(scans)
    write_deltalake(str(tmp_path / "scans"), scans, writer_properties=settings)
    found = _encodings(tmp_path / "scans")
    assert _dictionary(found["depot"])  # six values
    assert not _dictionary(found["parcel_id"]) and not _dictionary(found["grams"])
    assert all("SNAPPY" in encodings for encodings in found.values())
    back = DeltaTable(str(tmp_path / "scans")).to_pyarrow_table()
    assert back.sort_by("parcel_id") == scans.sort_by("parcel_id")
    none = scans.slice(0, 0)  # an empty write too
    write_deltalake(str(tmp_path / "none"), none, writer_properties=delta.parquet_settings(none))
    assert DeltaTable(str(tmp_path / "none")).to_pyarrow_table().num_rows == 0


def test_silver_writes_a_dictionary_for_repeating_columns_and_none_for_keys(house):  # noqa: F811
    declare(house, "keep")
    listed = price_list(2_000)  # seven vendors, 2,000 skus, prices of 49,900 cents, 90 dates
    land(house, "2031-05-01", listed)
    house.run("bronze")
    house.run("silver")
    found = _encodings(house.lake / "silver" / "prices")
    assert _dictionary(found["vendor"]) and _dictionary(found["listed_on"])
    assert not _dictionary(found["sku"]) and not _dictionary(found["price"])
    rows = house.table("silver/prices")
    assert sorted(zip(rows["vendor"], rows["sku"], strict=True)) == sorted(listed)
