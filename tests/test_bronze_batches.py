"""Bronze stages a source's small landing files together: one task per ``task_bytes`` of
files, several files to a Parquet file of at most ``max_rows_per_commit`` rows, each file
still recorded (and deduplicated) on its own, a bad file among them left out alone.

A dataset of another shape than TPC-H: sensor readings, one small CSV per sensor and hour.
"""

from __future__ import annotations

import os

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable

from lakehouse.core import delta_log
from lakehouse.core.storage import Location
from lakehouse.layers.bronze import ingest, landing_files

DECLARATION = {
    "sources": {"readings": {"format": "csv"}},
    "entities": {
        "readings": {
            "key": ["sensor", "taken_at"],
            "columns": {
                "sensor": {"type": "string"},
                "taken_at": {"type": "timestamp"},
                "celsius": {"type": "float64", "rules": {"between": [-60, 70]}},
            },
        }
    },
}


@pytest.fixture
def sensors(lakehouse):
    lakehouse.switch_demo(False)
    path = lakehouse.project / "conf" / "datasets" / "sensors.yml"
    path.write_text(yaml.safe_dump(DECLARATION))
    folder = lakehouse.landing / "readings"
    folder.mkdir(parents=True)
    for hour in range(30):
        rows = [
            {
                "sensor": f"s{s}",
                "taken_at": f"2040-05-01T{hour % 24:02d}:{hour // 24:02d}:00",
                "celsius": f"{20 + s / 10:.1f}",
            }
            for s in range(10)
        ]
        pl.DataFrame(rows).write_csv(folder / f"readings_{hour:03d}.csv")
    (folder / "readings_999.csv").write_bytes(b"sensor,taken_at,celsius\n\xff\xfe,bad\n")
    return lakehouse


def bronze(house) -> DeltaTable:
    return DeltaTable(str(house.lake / "bronze" / "readings"))


def test_small_files_share_a_parquet_file_and_each_is_recorded_once(sensors):
    sensors.configure("bronze", max_rows_per_commit=100)
    sensors.run("bronze")

    table = bronze(sensors)
    rows = pl.from_arrow(table.to_pyarrow_table())
    assert rows.height == 300
    assert rows["_source_file"].n_unique() == 30
    assert len(table.file_uris()) == 3  # 30 files of 10 rows in Parquet files of 100 rows
    assert table.version() == 3  # version 0 creates it, then one commit per 100 rows
    bad = sensors.table("_quarantine/_files")
    assert bad["file"].to_list() == ["readings/readings_999.csv"]

    sensors.run("bronze")  # nothing new: every file is known by its own transaction
    assert bronze(sensors).version() == 3
    sensors.run("silver")
    assert sensors.table("silver/readings").height == 300


def test_task_bytes_of_one_gives_each_file_its_own_task_and_parquet_file(sensors):
    sensors.configure("bronze", task_bytes=1)
    sensors.run("bronze")
    table = bronze(sensors)
    assert len(table.file_uris()) == 30
    assert table.to_pyarrow_table().num_rows == 300


def _one_row_files(house, count: int) -> list[str]:
    """``count`` one-row sensor files, landed one after the other (oldest first)."""
    house.switch_demo(False)
    (house.project / "conf" / "datasets" / "sensors.yml").write_text(yaml.safe_dump(DECLARATION))
    folder = house.landing / "readings"
    folder.mkdir(parents=True)
    for n in range(count):
        path = folder / f"r_{n:05d}.csv"
        path.write_text(f"sensor,taken_at,celsius\ns{n},2040-05-01T00:00:00,{n % 50}.5\n")
        os.utime(path, (1_900_000_000 + n, 1_900_000_000 + n))  # landed in name order
    return [f"s{n}" for n in range(count)]


def _recorded(house) -> int:
    known = delta_log.app_transactions(Location.from_uri(str(house.lake / "bronze" / "readings")))
    return len([app for app in known if app.startswith("file:readings/")])


def test_a_drop_of_many_small_files_lands_whole_in_one_parquet_file_per_task(lakehouse):
    """More files than a task gathers at once (512): every file's rows land, in file order,
    each file recorded on its own, one Parquet file for the task."""
    sensors = _one_row_files(lakehouse, 1_300)
    lakehouse.run("bronze")
    table = bronze(lakehouse)
    rows = pl.from_arrow(table.to_pyarrow_table())
    assert rows["sensor"].to_list() == sensors  # all, in file order
    assert rows["_source_file"].n_unique() == len(sensors)
    assert len(table.file_uris()) == 1  # one task (task_bytes), one Parquet file
    assert _recorded(lakehouse) == len(sensors)
    lakehouse.run("bronze")  # nothing new
    assert bronze(lakehouse).version() == table.version()


def test_a_drop_larger_than_a_run_takes_lands_over_runs_oldest_first(lakehouse):
    """``max_files_per_run``: each run commits the oldest files it took; the rest wait for
    the next run, which goes on where the last one stopped, and nothing lands twice."""
    sensors = _one_row_files(lakehouse, 1_300)
    lakehouse.configure("bronze", max_files_per_run=500)
    landed, said = [], []
    for _ in range(3):
        done = lakehouse.cli("bronze")
        assert done.returncode == 0, done.stderr
        rows = pl.from_arrow(bronze(lakehouse).to_pyarrow_table())
        landed.append(rows.height)
        assert sorted(rows["sensor"].to_list(), key=sensors.index) == sensors[: rows.height]
        said.append(done.stderr)
    assert landed == [500, 1_000, 1_300]
    assert "800 more new landing files wait for the next run (max_files_per_run 500)" in said[0]
    assert "more new landing files wait" not in said[2]
    assert _recorded(lakehouse) == 1_300
    version = bronze(lakehouse).version()
    lakehouse.run("bronze")
    assert bronze(lakehouse).version() == version


@pytest.mark.parametrize("executor", ["synchronous", "threadpool"])
def test_a_stopped_run_keeps_the_batches_it_finished_and_the_rerun_takes_the_rest(
    sensors, monkeypatch, executor
):
    """The driver commits each task's files as the task returns, in name order: a run that
    stops at a failing task keeps the batches before it (whatever finished after it waits),
    and the rerun lands only the rest, every file once."""
    sensors.configure("bronze", task_bytes=1)  # one task per file
    real_read = ingest.read_landing_file

    def fail_on_hour_20(file, expected=None):
        if file.name == "readings_020.csv":
            raise RuntimeError("the store went away")
        return real_read(file, expected)

    monkeypatch.setattr(ingest, "read_landing_file", fail_on_hour_20)
    with pytest.raises(RuntimeError, match="the store went away"):
        sensors.run("bronze", executor_cfg=executor, retry={"max_retries": 0})

    kept = sorted(set(sensors.table("bronze/readings")["_source_file"].to_list()))
    names = [f"readings/readings_{hour:03d}.csv" for hour in range(30)]
    assert kept == names[: len(kept)]  # a prefix, in name order, nothing past the failure
    if executor == "synchronous":
        assert kept == names[:20]
    assert len(kept) > 0

    monkeypatch.setattr(ingest, "read_landing_file", real_read)
    sensors.run("bronze", executor_cfg=executor)
    rows = sensors.table("bronze/readings")
    assert rows.height == 300
    assert rows.group_by("_source_file").len()["len"].to_list() == [10] * 30  # each file once
    by_run = rows.group_by("_run_id").agg(pl.col("_source_file").unique().sort())
    assert sorted(by_run["_source_file"].to_list()) == [names[: len(kept)], names[len(kept) :]]
    assert _recorded(sensors) == 30


def test_a_task_takes_at_most_max_files_files_in_name_order():
    """Many tiny files: tasks are cut by count as well as bytes, per source, in name order,
    numbered per source (the order their commits land in)."""
    table = Location.from_uri("/nowhere/bronze")

    def landed(source: str, count: int) -> list[landing_files.LandingFile]:
        return [
            landing_files.LandingFile(
                source, f"/l/{source}/{n:03d}", f"{n:03d}", "csv", 40, n, table
            )
            for n in range(count)
        ]

    files = landed("pings", 25)[::-1] + landed("scans", 3)  # listed in any order
    cut = landing_files.batches(files, max_bytes=10**9, max_files=10)
    shape = [(b.files[0].source, b.position, [f.name for f in b.files]) for b in cut]
    names = [f"{n:03d}" for n in range(25)]
    assert shape == [
        ("pings", 0, names[:10]),
        ("pings", 1, names[10:20]),
        ("pings", 2, names[20:]),
        ("scans", 0, names[:3]),
    ]
    by_bytes = landing_files.batches(files, max_bytes=400, max_files=10_000)
    assert [len(b.files) for b in by_bytes] == [10, 10, 5, 3]  # 40 bytes each: 10 a task
