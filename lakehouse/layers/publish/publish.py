"""Publish: copy the gold marts to the sinks in YAML, only what changed, once per gold version.

Every sink records, with the data and in the same transaction, the gold version it holds
per mart. A publish reads that version back, asks the mart's change data feed which
partitions (or keys) changed since, and has the sink replace just those with the rows of the
current version; a sink that holds nothing yet (or whose version the feed no longer covers)
gets the whole mart. A sink already at the current version is skipped, so rerunning a
publish, or a publish killed half-way, never copies a version twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from loguru import logger

from lakehouse.core import delta, fence
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import Entity
from lakehouse.io import BATCH_ROWS, Change, Sink


@dataclass(frozen=True)
class Mart:
    """A gold table as published: its Delta table, grain keys and partition column."""

    name: str
    location: Location
    table: DeltaTable
    keys: tuple[str, ...]
    partition: str | None

    @property
    def scope_column(self) -> str | None:
        """The column a change is scoped by: the partition, else a single grain key."""
        return self.partition or (self.keys[0] if len(self.keys) == 1 else None)


def grain(contract) -> tuple[str, ...]:
    """The mart's unique columns, from its contract: a declaration or a pandera model."""
    if contract is None:
        return ()
    if isinstance(contract, Entity):
        return contract.keys
    model = contract
    unique = getattr(getattr(model, "Config", None), "unique", None) or getattr(
        model, "unique", None
    )
    if unique:
        return tuple([unique] if isinstance(unique, str) else unique)
    fields = model.to_schema().columns
    return tuple(column for column, spec in fields.items() if spec.unique)


def marts(lake: Location, names: list[str] | None, where: str, declared: dict) -> list[Mart]:
    """The gold marts to publish (``names``, or every table under ``gold/``), with their
    grain from the ``declared`` marts (``gold.Mart`` by name)."""
    gold = lake.child("gold")
    found = gold.folders()
    wanted = names or found
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ValueError(
            f"{where}: no gold table {', '.join(missing)} in {gold.uri} "
            f"(found: {', '.join(found) or 'none: run gold first'})"
        )
    chosen = []
    for name in wanted:
        location = gold.child(name)
        table = delta.open_table(location)
        if table is None:
            raise ValueError(f"{where}: gold/{name} in {gold.uri} is not a Delta table")
        partitions = table.metadata().partition_columns
        if name not in declared:
            logger.warning(
                f"publish: gold/{name} is not declared by any enabled dataset: its grain is "
                "unknown, so changes are copied by partition (or the whole mart)"
            )
        keys = grain(getattr(declared.get(name), "contract", None))
        chosen.append(Mart(name, location, table, keys, partitions[0] if partitions else None))
    return chosen


def changed_values(mart: Mart, published: int) -> tuple | None:
    """Values of the scope column in rows changed after ``published`` (None: republish whole)."""
    column = mart.scope_column
    if column is None:
        return None
    try:
        feed = mart.table.load_cdf(
            starting_version=published + 1, ending_version=mart.table.version(), columns=[column]
        )
        values = pa.table(feed).column(column).unique().to_pylist()
    except Exception as error:  # vacuumed or never recorded: the whole mart, once
        logger.warning(
            f"publish: {mart.name}: no change feed after version {published} ({error}); "
            "publishing the whole mart"
        )
        return None
    return tuple(sorted(v for v in values if v is not None))


def rows(mart: Mart, column: str | None, values: tuple) -> Iterator[pa.RecordBatch]:
    """The mart's current rows in the scope, streamed."""
    if column and not values:
        return
    dataset = mart.table.to_pyarrow_dataset()
    if column is None or column in mart.table.metadata().partition_columns:
        where = pc.field(column).isin(pa.array(values)) if column else None
        yield from dataset.to_batches(filter=where, batch_size=BATCH_ROWS)  # partitions pruned
        return
    # keys: filtered here, not in the scan (which cannot compare the string_view text that
    # delta-rs's MERGE writes with a literal: lakehouse.core.delta.read_where)
    wanted = pa.array(values, dataset.schema.field(column).type)
    for batch in dataset.to_batches(batch_size=BATCH_ROWS):
        kept = batch.filter(pc.is_in(batch.column(column), value_set=wanted))
        if kept.num_rows:
            yield kept


def plan(mart: Mart, sink: Sink, whole: bool = False) -> Change | None:
    """What ``sink`` needs to hold ``mart``'s current version (None: it already does);
    ``whole``: all of it, whatever the sink holds."""
    version, published = mart.table.version(), sink.published_version(mart.name)
    if whole:
        published = None
    elif published == version:
        return None
    values = None
    if published is not None and published < version:
        values = changed_values(mart, published)
    elif published is not None:
        logger.warning(
            f"publish: {sink.describe()} holds {mart.name} version {published}, newer than "
            f"gold's {version} (gold rebuilt?): publishing the whole mart"
        )
    column = None if values is None else mart.scope_column
    schema = mart.table.schema().to_arrow()
    schema = pa.schema(schema) if not isinstance(schema, pa.Schema) else schema
    return Change(
        mart.name,
        version,
        column,
        values or (),
        mart.keys,
        mart.partition,
        schema,
        rows(mart, column, values or ()),
    )


def publish(mart: Mart, sink: Sink, whole: bool = False) -> delta.WriteResult:
    """Bring ``sink`` to ``mart``'s current version (nothing when it is there already)."""
    change = plan(mart, sink, whole)
    name = f"{sink.name}/{mart.name}"
    if change is None:
        logger.debug(f"publish: {name} already holds gold version {mart.table.version()}")
        return delta.WriteResult(name, mart.location.uri, "none", 0, mart.table.version())
    scope = "whole mart" if change.whole else f"{len(change.values)} {change.column} value(s)"
    fence.check()  # a run that lost its lease publishes nothing
    moved = sink.write(change)
    logger.debug(
        f"publish: {name} <- gold version {change.version}, {scope}: "
        f"{moved.rows:,} rows, {moved.bytes:,} bytes ({sink.describe()})"
    )
    return delta.WriteResult(
        name,
        mart.location.uri,
        "publish",
        moved.rows,
        change.version,
        moved.rows,
        moved.bytes,
        inputs=(mart.location.uri,),
        target=sink.target(mart.name),
    )
