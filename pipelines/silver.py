"""Silver: typed, validated, deduplicated entities, merged from bronze.

Upstream: ``lake_root/bronze/<source>`` of each entity declared in ``conf/datasets/*.yml``
(read through its change data feed, only the versions not yet processed). Outputs:
``lake_root/silver/<entity>`` (one row per business key, partitioned as declared) and
``lake_root/_quarantine/<entity>`` (rejected rows with rule and reason). Each pending
batch is a task on the configured executor (read, type, check, deduplicate); the driver
commits them, an entity's batches in order and after its parent's, so orphans are judged
against the parent's latest rows (``lakehouse/layers/silver/work.py``).
"""

from __future__ import annotations

from hamilton.htypes import Collect, Parallelizable
from loguru import logger

from lakehouse.core import settings
from lakehouse.core.delta import WriteResult
from lakehouse.core.runs import RunMode, new_run_id
from lakehouse.core.runs import run_mode as parse_run_mode
from lakehouse.core.settings import Positive
from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.layers.silver import silver, work
from lakehouse.layers.silver.plan import Watermark
from lakehouse.layers.silver.quarantine import Policy
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "silver")


def datasets() -> catalog.Catalog:
    """The declared datasets (``conf/datasets/*.yml``), checked before any data moves."""
    return catalog.load(marts=False)


def run_id() -> str:
    """This run's id, stamped on every commit and quarantined row."""
    return new_run_id("silver")


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    replay: bool = False,
) -> RunMode:
    """What this run does, from ``--inputs``: the next batches (default), ``plan``, a backfill
    (``from_date``/``to_date``), ``full_refresh``, or ``replay`` of quarantined rows."""
    return parse_run_mode(plan, from_date, to_date, full_refresh, replay)


def silver_run(
    lake: Location,
    run_id: str,
    max_cells_per_batch: Positive,
    run_mode: RunMode,
    watermark: Watermark,
    on_invalid: str,
    max_invalid_fraction: float,
) -> silver.SilverRun:
    """This run's settings: ``watermark`` says how new bronze rows are found, ``on_invalid``
    and ``max_invalid_fraction`` what happens to invalid rows (silver.yml)."""
    return silver.SilverRun(
        lake,
        run_id,
        max_cells_per_batch,
        run_mode,
        watermark,
        Policy(on_invalid, float(max_invalid_fraction)),
    )


def batch_work(
    silver_run: silver.SilverRun, datasets: catalog.Catalog
) -> Parallelizable[work.BatchWork]:
    """One task per pending batch of every entity, parents first, in an incremental run (the
    default, and a catch-up of many batches); none in a plan, backfill, full refresh or
    replay, which run in the driver (``silver_tables``)."""
    if not work.incremental(silver_run.mode):
        return
    yield from work.planned(
        datasets.in_dependency_order(),
        silver_run.lake,
        silver_run.run_id,
        silver_run.max_cells_per_batch,
        silver_run.watermark,
        silver_run.policy,
    )


def prepared_batch(batch_work: work.BatchWork) -> work.PreparedBatch:
    """The batch's bronze rows read, typed, checked and deduplicated, on a worker; the driver
    commits it as the task returns (``lakehouse.layers.silver.work``)."""
    return work.prepare(batch_work)


def silver_tables(
    prepared_batch: Collect[work.PreparedBatch],
    silver_run: silver.SilverRun,
    datasets: catalog.Catalog,
) -> list[WriteResult]:
    """Every declared entity brought up to date, parents first: what this run wrote to
    silver and quarantine."""
    entities = datasets.in_dependency_order()
    if not entities:
        logger.warning("silver: no entity is declared (conf/datasets/*.yml): nothing to do")
    for name in silver.undeclared_bronze(silver_run.lake, datasets):
        logger.warning(
            f"silver: bronze/{name} has no silver entity (declare one with source: {name} "
            "in conf/datasets/*.yml): its rows go no further"
        )
    if work.incremental(silver_run.mode):
        prepared = list(prepared_batch)
        if prepared:  # news where workers did it
            where = work.where_prepared(prepared)
            logger.log("DEBUG" if where.endswith("(the driver)") else "INFO", f"silver: {where}")
        return work.committed(prepared)
    results = []
    for entity in entities:
        results += silver_run.refresh(entity)  # its parent's keys read once it has rows
    return results
