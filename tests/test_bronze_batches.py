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


def _commit_from_another_writer(house, app_id: str, version: int) -> None:
    """A commit to bronze's table by another writer (its own table object): an app
    transaction and no data, as maintenance or another run would make."""
    from deltalake import CommitProperties, Transaction

    table = bronze(house)
    table.create_write_transaction(
        [],
        "append",
        table.schema(),
        partition_by=table.metadata().partition_columns,
        commit_properties=CommitProperties(app_transactions=[Transaction(app_id, version)]),
    )


def test_the_driver_lands_on_other_writers_commits_and_refuses_a_batch_taken_meanwhile(
    sensors, monkeypatch
):
    """The driver does not re-read its table before each commit: a commit of another app id
    that came in between is landed on, and one that took this source's next batch makes
    the driver's commit fail (delta-rs's conflict check), committing nothing twice; the
    rerun lands the rest, every file once."""
    from lakehouse.layers.bronze import commit

    sensors.configure("bronze", task_bytes=1)  # one task, one commit per file
    real_commit, done = commit.commit_staged, []

    def others_in_between(*args, **kwargs):
        result = real_commit(*args, **kwargs)
        done.append(result.version)
        if len(done) == 5:
            _commit_from_another_writer(sensors, "maintenance:readings", 1)
        if len(done) == 10:  # as if another run took batch 11
            _commit_from_another_writer(sensors, "bronze:readings", 11)
        return result

    monkeypatch.setattr(commit, "commit_staged", others_in_between)
    with pytest.raises(RuntimeError, match="Concurrent transaction"):  # CommitFailedError
        sensors.run("bronze", retry={"max_retries": 0})
    assert done == [*range(1, 6), *range(7, 12)]  # the driver's versions, past the other's
    kept = sensors.table("bronze/readings")
    assert kept.group_by("_source_file").len()["len"].to_list() == [10] * 10

    monkeypatch.setattr(commit, "commit_staged", real_commit)
    sensors.run("bronze")
    rows = sensors.table("bronze/readings")
    assert rows.height == 300
    assert rows.group_by("_source_file").len()["len"].to_list() == [10] * 30  # each file once
    assert _recorded(sensors) == 30
    marks = delta_log.app_transactions(Location.from_uri(str(sensors.lake / "bronze" / "readings")))
    assert marks["bronze:readings"] == 11 + 20  # the rerun's batches after the other's 11


def test_tables_checkpoint_every_ten_commits_and_maintenance_sets_older_tables_so(
    sensors, tmp_path
):
    """The engine's tables take a checkpoint every 10 commits (deltalake replays the log
    from the last one whenever the driver brings a table up to date); maintenance gives the
    interval to a table made without it, its data unchanged."""
    import json

    import pyarrow as pa
    from deltalake import write_deltalake

    from lakehouse.ops import maintenance

    sensors.configure("bronze", task_bytes=1)  # a commit per file: versions 1 to 30
    sensors.run("bronze")
    log = sensors.lake / "bronze" / "readings" / "_delta_log"
    assert bronze(sensors).version() == 30
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == 29
    assert sorted(p.name[:20] for p in log.glob("*.checkpoint.parquet")) == [
        f"{v:020d}"
        for v in (9, 19, 29)  # every tenth commit, version 0 the first
    ]

    older = tmp_path / "older"
    rows = pa.table({"gauge": ["g1", "g2"], "mm": [1.5, 0.25]})
    write_deltalake(str(older), rows)
    assert "delta.checkpointInterval" not in DeltaTable(str(older)).metadata().configuration
    maintenance.maintain(Location.from_uri(str(older)), target_file_mb=64, retention_hours=168)
    table = DeltaTable(str(older))
    assert table.metadata().configuration["delta.checkpointInterval"] == "10"
    assert table.to_pyarrow_table().sort_by("gauge") == rows


def test_a_threadpool_worker_takes_the_next_task_while_the_driver_commits(sensors, monkeypatch):
    """A threadpool holds as many tasks again as it has workers: a worker that finishes
    while the driver commits starts a queued task, instead of idling until the commit is
    done and the driver's loop submits the next one."""
    import threading
    import time

    from lakehouse.layers.bronze import commit

    sensors.configure("bronze", task_bytes=1)  # a task per file
    started, commits, lock = [], [], threading.Lock()
    real_read, real_commit = ingest.read_landing_file, commit.commit_staged

    def noted_read(*args, **kwargs):
        with lock:
            started.append(time.monotonic())
        time.sleep(0.05)  # a task takes half as long as a commit: the driver is the limit
        return real_read(*args, **kwargs)

    def slow_commit(*args, **kwargs):
        begun = time.monotonic()
        time.sleep(0.1)
        result = real_commit(*args, **kwargs)
        commits.append((begun, time.monotonic()))
        return result

    monkeypatch.setattr(ingest, "read_landing_file", noted_read)
    monkeypatch.setattr(commit, "commit_staged", slow_commit)
    sensors.run("bronze", executor_cfg={"type": "threadpool", "max_workers": 2})
    assert sensors.table("bronze/readings").height == 300
    # the driver submits between commits, and a task it submits starts at once: one that
    # started 20 ms or more into a commit came from the queue
    from_queue = [t for t in started if any(b + 0.02 <= t < e for b, e in commits)]
    assert len(from_queue) >= 3, (len(from_queue), len(started))  # 0 with two in flight
