"""Exactly once under SIGKILL: a killed run, then a rerun, equals one uninterrupted run."""

from __future__ import annotations

import shutil

import pytest
import yaml
from crash_harness import Harness, differences, lake_tables, random_kill_times

TRIALS = 20
SILVER_TRIALS = 8


@pytest.mark.slow  # two minutes: in `make test-slow` (CI runs it)
def test_killed_runs_then_reruns_equal_an_uninterrupted_run(lakehouse):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.run("landing")
    harness = Harness(lakehouse.project, lakehouse.landing, lakehouse.root)

    reference_lake = lakehouse.root / "reference"
    seconds = harness.run(reference_lake)
    reference = lake_tables(reference_lake)
    assert {
        "bronze/lineitem",
        "silver/lineitem",
        "_quarantine/lineitem",
        "gold/daily_revenue",
    } <= set(reference)
    assert differences(reference, lake_tables(reference_lake)) == []

    trials = [
        harness.trial(reference, lakehouse.root / f"trial{i}", kill_after)
        for i, kill_after in enumerate(random_kill_times(TRIALS, seconds, seed=2))
    ]
    failures = [(t.kill_after, t.differences) for t in trials if t.differences]
    assert failures == []
    assert sum(t.killed for t in trials) >= TRIALS // 2  # most runs really were killed mid-way


@pytest.mark.slow  # about two minutes: in `make test-slow` (CI runs it)
@pytest.mark.parametrize(
    "executor",
    [{"type": "threadpool", "max_workers": 2}, {"type": "dask", "max_workers": 2}],
    ids=["threadpool", "dask"],
)
def test_silver_killed_while_its_batches_run_as_tasks_then_rerun_equals_an_uninterrupted_run(
    lakehouse, executor
):
    """Silver's batches as tasks on a pool or a local Dask cluster, the driver committing
    them as they return: killed at any moment, the rerun ends where one run does."""
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=6)
    lakehouse.run("landing")
    lakehouse.configure("bronze", task_bytes=1)  # a bronze commit per file
    lakehouse.run("bronze")
    lakehouse.configure("silver", max_cells_per_batch=1)  # a silver batch per bronze commit
    silver_yml = lakehouse.project / "conf" / "pipelines" / "silver.yml"
    spec = yaml.safe_load(silver_yml.read_text())
    spec["run"]["executor"] = executor
    silver_yml.write_text(yaml.safe_dump(spec))
    bronze_lake = lakehouse.root / "bronze_only"
    shutil.copytree(lakehouse.lake, bronze_lake)
    harness = Harness(
        lakehouse.project, lakehouse.landing, lakehouse.root, ("silver",), start_from=bronze_lake
    )

    reference_lake = lakehouse.root / "reference"
    harness.fresh(reference_lake)
    seconds = harness.run(reference_lake)
    reference = lake_tables(reference_lake)
    assert {"silver/lineitem", "silver/orders", "_quarantine/lineitem"} <= set(reference)

    trials = [
        harness.trial(reference, lakehouse.root / f"trial{i}", kill_after)
        for i, kill_after in enumerate(random_kill_times(SILVER_TRIALS, seconds, seed=3))
    ]
    assert [(t.kill_after, t.differences) for t in trials if t.differences] == []
    assert sum(t.killed for t in trials) >= SILVER_TRIALS // 2
