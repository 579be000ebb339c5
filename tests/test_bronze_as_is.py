"""A Parquet source's landing files go into bronze as they are: read and checked, then their
bytes copied, the lineage kept as partition values in the Delta log.

Electricity meters, not the demo's shape: readings keyed on (meter, read_at) with a
timestamp, a float and a decimal, landed as Parquet. A file in types Delta holds is added
byte for byte; one that bronze must change (a column name it makes portable) is
re-encoded; both give the same rows, with their lineage, to every reader and to silver. A
file retyped against the files before it in the same task is a bad file, as against the
table. A file whose pages are broken is recorded as bad and left in place.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable, write_deltalake

METERS = {
    "sources": {"meter_reads": {"format": "parquet"}},
    "entities": {
        "meter_reads": {
            "key": ["meter", "read_at"],
            "partition": {"column": "read_day", "from": "read_at", "by": "day"},
            "columns": {
                "meter": {"type": "string"},
                "read_at": {"type": "timestamp"},
                "kwh": {"type": "float64", "rules": {"ge": 0}},
                "tariff": {"type": "decimal(6,4)"},
            },
        }
    },
}
START = datetime(2030, 11, 28, 0, 0)


def _reads(first: int, count: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter": [f"M-{n % 7:02d}" for n in range(first, first + count)],
            "read_at": [START + timedelta(minutes=15 * n) for n in range(first, first + count)],
            "kwh": [float(n % 50) / 4 for n in range(first, first + count)],
            "tariff": [
                Decimal("0.2150") + Decimal(n % 3) / 100 for n in range(first, first + count)
            ],
        },
        schema_overrides={"tariff": pl.Decimal(6, 4)},
    )


@pytest.fixture
def meters(lakehouse):
    lakehouse.switch_demo(False)
    conf = lakehouse.project / "conf" / "datasets" / "meters.yml"
    conf.write_text(yaml.safe_dump(METERS))
    (lakehouse.landing / "meter_reads").mkdir(parents=True)
    return lakehouse


def _data_files(house) -> dict[str, Path]:
    """Each landing file's data file in bronze, by the ``_source_file`` of the log."""
    table = DeltaTable(str(house.lake / "bronze" / "meter_reads"))
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    root = house.lake / "bronze" / "meter_reads"
    return {
        source: root / unquote(path)
        for path, source in zip(actions["path"], actions["partition._source_file"], strict=True)
    }


def test_parquet_files_are_added_as_they_are_with_their_lineage(meters):
    landing = meters.landing / "meter_reads"
    plain = _reads(0, 500)
    plain.write_parquet(landing / "reads_01.parquet")
    buffer = io.BytesIO()
    _reads(500, 300).write_parquet(buffer)
    (landing / "reads_02.parquet").write_bytes(buffer.getvalue())
    odd = pa.table(  # a column name bronze changes: this one is re-encoded
        {
            "meter": ["M-90", "M-91"],
            "read_at": pa.array([START, START], pa.timestamp("us")),
            "kwh": [1.5, 2.5],
            "tariff": pa.array([Decimal("0.2150")] * 2, pa.decimal128(6, 4)),
            "meter note": ["new", "new"],
        }
    )
    pq.write_table(odd, landing / "reads_03.parquet")
    meters.run("bronze")

    bronze = meters.table("bronze/meter_reads")
    assert bronze.height == 802
    files = _data_files(meters)
    assert set(files) == {f"meter_reads/reads_0{n}.parquet" for n in (1, 2, 3)}
    for n in (1, 2):  # the same bytes
        name = f"reads_0{n}.parquet"
        assert files[f"meter_reads/{name}"].read_bytes() == (landing / name).read_bytes()
    assert (
        files["meter_reads/reads_03.parquet"].read_bytes()
        != (landing / "reads_03.parquet").read_bytes()
    )

    runs = bronze.group_by("_source_file").agg(pl.len(), pl.col("_run_id").n_unique())
    assert dict(runs.select("_source_file", "len").iter_rows()) == {
        "meter_reads/reads_01.parquet": 500,
        "meter_reads/reads_02.parquet": 300,
        "meter_reads/reads_03.parquet": 2,
    }
    assert bronze["_ingested_at"].null_count() == 0 and bronze["_run_id"].n_unique() == 1
    first = bronze.filter(pl.col("_source_file") == "meter_reads/reads_01.parquet")
    assert first.select(plain.columns).sort("read_at").equals(plain)
    readers = {  # every reader sees the lineage: deltalake, and Polars from the folders
        "polars": pl.read_delta(str(meters.lake / "bronze" / "meter_reads")),
        "deltalake": bronze,
    }
    for name, rows in readers.items():
        counted = rows.group_by("_source_file").len().sort("_source_file")["len"].to_list()
        assert counted == [500, 300, 2], name

    assert bronze.filter(pl.col("meter_note").is_not_null()).height == 2  # made portable
    meters.run("silver")
    silver = meters.table("silver/meter_reads")
    assert silver.height == 802
    assert silver.filter(pl.col("meter") == "M-90")["read_at"].to_list() == [START]
    assert set(silver["tariff"].cast(pl.String).unique()) <= {"0.2150", "0.2250", "0.2350"}


def test_a_parquet_file_with_broken_pages_is_recorded_and_left_in_place(meters):
    landing = meters.landing / "meter_reads"
    _reads(0, 100).write_parquet(landing / "reads_01.parquet")
    buffer = io.BytesIO()
    _reads(100, 20_000).write_parquet(buffer, compression="zstd", row_group_size=20_000)
    broken = bytearray(buffer.getvalue())
    broken[4:68] = b"\xff" * 64  # the first page's header; the footer stays whole
    (landing / "reads_02.parquet").write_bytes(bytes(broken))
    meters.run("bronze")

    assert meters.table("bronze/meter_reads").height == 100
    recorded = meters.table("_quarantine/_files")
    assert recorded["file"].to_list() == ["meter_reads/reads_02.parquet"]
    assert recorded["error"].to_list() == ["unreadable_parquet"]
    assert (landing / "reads_02.parquet").exists()
    assert set(_data_files(meters)) == {"meter_reads/reads_01.parquet"}


def test_a_table_made_before_keeps_its_lineage_columns(meters):
    """A Parquet source's bronze table made by an earlier release (unpartitioned, the lineage
    in the files) goes on as it is: its new files are re-encoded with the lineage columns."""
    table = meters.lake / "bronze" / "meter_reads"
    lineage = pl.DataFrame(
        schema={
            "_source_file": pl.String,
            "_ingested_at": pl.Datetime("us", "UTC"),
            "_run_id": pl.String,
        }
    )
    older = pl.concat([_reads(0, 1).head(0), lineage], how="horizontal").to_arrow()
    write_deltalake(
        str(table), older.schema.empty_table(), configuration={"delta.enableChangeDataFeed": "true"}
    )
    _reads(0, 50).write_parquet(meters.landing / "meter_reads" / "reads_01.parquet")
    meters.run("bronze")

    assert DeltaTable(str(table)).metadata().partition_columns == []
    rows = meters.table("bronze/meter_reads")
    assert rows.height == 50 and rows["_source_file"].unique().to_list() == [
        "meter_reads/reads_01.parquet"
    ]
    stored = pq.read_schema(next(table.glob("part-*.parquet")))
    assert "_source_file" in stored.names  # the lineage in the file, as before


def test_a_file_retyped_against_the_one_before_it_is_a_bad_file(meters):
    """Two files of one new table in one task: the second's times are nanoseconds where the
    first's are microseconds; it is recorded, the first lands."""
    landing = meters.landing / "meter_reads"
    _reads(0, 10).write_parquet(landing / "reads_01.parquet")
    nanos = _reads(10, 10).with_columns(pl.col("read_at").cast(pl.Datetime("ns")))
    nanos.write_parquet(landing / "reads_02.parquet")
    meters.run("bronze")

    assert meters.table("bronze/meter_reads").height == 10
    recorded = meters.table("_quarantine/_files")
    assert recorded.select("file", "error").rows() == [
        ("meter_reads/reads_02.parquet", "changed_type")
    ]
