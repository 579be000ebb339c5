"""Gold: the declared marts recomputed for exactly the partitions (or keys) silver changed.

Upstream: the silver tables each mart reads (``lake_root/silver/<entity>``) and their change
data feed since the mart's watermark. Outputs: ``lake_root/gold/<mart>``, one per mart of the
enabled datasets (``conf/datasets/*.yml``: ``marts`` holds each mart's contract, its query
is a ``.sql`` file or a function of ``mart_module``). See ``lakehouse.declare.marts`` for how a mart
is declared and ``lakehouse.layers.gold.gold`` for how a change finds the parts it touches.
"""

from __future__ import annotations

from dataclasses import replace

from hamilton.htypes import Collect, Parallelizable
from loguru import logger

from lakehouse.core import settings
from lakehouse.core.delta import WriteResult
from lakehouse.core.runs import RunMode, check_watermark, new_run_id
from lakehouse.core.runs import run_mode as parse_run_mode
from lakehouse.core.settings import ConfigError, Positive
from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.layers.gold import audit, changes, gold
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py

# DuckDB's memory in a mart task; it spills beyond (gold.yml memory_per_task). A SF 10
# backfill: 1.7 GB peak instead of 2.5 GB, 10 % slower.
MEMORY_PER_TASK = "500MB"


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "gold")


def marts() -> list[gold.Mart]:
    """The marts of the enabled datasets, checked before any data moves."""
    declared = list(catalog.load().marts.values())
    if not declared:
        logger.warning("gold: no mart is declared (conf/datasets/*.yml marts): nothing to do")
    return declared


def silver_snapshot(lake: Location, marts: list[gold.Mart]) -> changes.SilverSnapshot:
    """The silver tables the marts read, opened once for all of them."""
    return changes.SilverSnapshot.open(lake, {name: None for m in marts for name in m.inputs})


def ready_marts(marts: list[gold.Mart], silver_snapshot: changes.SilverSnapshot) -> list[gold.Mart]:
    """The marts whose silver inputs all exist; a mart waiting for its first data is skipped
    with a warning and blocks no other."""
    ready = []
    for mart in marts:
        missing = [name for name in mart.inputs if name not in silver_snapshot.tables]
        if missing:
            logger.warning(
                f"gold/{mart.name}: skipped, silver/{', silver/'.join(missing)} does not exist "
                "yet (no data has reached silver for it)"
            )
        else:
            ready.append(mart)
    return ready


def run_id() -> str:
    """This run's id, stamped on every commit."""
    return new_run_id("gold")


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    watermark: dict | None = None,
    audit: bool = False,
    sample: int | None = None,
) -> RunMode:
    """What this run does, from ``--inputs``: what silver changed (default), ``plan``, a
    backfill (``from_date``/``to_date``), ``full_refresh``, or an ``audit`` of every part of
    each mart (``sample``: of that many parts per mart, drawn at random)."""
    check_watermark(watermark or {}, "gold", ("version",))
    mode = parse_run_mode(plan, from_date, to_date, full_refresh)
    if sample is not None and not audit:
        raise ConfigError('--inputs sample: only an audit samples (add "audit": true)')
    if not audit:
        return mode
    if plan or from_date or to_date or full_refresh:
        raise ConfigError(
            "--inputs audit runs on its own: drop plan, from_date/to_date, full_refresh"
        )
    if sample is not None and (not str(sample).isdigit() or int(sample) < 1):
        raise ConfigError(f"--inputs sample: {sample!r} is not a positive number of parts")
    return replace(mode, audit=True, sample=None if sample is None else int(sample))


def mart_plans(
    lake: Location,
    silver_snapshot: changes.SilverSnapshot,
    run_mode: RunMode,
    ready_marts: list[gold.Mart],
) -> list[gold.MartPlan]:
    """Per mart, what this run recomputes (read in the driver from the change data feed)."""
    plans = [gold.plan(lake, silver_snapshot, mart, run_mode) for mart in ready_marts]
    silver_snapshot.close()
    return plans


def mart_task(
    mart_plans: list[gold.MartPlan],
    lake: Location,
    partitions_per_task: Positive,
    keys_per_task: Positive,
    memory_per_task: str = MEMORY_PER_TASK,
) -> Parallelizable[gold.PartTask]:
    """One executor task per group of touched partitions (or keys) of a mart; each task's
    DuckDB holds at most ``memory_per_task`` and spills beyond it."""
    memory = settings.memory_size("memory_per_task", memory_per_task, "gold")
    parts = gold.tasks(mart_plans, lake, partitions_per_task, keys_per_task, memory)
    logger.debug(f"gold: {len(parts)} tasks")
    yield from parts


def mart_part(mart_task: gold.PartTask) -> gold.MartPart:
    """The task's partitions recomputed from silver and checked by the mart's contract."""
    return gold.compute(mart_task)


def gold_tables(
    mart_part: Collect[gold.MartPart], mart_plans: list[gold.MartPlan], run_id: str
) -> list[WriteResult]:
    """Each mart's recomputed parts written in one commit with its watermark."""
    parts = list(mart_part)
    results = [gold.write(plan, parts, run_id) for plan in mart_plans]
    drifts = [r for r in results if audit.drifted(r.drift)]
    for result in results:
        if result.operation == "audit" and not audit.drifted(result.drift):
            logger.info(
                f"gold: audit {result.table}: equal to its rebuild ({result.rows:,} rows, "
                f"{result.drift['parts']} parts, {result.drift['seconds']:.2f} s recomputing)"
            )
    if drifts:
        lines = [audit.describe(r.table.rsplit("/", 1)[-1], r.drift) for r in drifts]
        raise audit.MartDrift("; ".join(lines), outputs={"gold_tables": results})
    return results
