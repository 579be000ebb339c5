"""Silver's batches are tasks on the configured executor: prepared anywhere, committed by the
driver in a serial run's order (an entity's batches in order, an entity after its parent).

A dataset of another shape than TPC-H: weather stations (a snapshot source, delivered whole
every few days) and their hourly readings (keyed on station and hour, orphans quarantined),
landed over many bronze commits so that each entity takes several silver batches.
"""

from __future__ import annotations

import shutil

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable

from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.layers.silver import snapshots, work
from lakehouse.layers.silver.plan import Watermark
from lakehouse.layers.silver.quarantine import Policy

DECLARATION = {
    "sources": {"stations": {"format": "csv"}, "readings": {"format": "csv"}},
    "entities": {
        "stations": {
            "snapshot": {"vanished": "keep"},
            "key": "station_code",
            "columns": {
                "station_code": {"type": "string"},
                "elevation_m": {"type": "int32", "rules": {"between": [-500, 9000]}},
            },
        },
        "readings": {
            "key": ["station", "hour"],
            "parent": {"column": "station", "entity": "stations", "key": "station_code"},
            "columns": {
                "station": {"type": "string"},
                "hour": {"type": "timestamp"},
                "rain_mm": {"type": "float64", "rules": {"between": [0, 500]}},
            },
        },
    },
}
DROPS = 6  # stations snapshots, and days of readings


@pytest.fixture
def weather(lakehouse):
    lakehouse.switch_demo(False)
    (lakehouse.project / "conf" / "datasets" / "weather.yml").write_text(
        yaml.safe_dump(DECLARATION)
    )
    for folder in ("stations", "readings"):
        (lakehouse.landing / folder).mkdir(parents=True)
    for day in range(DROPS):
        stations = [
            {"station_code": f"W{s:03d}", "elevation_m": str(100 * s + day * (s % 3 == 0))}
            for s in range(20 + day)
        ]
        pl.DataFrame(stations).write_csv(lakehouse.landing / "stations" / f"st_{day:02d}.csv")
        readings = [
            {
                "station": f"W{s:03d}",
                "hour": f"2031-03-{day + 1:02d}T{h:02d}:00:00",
                "rain_mm": "-1" if (s + h) % 17 == 0 else f"{(s * h) % 40 / 10:.1f}",
            }
            for s in range(22 + day)  # the last stations' readings come before the station
            for h in range(24)
        ]
        pl.DataFrame(readings).write_csv(lakehouse.landing / "readings" / f"rd_{day:02d}.csv")
    lakehouse.configure("bronze", task_bytes=1)  # a commit per file: one per drop
    lakehouse.run("bronze")
    lakehouse.configure("silver", max_cells_per_batch=1)  # a batch per bronze commit
    return lakehouse


def _silver(house) -> dict[str, pl.DataFrame]:
    """Silver and quarantine, without the columns that name the run or its time."""
    tables = {}
    for name in ("silver/stations", "silver/readings", "_quarantine/readings"):
        frame = house.table(name)
        frame = frame.drop([c for c in frame.columns if c in STAMPS])
        tables[name] = frame.sort(frame.columns)
    return tables


def _equal(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> bool:
    return a.keys() == b.keys() and all(a[name].equals(b[name]) for name in a)


def _uninterrupted(house, bronze_lake) -> dict[str, pl.DataFrame]:
    """Silver of one synchronous run from the lake copied in ``bronze_lake``, in its place."""
    shutil.move(house.lake, house.root / "aside")
    shutil.copytree(bronze_lake, house.lake)
    try:
        house.run("silver", executor_cfg="synchronous")
        return _silver(house)
    finally:
        shutil.rmtree(house.lake)
        shutil.move(house.root / "aside", house.lake)


POOL = {"type": "threadpool", "max_workers": 2}
STAMPS = {"_run_id", "run_id", "quarantined_at", "_ingested_at"}  # the run's id and time


def test_a_run_of_many_batches_on_a_thread_pool_equals_a_synchronous_run(weather, capfd):
    copy = weather.root / "copy"
    shutil.copytree(weather.lake, copy)
    weather.run("silver", executor_cfg=POOL)
    said = capfd.readouterr().err
    assert f"silver: {2 * DROPS} tasks to run" in said
    assert "batches prepared in" not in said  # news only where workers prepared them
    tables = _silver(weather)
    assert tables["silver/readings"].height > 0
    rules = set(tables["_quarantine/readings"]["rule"])
    assert rules == {"orphan", "out_of_range"}
    assert weather.version("silver/readings") >= DROPS - 1  # a batch per drop
    assert _equal(tables, _uninterrupted(weather, copy))


@pytest.mark.parametrize("executor", ["synchronous", POOL], ids=["synchronous", "threadpool"])
def test_the_driver_commits_an_entity_after_its_parent_and_its_batches_in_order(
    weather, monkeypatch, executor
):
    """The planned tasks, and what a run stopped by a failing task keeps: batches before it
    that had returned (all of them, one task at a time), never a batch after it nor a
    child's batch before its parent's last; the rerun ends where an uninterrupted run does."""
    copy = weather.root / "copy"
    shutil.copytree(weather.lake, copy)
    planned = work.planned(
        catalog.load(marts=False).in_dependency_order(),
        Location.from_uri(str(weather.lake)),
        "silver-test",
        1,
        Watermark(),
        Policy(),
    )
    lanes = [(w.entity.name, w.position, w.last, w.waits_for) for w in planned]
    assert lanes == [("stations", i, i == DROPS - 1, ()) for i in range(DROPS)] + [
        ("readings", i, i == DROPS - 1, ("stations",)) for i in range(DROPS)
    ]

    real = work.prepare

    def failing_on_the_fifth_snapshot(task):
        if task.entity.name == "stations" and task.position == 4:
            raise RuntimeError("worker lost")
        return real(task)

    monkeypatch.setattr(work, "prepare", failing_on_the_fifth_snapshot)
    with pytest.raises(RuntimeError, match="worker lost"):
        weather.run("silver", executor_cfg=executor, retry={"max_retries": 0})
    if executor == "synchronous":
        assert weather.table("silver/stations").height == 20 + 3  # four snapshots, in order
    elif (weather.lake / "silver" / "stations").exists():  # the pool: those that returned
        assert weather.table("silver/stations").height <= 20 + 3
    assert not (weather.lake / "silver" / "readings").exists()  # waits for its parent

    monkeypatch.setattr(work, "prepare", real)
    weather.run("silver", executor_cfg=executor)
    assert _equal(_silver(weather), _uninterrupted(weather, copy))


@pytest.mark.parametrize("vanished", ["keep", "delete", "soft_delete"])
def test_the_state_a_driver_keeps_across_snapshot_batches_diffs_as_a_full_read_does(
    lakehouse, monkeypatch, vanished
):
    """A snapshot entity's later batches are diffed against silver's state as the driver
    held it (only the files each commit added read again): the same tables as reading the
    whole state for every batch, whatever vanished keys become."""
    declaration = {
        "sources": {"stations": {"format": "csv"}},
        "entities": {"stations": {**DECLARATION["entities"]["stations"]}},
    }
    declaration["entities"]["stations"]["snapshot"] = {"vanished": vanished}
    lakehouse.switch_demo(False)
    (lakehouse.project / "conf" / "datasets" / "stations.yml").write_text(
        yaml.safe_dump(declaration)
    )
    folder = lakehouse.landing / "stations"
    folder.mkdir(parents=True)
    for day in range(DROPS):
        rows = [
            {"station_code": f"W{s:03d}", "elevation_m": str(100 * s + day * (s % 3 == 0))}
            for s in range(20 + day)
            if (s + day) % 4 != 0  # a station missing from every fourth snapshot or so
        ]
        pl.DataFrame(rows).write_csv(folder / f"st_{day:02d}.csv")
    lakehouse.configure("bronze", task_bytes=1)
    lakehouse.run("bronze")
    lakehouse.configure("silver", max_cells_per_batch=1)  # a batch per snapshot
    copy = lakehouse.root / "copy"
    shutil.copytree(lakehouse.lake, copy)

    lakehouse.run("silver", executor_cfg="synchronous")
    held = _table(lakehouse.lake / "silver" / "stations")

    full_read = snapshots.current_state
    monkeypatch.setattr(snapshots, "current_state", lambda t, e, held=None: full_read(t, e))
    shutil.rmtree(lakehouse.lake)
    shutil.copytree(copy, lakehouse.lake)
    lakehouse.run("silver", executor_cfg="synchronous")
    assert held.equals(_table(lakehouse.lake / "silver" / "stations"))
    assert lakehouse.version("silver/stations") >= DROPS - 1  # one batch per snapshot


def _table(path) -> pl.DataFrame:
    frame = pl.from_arrow(DeltaTable(str(path)).to_pyarrow_table())
    frame = frame.drop([c for c in frame.columns if c in STAMPS | {"_deleted_at"}])
    return frame.sort(frame.columns)
