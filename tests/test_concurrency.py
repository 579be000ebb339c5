"""Several runs of one pipeline at once: no batch is committed twice, no row lost."""

from __future__ import annotations

from crash_harness import Harness, differences, lake_tables, run_concurrently


def test_simultaneous_runs_end_as_one_run(lakehouse):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.run("landing")
    harness = Harness(lakehouse.project, lakehouse.landing, lakehouse.root)
    reference_lake = lakehouse.root / "reference"
    harness.run(reference_lake)

    lake = lakehouse.root / "concurrent"
    exit_codes = {layer: run_concurrently(harness, lake, 3, [layer]) for layer in harness.layers}
    assert all(0 in codes for codes in exit_codes.values()), exit_codes  # someone won each layer
    assert differences(lake_tables(reference_lake), lake_tables(lake)) == []
