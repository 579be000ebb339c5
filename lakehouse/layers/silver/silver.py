"""Silver: each entity brought up to date with bronze, a batch at a time (``batch``).

State per entity (app id ``silver:<entity>``), all in Delta logs:
  * the silver table's newest commit says which bronze version it has merged up to;
  * a batch with rejected rows writes their quarantine commit *first*, which fixes the
    batch's bronze range, so a run killed between the two commits redoes the MERGE over
    exactly the same rows, and never quarantines a row twice (a batch without rejects
    writes none: killed, it is planned again from the silver watermark);
  * a batch appends the rows of keys silver lacks just before its MERGE, in a commit of
    the run that is not the batch's: redone after a crash, the batch finds those rows in
    silver, and its MERGE leaves them as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from loguru import logger

from lakehouse.core import delta
from lakehouse.core.runs import RunMode
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import Entity
from lakehouse.layers.silver import conform, rebuild, work
from lakehouse.layers.silver.plan import (
    Batch,
    Watermark,
    _rows_per_version,
    bronze_rows,
    plan_batch,
)
from lakehouse.layers.silver.quarantine import Policy

DEFAULT_POLICY = Policy()
DEFAULT_WATERMARK = Watermark()


def refresh(
    entity: Entity,
    lake: Location,
    run_id: str,
    max_cells_per_batch: int,
    mode: RunMode,
    watermark: Watermark = DEFAULT_WATERMARK,
    parent_keys: Callable[[], pl.Series | None] = lambda: None,
    policy: Policy = DEFAULT_POLICY,
) -> list[delta.WriteResult]:
    """Bring silver/<entity> up to date with bronze, as ``mode`` says; ``parent_keys`` gives
    the keys of its parent, called once there are rows to check (an entity with nothing new
    reads none).

    Incremental: every pending bronze batch. Backfill or full refresh: the bronze rows of the
    date range (all rows for a full refresh), re-validated and merged, deleting silver rows
    of the range that bronze no longer supports. Plan: log what would be read, write nothing.
    """
    bronze = lake.child("bronze", entity.source)
    target = lake.child("silver", entity.name)
    quarantined = lake.child("_quarantine", entity.name)
    app_id = f"silver:{entity.name}"
    if mode.replay:
        return rebuild.replay(entity, lake, run_id, parent_keys())
    if mode.date_range or mode.full_refresh:
        return rebuild.rebuild(entity, lake, run_id, mode, parent_keys(), policy)
    if mode.plan:
        _log_plan(entity, bronze, target, quarantined, app_id, max_cells_per_batch)
        return []

    planned = work.planned([entity], lake, run_id, max_cells_per_batch, watermark, policy)
    results = work.run_in_driver(planned)  # its parent's keys read at its first commit
    if not results:
        logger.debug(f"silver/{entity.name}: up to date")
    return results


@dataclass(frozen=True)
class SilverRun:
    """One silver run's settings: lake, run id, batch size, mode and watermark."""

    lake: Location
    run_id: str
    max_cells_per_batch: int
    mode: RunMode
    watermark: Watermark
    policy: Policy = DEFAULT_POLICY

    def refresh(self, entity: Entity) -> list[delta.WriteResult]:
        return refresh(
            entity,
            self.lake,
            self.run_id,
            self.max_cells_per_batch,
            self.mode,
            self.watermark,
            functools.partial(work.parent_keys, self.lake, entity),
            self.policy,
        )


def _log_plan(entity, bronze, target, quarantine, app_id, max_cells) -> None:
    batch = plan_batch(bronze, target, quarantine, app_id, max_cells, entity)
    if batch is None:
        logger.info(f"PLAN silver/{entity.name}: up to date")
        return
    bronze_table = delta.open_table(bronze)
    if bronze_table is None:  # plan_batch found a batch in it: only gone since
        raise RuntimeError(f"silver/{entity.name}: bronze/{entity.source} is gone")
    current = bronze_table.version()
    sizes = _rows_per_version(bronze_table, batch.after, current)
    pending = Batch(batch.number, batch.after, current, batch.quarantined)
    partitions = ""
    if entity.partition:
        rows = bronze_rows(bronze, pending)
        days = rows.select(conform.raw_partition_value(entity, rows.schema)).to_series()
        partitions = ", ".join(str(d) for d in days.drop_nulls().unique().sort())
        partitions = f"; {entity.partition.column} {partitions}"
    logger.info(
        f"PLAN silver/{entity.name}: bronze versions {batch.after + 1}..{current}, "
        f"~{sum(rows for _, rows, _ in sizes):,} rows{partitions}"
    )


def undeclared_bronze(lake: Location, declared) -> list[str]:
    """Bronze tables no declared entity reads (``declared``: the catalog)."""
    sources = {entity.source for entity in declared.entities.values()}
    return [name for name in lake.child("bronze").folders() if name not in sources]
