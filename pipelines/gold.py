"""Gold: the declared marts recomputed for exactly the partitions (or keys) silver changed.

Upstream: the silver tables each mart reads (``lake_root/silver/<entity>``) and their change
data feed since the mart's watermark. Outputs: ``lake_root/gold/<mart>``, one per mart of the
enabled datasets (``conf/datasets/*.yml``: ``mart_module`` holds the SQL, ``marts`` the
output contracts). See ``lakehouse.gold`` for how a mart is declared.
"""

from __future__ import annotations

from hamilton.htypes import Collect, Parallelizable
from loguru import logger

from lakehouse import catalog, gold, settings
from lakehouse.delta import WriteResult
from lakehouse.runs import RunMode, check_watermark, new_run_id
from lakehouse.runs import run_mode as parse_run_mode
from lakehouse.settings import Positive
from lakehouse.storage import Location


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "gold")


def marts() -> list[gold.Mart]:
    """The marts of the enabled datasets, checked before any data moves."""
    declared = list(catalog.load().marts.values())
    if not declared:
        logger.warning("gold: no mart is declared (conf/datasets/*.yml mart_module): nothing to do")
    return declared


def silver_snapshot(lake: Location, marts: list[gold.Mart]) -> gold.SilverSnapshot:
    """The silver tables the marts read, opened once for all of them."""
    return gold.SilverSnapshot.open(lake, {name: None for m in marts for name in m.reads})


def run_id() -> str:
    """This run's id, stamped on every commit."""
    return new_run_id("gold")


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    watermark: dict | None = None,
) -> RunMode:
    """What this run does, from ``--inputs``: what silver changed (default), ``plan``, a
    backfill (``from_date``/``to_date``) or ``full_refresh``."""
    check_watermark(watermark or {}, "gold", ("version",))
    return parse_run_mode(plan, from_date, to_date, full_refresh)


def mart_plans(
    lake: Location, silver_snapshot: gold.SilverSnapshot, run_mode: RunMode, marts: list[gold.Mart]
) -> list[gold.MartPlan]:
    """Per mart, what this run recomputes (read in the driver from the change data feed)."""
    plans = [gold.plan(lake, silver_snapshot, mart, run_mode) for mart in marts]
    silver_snapshot.close()
    return plans


def mart_task(
    mart_plans: list[gold.MartPlan],
    lake: Location,
    partitions_per_task: Positive,
    keys_per_task: Positive,
) -> Parallelizable[gold.PartTask]:
    """One executor task per group of touched partitions (or keys) of a mart."""
    parts = gold.tasks(mart_plans, lake, partitions_per_task, keys_per_task)
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
    return [gold.write(plan, parts, run_id) for plan in mart_plans]
