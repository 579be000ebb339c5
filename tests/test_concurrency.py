"""Several runs of one pipeline at once: no batch is committed twice, no row lost."""

from __future__ import annotations

import pytest
from crash_harness import Harness, differences, lake_tables, run_concurrently


@pytest.mark.slow
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


def test_a_run_that_planned_a_batch_another_run_committed_is_refused(lakehouse):
    """The race found by the test above: run B plans batch 1, run A commits batch 1, then B
    writes from a fresh snapshot, where delta-rs alone would accept the batch twice."""
    import pytest
    from deltalake.exceptions import CommitFailedError
    from truth import ENTITIES

    from lakehouse.core.runs import RunMode
    from lakehouse.core.storage import Location
    from lakehouse.layers.silver import plan, silver, work

    lakehouse.configure("landing", defect_rate=0.05)
    lakehouse.run("landing")
    lakehouse.run("bronze")
    lake, orders = Location.from_uri(str(lakehouse.lake)), ENTITIES["orders"]
    places = [lake.child(layer, "orders") for layer in ("bronze", "silver", "_quarantine")]
    planned_by_b = plan.plan_batch(*places, "silver:orders", 250_000, orders)

    silver.refresh(orders, lake, "run-a", 250_000, RunMode())  # run A does batch 1
    before = {t: lakehouse.table(t).height for t in ("silver/orders", "_quarantine/orders")}
    with pytest.raises(CommitFailedError, match="already committed"):
        stale = work.BatchWork(
            orders, planned_by_b, lake, "run-b", silver.DEFAULT_POLICY, 0, True, (), 0
        )
        work.run_in_driver([stale])
    assert {t: lakehouse.table(t).height for t in before} == before
