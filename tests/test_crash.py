"""Exactly once under SIGKILL: a killed run, then a rerun, equals one uninterrupted run."""

from __future__ import annotations

import pytest
from crash_harness import Harness, differences, lake_tables, random_kill_times

TRIALS = 20


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
