"""A silver run's batches as tasks: planned by the driver, prepared on the executor's workers,
committed by the driver, in order.

An incremental run (the default, and an empty lake's catch-up) plans every pending batch of
every entity up front (``planned``), parents before children. Each batch is one Hamilton
task (``prepare``): it reads its bronze rows and types, checks and deduplicates them
(``batch.checked``), on whichever worker the executor gives it. The driver, the tables'
only writer, commits each prepared batch as it returns (``lakehouse.runtime.commits``):
in batch order within an entity (its lane), and an entity only once its parents' lanes are
done, since its orphans are judged against their rows. The commits are the ones a serial
run makes, in the same order per table with the same watermarks (``batch.commit``), so a
run killed at any moment is redone exactly as before.

What needs silver's state is done by the driver when it commits: the parents, the
partition and grain, new keys against silver (stages 6-9). A snapshot source's batch is
diffed against silver by its worker when it is the entity's first batch of the run; a
later one is diffed by the driver, after the batch before it merged.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field

import polars as pl
from deltalake import DeltaTable
from loguru import logger

from lakehouse.core import delta
from lakehouse.core.runs import RunMode
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import Entity
from lakehouse.layers.silver import batch as stages
from lakehouse.layers.silver import plan, snapshots
from lakehouse.layers.silver.plan import (
    Batch,
    ColumnBatch,
    Watermark,
    batches_after,
    bronze_rows,
    plan_batch,
    plan_column_batch,
)
from lakehouse.layers.silver.quarantine import Policy


@dataclass(frozen=True)
class BatchWork:
    """One batch of an entity to prepare, and its place among the run's commits."""

    entity: Entity
    batch: Batch | ColumnBatch
    lake: Location
    run_id: str
    policy: Policy
    position: int  # 0, 1, ... within the entity's batches of this run
    last: bool  # the entity's last batch of this run
    waits_for: tuple[str, ...]  # parent entities with batches in this run: committed first
    order: int  # the place of its commit in a serial run

    @property
    def app_id(self) -> str:
        return f"silver:{self.entity.name}"


def incremental(mode: RunMode) -> bool:
    """A run of the next batches: the one kind whose batches are tasks (a plan, a backfill of
    dates, a full refresh and a replay run in the driver, ``silver.refresh``)."""
    return not (mode.plan or mode.date_range or mode.full_refresh or mode.replay)


def planned(
    entities: list[Entity],
    lake: Location,
    run_id: str,
    max_cells: int,
    watermark: Watermark,
    policy: Policy,
) -> list[BatchWork]:
    """Every pending batch of ``entities`` (in dependency order), in the order a serial run
    commits them."""
    work: list[BatchWork] = []
    with_batches: set[str] = set()
    for entity in entities:
        batches = pending(entity, lake, max_cells, watermark)
        waits = tuple(p for p in _parents(entity) if p in with_batches)
        last = len(batches) - 1
        work += [
            BatchWork(entity, b, lake, run_id, policy, i, i == last, waits, len(work) + i)
            for i, b in enumerate(batches)
        ]
        if batches:
            with_batches.add(entity.name)
            logger.debug(f"silver/{entity.name}: {len(batches)} batches planned")
    return work


def _parents(entity: Entity) -> tuple[str, ...]:
    return (entity.parent.entity,) if entity.parent else ()


def pending(
    entity: Entity, lake: Location, max_cells: int, watermark: Watermark
) -> list[Batch | ColumnBatch]:
    """The entity's batches from its watermark to bronze's newest version (a column
    watermark: one window)."""
    bronze = lake.child("bronze", entity.source)
    target, quarantined = lake.child("silver", entity.name), lake.child("_quarantine", entity.name)
    app_id = f"silver:{entity.name}"
    if watermark.kind == "column":
        one = plan_column_batch(bronze, target, quarantined, app_id, watermark)
        return [one] if one is not None else []
    table = delta.open_table(bronze)
    first = plan_batch(bronze, target, quarantined, app_id, max_cells, entity, table)
    if first is None:
        return []
    return [first, *batches_after(first, table, max_cells, entity)]


@dataclass
class PreparedBatch:
    """A batch as its task returns it: its rows checked (or, for the driver to diff first,
    only read), and once committed, the commits' results."""

    work: BatchWork
    read: int  # bronze rows read
    diff: snapshots.Diff
    rows: stages.Checked | None  # None: the driver diffs ``diff.changed`` and checks it
    prepared_in: str  # host/pid of the process that prepared it
    results: list[delta.WriteResult] | None = field(default=None)
    early: bool = True  # the driver commits it as its task returns
    hashes: pl.Series | None = None  # only its rows' hashes read: rows read if one is new

    @property
    def lane(self) -> str:
        return self.work.entity.name

    @property
    def position(self) -> int:
        return self.work.position

    @property
    def last(self) -> bool:
        return self.work.last

    @property
    def waits_for(self) -> tuple[str, ...]:
        return self.work.waits_for

    def commit(self, opened: dict) -> None:
        """Stages 6-9 in the driver, once; ``opened``: the run's cache (parents' keys)."""
        if self.results is not None:
            return
        work, entity = self.work, self.work.entity
        diff, rows = self.diff, self.rows
        if rows is None:  # diffed now, after the entity's batch before it merged
            target = work.lake.child("silver", entity.name)
            held = opened.setdefault(f"silver state of {entity.name}", snapshots.Held())
            if self.hashes is not None:  # not the last batch: may commit nothing
                if snapshots.all_known(self.hashes, entity, target, held):
                    return self._commits_nothing()
                bronze = work.lake.child("bronze", entity.source)
                diff, self.hashes = snapshots.Diff(bronze_rows(bronze, work.batch)), None
            diff = snapshots.diff(diff.changed, entity, target, held)
            if stages.changes_nothing(diff, work.batch, work.last):
                return self._commits_nothing()
            rows = stages.checked(diff.changed, entity, work.policy)
        parents = _parent_keys(work.lake, entity, opened)
        keys = opened.setdefault(f"silver keys of {entity.name}", {})
        self.results = stages.commit(
            entity, work.batch, work.lake, work.app_id, work.run_id, parents, work.policy,
            self.read, diff, rows, keys, work.last,
        )  # fmt: skip
        self.diff, self.rows = snapshots.Diff(pl.DataFrame()), None  # its rows are in silver
        if (held := opened.get(f"silver state of {entity.name}")) is not None:
            held.committed()
        if work.last:  # the entity's state is held no longer than its batches need it
            opened.pop(f"silver state of {entity.name}", None)
            opened.pop(f"silver keys of {entity.name}", None)

    def _commits_nothing(self) -> None:
        self.results = [stages.nothing_committed(self.work.entity, self.work.lake, self.read)]
        self.diff, self.hashes = snapshots.Diff(pl.DataFrame()), None


_BRONZE: dict[tuple[str, str], DeltaTable] = {}  # (run, URI): bronze as this process opened it
_BRONZE_LOCK = threading.Lock()


def _bronze_of_run(work: BatchWork, bronze: Location) -> DeltaTable | None:
    """Bronze opened once per run and process, not once per batch (at SF 10 a table of 400
    commits took 15 ms to open, 340 times a catch-up). Every batch of a run was planned at or
    before the version opened here, and a run's batches only read what those versions
    added; an opened table is never changed, so threads can share it."""
    if isinstance(work.batch, ColumnBatch):
        return None  # read at its own version
    key = (work.run_id, bronze.uri)
    with _BRONZE_LOCK:
        table = _BRONZE.get(key)
        if table is None or table.version() < work.batch.through:
            table = plan.existing(bronze)
            for stale in [k for k in _BRONZE if k[0] != work.run_id]:
                del _BRONZE[stale]  # an earlier run's, in a long-lived worker
            _BRONZE[key] = table
        return table


def _hashes_only(work: BatchWork, bronze: Location, table) -> pl.Series | None:
    """A later snapshot batch's row hashes as bronze keeps them (``row_hashes``), when they
    may spare reading its rows: not the entity's last batch of the run (that one commits
    the watermark), of an entity that reads hashes; None otherwise, or without them."""
    entity, batch = work.entity, work.batch
    if work.last or table is None or not isinstance(batch, Batch):
        return None
    if not snapshots.reads_hashes(entity):
        return None
    return plan.bronze_hashes(bronze, batch, table, entity)


def prepare(work: BatchWork) -> PreparedBatch:
    """Stages 1-5 of a batch, wherever the executor runs it: read, diff a snapshot (when
    silver cannot change before the batch commits), type, check, deduplicate."""
    entity = work.entity
    bronze = work.lake.child("bronze", entity.source)
    table = _bronze_of_run(work, bronze)
    where = f"{socket.gethostname()}/{os.getpid()}"
    if entity.snapshot and work.position > 0:  # silver changes first: diffed by the driver
        hashes = _hashes_only(work, bronze, table)
        if hashes is not None:
            empty = snapshots.Diff(pl.DataFrame())
            return PreparedBatch(work, hashes.len(), empty, None, where, hashes=hashes)
        raw = bronze_rows(bronze, work.batch, table)
        return PreparedBatch(work, raw.height, snapshots.Diff(raw), None, where)
    raw = bronze_rows(bronze, work.batch, table)
    diff = snapshots.diff(raw, entity, work.lake.child("silver", entity.name))
    return PreparedBatch(
        work, raw.height, diff, stages.checked(diff.changed, entity, work.policy), where
    )


def parent_keys(lake: Location, entity: Entity) -> pl.Series | None:
    """The keys of the entity's parent in silver: one narrow column; None for an entity
    without a parent."""
    if entity.parent is None:
        return None
    key = entity.parent.key
    table = delta.open_table(lake.child("silver", entity.parent.entity))
    if table is None:
        return pl.Series(key, [], entity.columns[entity.parent.column])
    return delta.frame(table.to_pyarrow_dataset().to_table(columns=[key]))[key]


def _parent_keys(lake: Location, entity: Entity, opened: dict) -> pl.Series | None:
    """The parent's keys in silver, read once per run (its lane is done when this runs)."""
    if entity.parent is None:
        return None
    cached = f"silver parent keys of {entity.name}"
    if cached not in opened:
        opened[cached] = parent_keys(lake, entity)
    return opened[cached]


def run_in_driver(planned: list[BatchWork]) -> list[delta.WriteResult]:
    """Each batch prepared and committed in turn, here (a run outside the pipeline's tasks)."""
    opened: dict = {}
    results: list[delta.WriteResult] = []
    for one in planned:
        prepared = prepare(one)
        prepared.commit(opened)
        results += prepared.results or []
        if one.position:  # a catch-up's progress; one batch is the summary's news
            logger.info(f"silver/{one.entity.name}: {one.position + 1} batches done ({one.batch})")
    return results


def committed(prepared: list[PreparedBatch]) -> list[delta.WriteResult]:
    """The results of a run's batches, in commit order; a batch the driver did not commit as
    it returned (no runtime adapter) is committed here, in that order."""
    opened: dict = {}
    results: list[delta.WriteResult] = []
    for one in sorted(prepared, key=lambda p: p.work.order):
        one.commit(opened)
        results += one.results or []
    return results


def where_prepared(prepared: list[PreparedBatch]) -> str:
    """``12 batches prepared in 2 processes``: where a run's batches ran."""
    driver = f"{socket.gethostname()}/{os.getpid()}"
    places = {p.prepared_in for p in prepared}
    count = f"{len(places)} process{'es' if len(places) > 1 else ''}"
    return f"{len(prepared)} batches prepared in {count}" + (
        " (the driver)" if places == {driver} else ""
    )
