"""Row hashes kept beside bronze's data files (``lakehouse/core/row_hashes.py``): silver reads
them instead of the rows of a snapshot batch that changes nothing.

Two datasets of other shapes than TPC-H: weather stations exported whole as Parquet (bronze
adds the file as it is; a string key, a float, a date, a boolean) and a vendor price list
exported as two CSV parts (``test_snapshots``'s, keyed on a string and an integer).
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import date

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable
from test_snapshots import DECLARATION as PRICES
from test_snapshots import as_rows, land, price_list

from lakehouse.core import row_hashes
from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.declare.declaration import ROW_HASH
from lakehouse.layers.silver import plan, snapshots
from lakehouse.ops import maintenance

STATIONS = {
    "description": "Weather stations, exported whole every month as one Parquet file.",
    "sources": {"stations": {"format": "parquet"}},
    "entities": {
        "stations": {
            "grain": "One row per station.",
            "key": "station_id",
            "snapshot": {"vanished": "keep", "group": r"\d{6}"},
            "columns": {
                "station_id": {"type": "string"},
                "elevation_m": {"type": "float64"},
                "opened": {"type": "date"},
                "active": {"type": "bool"},
            },
        }
    },
}


@pytest.fixture
def house(lakehouse):
    lakehouse.switch_demo(False)
    return lakehouse


def declare(house, name: str, spec: dict) -> None:
    path = house.project / "conf" / "datasets" / f"{name}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def entity_of(house, name: str, entity: str):
    dataset = catalog.load_dataset(house.project / "conf" / "datasets" / f"{name}.yml")
    return dataset.entities[entity]


def stations(count: int, seed: int = 3) -> pl.DataFrame:
    rng = random.Random(seed)
    return pl.DataFrame(
        {
            "station_id": [f"ST-{i:05d}" for i in range(count)],
            "elevation_m": [round(rng.uniform(-20, 3000), 1) for _ in range(count)],
            "opened": [date(1990 + i % 30, 1 + i % 12, 1 + i % 28) for i in range(count)],
            "active": [i % 5 != 0 for i in range(count)],
        }
    )


def land_stations(house, month: str, rows: pl.DataFrame) -> None:
    folder = house.landing / "stations"
    folder.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(folder / f"stations_{month}.parquet")


def sidecars(table) -> list:
    """The row-hash files of a bronze table's folder."""
    return sorted((table / row_hashes.FOLDER).rglob(f"*{row_hashes.SUFFIX}"))


def whole_table(bronze: Location) -> tuple[plan.Batch, DeltaTable]:
    table = DeltaTable(bronze.uri)
    return plan.Batch(1, -1, table.version(), False), table


def stations_in_silver(house) -> pl.DataFrame:
    """200 stations taken into silver, bronze and silver set to one snapshot a batch."""
    declare(house, "stations", STATIONS)
    house.configure("bronze", max_rows_per_commit=200)  # one snapshot a commit ...
    house.configure("silver", max_cells_per_batch=200 * 4)  # ... and a batch
    first = stations(200)
    land_stations(house, "203101", first)
    house.run("bronze")
    house.run("silver")
    return first


def with_elevation(rows: pl.DataFrame, station: str, elevation: float) -> pl.DataFrame:
    is_it = pl.col("station_id") == station
    return rows.with_columns(
        pl.when(is_it).then(pl.lit(elevation)).otherwise(pl.col("elevation_m")).alias("elevation_m")
    )


@pytest.mark.parametrize("source", ["stations", "prices"])
def test_bronze_keeps_the_hashes_silver_would_compute(house, source):
    """For a Parquet file added as it is and for CSV parts written as Parquet, the sidecars'
    hashes equal silver's own hash of the rows as it reads them, file by file in order."""
    if source == "stations":
        declare(house, "stations", STATIONS)
        land_stations(house, "203101", stations(300))
        land_stations(house, "203102", stations(300, seed=4))
    else:
        declare(house, "prices", PRICES)
        land(house, "2031-03-01", price_list(120))
        land(house, "2031-03-02", price_list(80))
    house.run("bronze")
    bronze = Location(str(house.lake / "bronze" / source))
    entity = entity_of(house, source, source)
    batch, table = whole_table(bronze)

    kept = plan.bronze_hashes(bronze, batch, table, entity)
    rows = plan.bronze_rows(bronze, batch, table)
    assert kept is not None and kept.len() == rows.height > 0
    assert kept.to_list() == snapshots.with_row_hash(rows, entity)[ROW_HASH].to_list()
    assert len(sidecars(house.lake / "bronze" / source)) == len(table.file_uris())


def test_silver_reads_only_the_hashes_of_batches_that_change_nothing(house, monkeypatch):
    """A catch-up over repeated snapshots reads the rows of its first batch, of the batch
    with a changed row and of its last; the batches between are decided by their hashes.
    Silver ends as it does when bronze kept no hashes."""
    from lakehouse.layers.silver import work

    first = stations_in_silver(house)
    for month in ("203102", "203103", "203104"):
        land_stations(house, month, first)
    changed = with_elevation(first, "ST-00007", 1234.5)
    land_stations(house, "203105", changed)
    land_stations(house, "203106", changed)
    house.run("bronze")
    copy = house.root / "lake-without-hashes"
    shutil.copytree(house.lake, copy)
    shutil.rmtree(copy / "bronze" / "stations" / row_hashes.FOLDER)

    reads, decided = [], []
    rows_of, hashes_of = work.bronze_rows, plan.bronze_hashes
    monkeypatch.setattr(work, "bronze_rows", lambda *a: reads.append(a[1].number) or rows_of(*a))
    monkeypatch.setattr(
        plan, "bronze_hashes", lambda *a: decided.append(a[1].number) or hashes_of(*a)
    )
    house.run("silver")
    assert decided == [3, 4, 5]  # batch 2 (the first of the run) and 6 (the last) are read
    assert reads == [2, 5, 6]  # batch 5 has a changed row: read after its hashes

    with_hashes = house.table("silver/stations").sort("station_id")
    assert with_hashes.filter(pl.col("station_id") == "ST-00007")["elevation_m"].item() == 1234.5
    shutil.rmtree(house.lake)
    shutil.move(copy, house.lake)
    reads.clear()
    house.run("silver")
    assert reads == [2, 3, 4, 5, 6]  # no hashes kept: every batch read
    assert house.table("silver/stations").sort("station_id").equals(with_hashes)


def test_a_snapshot_that_reverts_a_change_is_read_after_the_change_commits(house, monkeypatch):
    """Silver's hashes are read again after the driver commits: a snapshot reverting the
    batch before's change holds only hashes silver held before that change, and must still
    be read and merged. Silver's history goes through every snapshot's value of the row."""
    from lakehouse.layers.silver import work

    first = stations_in_silver(house)
    moved = with_elevation(first, "ST-00042", -5.0)
    for month, rows in [("203102", first), ("203103", moved), ("203104", first)]:
        land_stations(house, month, rows)
    land_stations(house, "203105", moved)
    house.run("bronze")

    reads = []
    rows_of = work.bronze_rows
    monkeypatch.setattr(work, "bronze_rows", lambda *a: reads.append(a[1].number) or rows_of(*a))
    house.run("silver")
    assert reads == [2, 3, 4, 5]  # 3 and 4 each change the row: both read

    silver = DeltaTable(str(house.lake / "silver" / "stations"))
    values = []
    for version in range(silver.version() + 1):
        at = pl.from_arrow(DeltaTable(silver.table_uri, version=version).to_pyarrow_table())
        row = at.filter(pl.col("station_id") == "ST-00042")["elevation_m"].to_list()
        if row and (not values or values[-1] != row[0]):
            values.append(row[0])
    original = first.filter(pl.col("station_id") == "ST-00042")["elevation_m"].item()
    assert values == [original, -5.0, original, -5.0]


def test_hashes_of_other_columns_than_the_entity_declares_now_are_not_used(house):
    """A column declared after bronze took two snapshots: their hashes cover fewer columns
    than silver's now do, so silver reads their rows and every row gets the column. The
    second part's keys are the test: silver holds their hashes over the old columns, and
    the run's last batch (whose rows are always read) does not bring them."""
    spec = json.loads(json.dumps(PRICES))
    declare(house, "prices", spec)
    house.configure("bronze", max_rows_per_commit=100)  # each part its own bronze commit
    house.configure("silver", max_cells_per_batch=100 * 5)  # ... and its own batch
    rows = price_list(200)
    land(house, "2031-03-01", rows)
    house.run("bronze")
    house.run("silver")
    noted = {k: {**v, "note": f"n{v['sku']}"} for k, v in rows.items()}
    land(house, "2031-03-02", noted)
    land(house, "2031-03-03", dict(list(noted.items())[:100]))  # the first part's keys
    house.run("bronze")  # hashes of the four columns declared then
    spec["entities"]["prices"]["columns"]["note"] = {"type": "string"}
    spec["entities"]["prices"]["schema_evolution"] = "add_columns"
    declare(house, "prices", spec)
    house.run("silver")

    silver = house.table("silver/prices")
    assert dict(zip(silver["sku"], silver["note"], strict=True)) == {
        v["sku"]: v["note"] for v in noted.values()
    }
    assert as_rows(silver.drop("note")) == rows


def test_maintenance_removes_the_hashes_of_vacuumed_files_and_silver_stays_right(house):
    """Compaction rewrites bronze's small files; the full vacuum deletes the old ones and
    the sweep their hashes (and a killed run's orphan). Silver, caught up before, goes on
    over the compaction's commit to the next snapshots: the rows it should."""
    declare(house, "prices", PRICES)
    house.configure("bronze", max_rows_per_commit=50)  # each part its own data file
    rows = price_list(100)
    land(house, "2031-03-01", rows)
    land(house, "2031-03-02", rows)
    house.run("bronze")
    house.run("silver")  # the retention below (none) leaves no change feed to catch up on
    folder = house.lake / "bronze" / "prices" / row_hashes.FOLDER
    kept = sidecars(folder.parent)
    assert len(kept) == 4
    shutil.copy(kept[0], folder / f"part-of-a-killed-run.parquet{row_hashes.SUFFIX}")

    bronze = Location(str(house.lake / "bronze" / "prices"))
    done = maintenance.maintain(bronze, target_file_mb=64, retention_hours=0)
    assert done.compacted == 4 and done.after.files == 1
    assert sidecars(folder.parent) == []  # every data file rewritten, the orphan gone

    raised = {k: {**v, "price": f"{float(v['price']) + 1:.2f}"} for k, v in rows.items()}
    land(house, "2031-03-03", raised)
    land(house, "2031-03-04", raised)
    house.run("bronze")
    assert len(sidecars(folder.parent)) == 4  # the new files'
    house.run("silver")
    assert as_rows(house.table("silver/prices")) == raised
