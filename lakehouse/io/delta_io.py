"""Delta plugins: a Delta table as a source (another team's lake), and as a sink.

The sink keeps each mart at ``uri/<mart>``: partitioned marts have the changed partitions
replaced, keyed marts are merged on the grain keys (keys gone from the scope deleted), in
one commit that also records the gold version as the app transaction ``publish:<mart>``;
``mode: append`` instead appends each version's changed rows with ``_gold_version``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, Transaction, write_deltalake

from lakehouse.core import delta, sqltext
from lakehouse.core.storage import Location
from lakehouse.io.base import BATCH_ROWS, Change, Moved, PluginError, Sink, Source, register


@register
class DeltaSource(Source):
    """Rows of the Delta table at ``uri``, from the watermark on ``column``."""

    format = "delta"
    kind = "table"
    keys = ("uri", "column", "lookback")
    required = ("uri",)

    def describe(self) -> str:
        return f"delta:{self.spec['uri']}"

    def batches(self, column: str | None, since) -> Iterator[pa.RecordBatch]:
        location = Location.from_uri(self.spec["uri"])
        table = delta.open_table(location)
        if table is None:
            raise PluginError(f"{self.where}.uri: no Delta table at {location.uri}")
        dataset = table.to_pyarrow_dataset()
        where = None
        if column and since is not None:
            where = pc.field(column) >= pa.scalar(since, dataset.schema.field(column).type)
        for batch in dataset.to_batches(filter=where, batch_size=BATCH_ROWS):
            self.moved.count(batch)
            yield batch


@register
class DeltaSink(Sink):
    """Each mart a Delta table ``uri/<mart>``."""

    format = "delta"
    keys = ("uri", "mode")
    required = ("uri",)
    MODES = ("replace", "append")

    def __init__(self, name: str, spec: dict, where: str):
        super().__init__(name, spec, where)
        if self.spec.get("mode", "replace") not in self.MODES:
            raise PluginError(
                f"{where}.mode: {self.spec['mode']!r} is not one of {', '.join(self.MODES)}"
            )

    def location(self, table: str) -> Location:
        return Location.from_uri(self.spec["uri"]).child(table)

    def target(self, table: str) -> str:
        return self.location(table).uri

    def published_version(self, table: str) -> int | None:
        found = delta.open_table(self.location(table))
        return None if found is None else found.transaction_version(f"publish:{table}")

    def write(self, change: Change) -> Moved:
        location, moved = self.location(change.table), Moved()
        rows = pa.Table.from_batches(list(change.batches), change.schema)
        moved.count(rows)
        properties = CommitProperties(
            app_transactions=[Transaction(f"publish:{change.table}", change.version)]
        )
        if self.spec.get("mode", "replace") == "append":
            rows = rows.append_column(
                "_gold_version", pa.array([change.version] * rows.num_rows, pa.int64())
            )
            partition = [change.partition] if change.partition else None
            table = delta.ensure_table(location, rows.schema, partition)
            write_deltalake(table, rows, mode="append", commit_properties=properties)
            return moved
        if change.partition:
            table = delta.ensure_table(location, rows.schema, [change.partition])
            column = change.column
            predicate = None if column is None else sqltext.in_list(column, change.values)
            write_deltalake(
                table,
                rows,
                mode="overwrite",
                predicate=predicate,
                partition_by=[change.partition],
                commit_properties=properties,
            )
            return moved
        table = delta.ensure_table(location, rows.schema)
        before = table.version()
        column = change.column
        gone = None if column is None else sqltext.in_list(column, change.values, "t")
        (
            delta.merger(table, rows, change.keys, properties)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(gone)
            .execute()
        )
        table.update_incremental()
        if table.version() == before:  # nothing differed: still record the version
            write_deltalake(table, rows.slice(0, 0), mode="append", commit_properties=properties)
        return moved
