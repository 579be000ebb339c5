"""The silver MERGE: upsert typed rows on the entity's key, reading only their partitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from lakehouse import delta
from lakehouse.declaration import Entity
from lakehouse.storage import Location


@dataclass(frozen=True)
class Replace:
    """The target rows a rebuild replaces: partition values within ``dates`` (None: all)."""

    column: str | None = None
    dates: tuple[date, date] | None = None

    def predicate(self, alias: str = "") -> str | None:
        if self.dates is None or self.column is None:
            return None
        column = f"{alias}{self.column}"
        return f"{column} >= '{self.dates[0]}' AND {column} <= '{self.dates[1]}'"


def merge(
    target: Location,
    entity: Entity,
    rows: pl.DataFrame,
    properties,
    replace: Replace | None = None,
) -> delta.WriteResult:
    """Upsert ``rows`` on the business key, reading only the partitions they fall in.

    With ``replace`` (a backfill or full refresh), the target rows it covers that the source
    no longer has are deleted in the same commit.
    """
    data = rows.select(entity.schema.names()).to_arrow()
    table = delta.ensure_table(
        target, data.schema, [entity.partition_column] if entity.partition_column else None
    )
    before = table.version()
    delta.check_not_committed(table, properties)
    on = " AND ".join(f"t.{k} = s.{k}" for k in entity.keys)
    if entity.partition_column and rows.height:
        on += " AND t." + delta.in_list(
            entity.partition_column, rows[entity.partition_column].to_list()
        )
    changed = " OR ".join(
        f"(t.{c} IS DISTINCT FROM s.{c})" for c in entity.columns if c not in entity.keys
    )
    metrics = {}
    if rows.height:
        merger = table.merge(
            data, on, source_alias="s", target_alias="t", commit_properties=properties
        )
        merger = (
            merger.when_matched_update_all(predicate=changed) if changed else merger
        ).when_not_matched_insert_all()
        if replace is not None:
            merger = merger.when_not_matched_by_source_delete(replace.predicate("t."))
        metrics = merger.execute()
    elif replace is not None:
        table.delete(replace.predicate(), commit_properties=properties)
    table.update_incremental()
    if table.version() == before:  # nothing changed: still record the batch as done
        delta.record_watermark_only(table, properties)
    written = metrics.get("num_target_rows_inserted", 0) + metrics.get("num_target_rows_updated", 0)
    return delta.WriteResult(target.name, target.uri, "merge", written, table.version())
