"""A silver batch, top to bottom.

Every batch (an incremental one, a backfill's or full refresh's range, a replay of the
quarantine) goes through the same stages, each a function of this folder, in this order:

1. **read** the bronze rows (``plan.bronze_rows``; a rebuild reads a date range);
2. **diff a snapshot**: of a snapshot source, only the rows that change something stay
   (``snapshots``);
3. **type** every declared column; rows that do not parse are rejected (``conform``);
4. **check** the declared rules and the entity's model, then the error budget per drop
   (``checks``);
5. **deduplicate**: one row per key, the latest arrival (``dedup``);
6. **check parents**: a row whose parent silver lacks is an orphan (``checks``);
7. **derive the partition** column (``conform``), and check the grain (``checks``);
8. **quarantine** the rejected rows, in a commit of their own (``quarantine``);
9. **merge** the valid rows: rows of new keys appended, the others merged on the key, in
   the batch's commit (``merge``).

Stages 3-7 are ``validated``: 3-5 (``checked``) need only the batch's rows and run where the
batch is prepared, on a worker; 6-9 (``commit``) need silver's state and run in the driver,
the tables' only writer (``lakehouse.layers.silver.work``). The commits' order and app
transactions make a batch exactly-once (``silver``'s docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl
from loguru import logger

from lakehouse.core import delta
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import Entity
from lakehouse.layers.silver import checks, conform, dedup, quarantine, snapshots
from lakehouse.layers.silver.merge import append_new, merge, split_new
from lakehouse.layers.silver.plan import Batch, ColumnBatch
from lakehouse.layers.silver.quarantine import Policy


@dataclass(frozen=True)
class Checked:
    """A batch through stages 3-5: one row per key, and the rows rejected so far."""

    unique: pl.DataFrame
    rejected: list[pl.DataFrame]


def checked(raw: pl.DataFrame, entity: Entity, policy: Policy | None = None) -> Checked:
    """Stages 3-5 (type, check, deduplicate), which need nothing but the batch's rows: they
    run where the batch is prepared, on a worker. With ``policy`` the error budget is judged
    (and ``fail`` raises before anything is written)."""
    raw = snapshots.hashed(raw, entity)  # a snapshot row's hash: of the values it arrived with
    typed, unparsed = conform.typed_rows(raw, entity)
    kept, broken = checks.against_rules(typed, entity)
    kept, held = checks.within_budget(raw, kept, [unparsed, broken], policy, entity)
    unique, duplicates = dedup.deduplicated(kept, entity)
    return Checked(unique, [unparsed, broken, held, conform.as_rejected(duplicates)])


def with_parents(
    rows: Checked, entity: Entity, parent_keys: pl.Series | None, policy: Policy | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stages 6-7 (parents, partition and grain), which need the parent's rows in silver:
    (valid rows, one per key, with their partition; rejected rows with ``_rule``, ``_reason``
    and ``_raw``)."""
    valid, orphans = checks.with_parents(rows.unique, entity, parent_keys, policy)
    valid = conform.with_partition(conform.without_raw(valid), entity)
    checks.keep_the_grain(valid, entity)
    rejected = pl.concat([*rows.rejected, orphans], how="diagonal_relaxed")
    return valid, rejected.drop("__row", strict=False)


def validated(
    raw: pl.DataFrame,
    entity: Entity,
    parent_keys: pl.Series | None,
    policy: Policy | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, one per key, with their partition; rejected rows with ``_rule``,
    ``_reason`` and ``_raw``): stages 3-7. With ``parent_keys``, orphans are found."""
    return with_parents(checked(raw, entity, policy), entity, parent_keys, policy)


def changes_nothing(diff: snapshots.Diff, batch: Batch | ColumnBatch, last: bool) -> bool:
    """Whether a batch's diff leaves nothing to check or commit: a snapshot batch, not the
    entity's last of the run, whose rows silver holds already and whose newest snapshot
    lacks no live key (the driver then skips stages 3-9; see ``commit``)."""
    gone = diff.gone is not None and not diff.gone.is_empty()
    return (
        diff.snapshot
        and diff.changed.is_empty()
        and not gone
        and not last
        and (isinstance(batch, Batch))
    )


def nothing_committed(entity: Entity, lake: Location, read: int) -> delta.WriteResult:
    """The result of a batch that commits nothing (``commit``)."""
    target = lake.child("silver", entity.name)
    return delta.WriteResult(target.name, target.uri, "none", 0, None, read)


def commit(
    entity: Entity,
    batch: Batch | ColumnBatch,
    lake: Location,
    app_id: str,
    run_id: str,
    parent_keys: pl.Series | None,
    policy: Policy,
    read: int,
    diff: snapshots.Diff,
    rows: Checked,
    held: dict | None = None,
    last: bool = True,
) -> list[delta.WriteResult]:
    """Stages 6-9 of a batch whose ``read`` bronze rows were diffed and checked: parents,
    partition and grain, then the quarantine commit and the merge commit (the driver's).
    ``held``: silver's keys read by the entity's batch before (``merge.split_new``).

    A batch that changes nothing (a snapshot seen before: no row to quarantine, merge or
    append, no key vanished) commits nothing unless it is the run's ``last`` of the entity:
    the next batch's commit carries the watermark past it. Killed before that, the rerun
    reads it again and again finds nothing to do; killed after a later batch's quarantine
    commit, the rerun plans from the watermark (that commit is not the next batch's, so
    not taken as done) and finds those rows quarantined already (``not_yet_quarantined``)."""
    bronze = lake.child("bronze", entity.source)
    target = lake.child("silver", entity.name)
    quarantined = lake.child("_quarantine", entity.name)
    valid, rejected = with_parents(rows, entity, parent_keys, policy)
    properties = delta.commit_properties(app_id, batch.number, batch.watermark, run_id)
    results = []
    if not batch.quarantined:
        found = quarantine.quarantine_rows(rejected, f"silver/{entity.name}", run_id)
        # windows overlap by the lookback; a file ingested again brings its bad rows again
        found = quarantine.not_yet_quarantined(quarantined, found)
        if found.height:  # no rejects, no commit: a rerun finds none again
            results.append(quarantine.append(quarantined, found, properties))
    logger.debug(
        f"silver/{entity.name}: {batch}: {read} rows read{diff.described(read)}, "
        f"{valid.height} valid, {rejected.height} rejected"
    )
    fresh, known = split_new(target, entity, valid, diff.current, held)
    to_merge = snapshots.with_vanished(known, diff.gone)
    if not (last or results or fresh.height or to_merge.height) and isinstance(batch, Batch):
        return [nothing_committed(entity, lake, read)]
    if fresh.height and to_merge.is_empty():  # all new keys: the append is the batch's commit
        appended = append_new(target, entity, fresh, properties, run_id, last=True)
        return [*results, replace(appended, rows_read=read, inputs=(bronze.uri,))]
    if fresh.height:  # rows of new keys need no MERGE: appended ahead of it
        appended = append_new(target, entity, fresh, properties, run_id)
        results.append(replace(appended, inputs=(bronze.uri,)))
    merged = merge(target, entity, to_merge, properties)
    results.append(replace(merged, rows_read=read, inputs=(bronze.uri,)))
    return results
