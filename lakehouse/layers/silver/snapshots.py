"""Snapshot sources: only the rows a snapshot changed are validated and merged.

A source that delivers full snapshots (a dimension export) repeats almost every row each
time. Silver keeps, beside each row of such an entity, the hash of the row as it arrived
(``_row_hash``). Before validation a batch drops the keys whose rows all carry the hash
silver already holds for that key; the keys the batch's newest snapshot lacks are kept,
flagged (``_deleted_at``) or deleted, as the entity's ``snapshot.vanished`` says.

Pure functions on Polars frames, except ``current_state`` (one narrow read of silver).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from lakehouse.core import delta, row_hashes
from lakehouse.core.frames import SortedSet, read_by_file
from lakehouse.core.storage import Location
from lakehouse.declare.declaration import DELETED_AT, ROW_HASH, Entity, Snapshot
from lakehouse.layers.silver.conform import missing_columns, typed
from lakehouse.layers.silver.dedup import ORDER_OF_ARRIVAL, latest_arrivals

VANISHED = "_vanished"  # merge source marker: the row stands for a key that vanished
SOURCE_FILE = "_source_file"


@dataclass(frozen=True)
class Diff:
    """A batch's rows against silver: the rows that change something, the live keys the
    newest snapshot lacks (None: none to act on), and silver's keys and hashes (None: not a
    snapshot source, or silver has none yet)."""

    changed: pl.DataFrame
    gone: pl.DataFrame | None = None
    current: pl.DataFrame | None = None
    snapshot: bool = False

    def described(self, read: int) -> str:
        """``, 12 unchanged, 3 vanished`` for the batch's log line."""
        unchanged = f", {read - self.changed.height} unchanged" if self.snapshot else ""
        return unchanged + (f", {self.gone.height} vanished" if self.gone is not None else "")


@dataclass
class Held:
    """Silver's state as a driver keeps it between an entity's batches: its keys and hashes
    by data file (``read_by_file``: only the files added since are read), and the live row
    hashes as a ``SortedSet``, sorted again only when the files change (most snapshots change
    little, and a batch that changes nothing changes no file)."""

    by_file: dict[str, pl.DataFrame] = field(default_factory=dict)
    files: frozenset[str] = frozenset()
    hashes: SortedSet | None = None
    unchanged: bool = False  # silver not committed to since ``hashes`` was read

    def known(self, live_state: pl.DataFrame) -> SortedSet:
        """The row hashes of ``live_state``, which was read through ``by_file``."""
        files = frozenset(self.by_file)
        if self.hashes is None or not files or files != self.files:
            self.hashes, self.files = SortedSet(live_state.get_column(ROW_HASH)), files
        return self.hashes

    def committed(self) -> None:
        """The driver committed to silver: its state is read again before it is trusted."""
        self.unchanged = False


def declared(entity: Entity) -> Snapshot:
    """The entity's ``snapshot`` declaration: the functions that need it are only called for
    a snapshot source."""
    if entity.snapshot is None:
        raise ValueError(f"silver/{entity.name} is not a snapshot source")
    return entity.snapshot


def diff(
    raw: pl.DataFrame,
    entity: Entity,
    target: Location | None,
    held: Held | None = None,
) -> Diff:
    """The diff a snapshot stage: of a snapshot source, the rows that change silver (one
    narrow read of silver's keys and hashes), and a copy a later snapshot of the batch
    repeats goes; other sources' rows all stay. ``target`` None: a rebuild, diffed against
    nothing but its own snapshots. ``held``: what the driver keeps between batches."""
    if not entity.snapshot or missing_columns(raw.columns, entity):
        return Diff(raw)  # a batch without a declared column fails when typed
    by_file = held.by_file if held is not None else None
    current = current_state(target, entity, by_file) if target is not None else None
    live_keys = live(current)
    gone = None
    if live_keys is not None and entity.snapshot.vanished != "keep" and raw.height:
        gone = vanished(raw, entity, live_keys)
    known = None
    if live_keys is not None:
        known = held.known(live_keys) if held is not None else SortedSet(live_keys[ROW_HASH])
    return Diff(changed(raw, entity, live_keys, known), gone, current, snapshot=True)


def hashed(raw: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """A snapshot source's rows with their ``_row_hash`` (already there after ``diff``)."""
    if not entity.snapshot or ROW_HASH in raw.columns:
        return raw
    return with_row_hash(raw, entity)


def with_vanished(valid: pl.DataFrame, gone: pl.DataFrame | None) -> pl.DataFrame:
    """The merge source: the valid rows, and the vanished keys marked ``_vanished``."""
    if gone is None or gone.is_empty():
        return valid
    return pl.concat(
        [valid.with_columns(pl.lit(False).alias(VANISHED)), gone], how="diagonal_relaxed"
    )


def with_row_hash(raw: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """``raw`` with the hash of each row's entity columns as they arrived (``_row_hash``,
    ``row_hashes.of``). Stable within a Polars version: after an upgrade (or from a table
    hashed the earlier way) the first snapshot counts every row as changed, once."""
    return raw.with_columns(row_hashes.of(raw, list(entity.columns)).alias(ROW_HASH))


def reads_hashes(entity: Entity) -> bool:
    """Whether silver looks at a snapshot batch's row hashes before its rows: a snapshot
    source whose vanished keys are kept (finding vanished keys needs the rows' keys), its
    hashes kept by bronze beside its rows (``row_hashes``)."""
    return entity.snapshot is not None and entity.snapshot.vanished == "keep"


def all_known(hashes: pl.Series, entity: Entity, target: Location, held: Held) -> bool:
    """Whether silver holds every one of a batch's row hashes: then none of its rows changes
    anything, and they need not be read. Silver is read again only after the driver, its
    only writer, committed to it (a run of unchanged snapshots reads it once)."""
    if not held.unchanged:
        current = live(current_state(target, entity, held.by_file))
        if current is None:
            return False
        held.known(current)
        held.unchanged = True
    return held.hashes is not None and held.hashes.contains_all(hashes)


def _typed_keys(raw: pl.DataFrame, entity: Entity) -> list[pl.Expr]:
    return [
        typed(k, entity.columns[k], raw.schema[k], entity.zones.get(k)).alias(f"__key_{k}")
        for k in entity.keys
    ]


def current_state(
    target: Location, entity: Entity, held: dict[str, pl.DataFrame] | None = None
) -> pl.DataFrame | None:
    """Every key of silver with its row hash (and partition value; ``_deleted_at`` for a
    ``soft_delete`` entity): one narrow read. None when silver has no row hashes yet (a new
    table, or one written before them).

    ``held``: the state read before, by data file, kept by a driver that diffs an entity's
    batches one after another: only the files added since are read, and the files removed
    are dropped (a snapshot's twelfth batch does not read the eleven before it again)."""
    table = delta.open_table(target)
    if table is None or ROW_HASH not in table.schema().to_arrow().names:
        return None
    columns = [*entity.keys, ROW_HASH]
    if entity.partition_column:
        columns.append(entity.partition_column)
    if declared(entity).vanished == "soft_delete":
        columns.append(DELETED_AT)
    dataset = table.to_pyarrow_dataset()
    if held is None:
        return delta.frame(dataset.to_table(columns=columns))
    return read_by_file(dataset, columns, held)


def live(current: pl.DataFrame | None) -> pl.DataFrame | None:
    """The keys of ``current_state`` not flagged as vanished."""
    if current is None or DELETED_AT not in current.columns:
        return current
    return current.filter(pl.col(DELETED_AT).is_null()).drop(DELETED_AT)


def changed(
    raw: pl.DataFrame,
    entity: Entity,
    current: pl.DataFrame | None,
    hashes: SortedSet | None = None,
) -> pl.DataFrame:
    """The raw rows (with ``_row_hash``) that change something: every row of a key whose rows
    all carry the hash silver holds for it is dropped, and so is a copy of a row that a later
    snapshot of the batch repeats (the latest stays). ``hashes``: ``current``'s row hashes,
    when already sorted.

    The work is done on a narrow frame (hash, arrival order, row number, typed keys); the
    batch itself is filtered once, in its own order.
    """
    marked = with_row_hash(raw, entity)
    order = [c for c in ORDER_OF_ARRIVAL if c in raw.columns]
    narrow = marked.select(ROW_HASH, *order).with_row_index("__row")
    if current is not None:  # the hash covers the key: a known hash is a known (key, row)
        hashes = hashes or SortedSet(current.get_column(ROW_HASH))
        known = hashes.contains(narrow.get_column(ROW_HASH))
        if known.all():  # a snapshot that changes nothing: no key to type, nothing kept
            return marked.head(0)
        keys = [f"__key_{k}" for k in entity.keys]
        narrow = narrow.with_columns(raw.select(_typed_keys(raw, entity)))
        touched = narrow.filter(~known).select(keys).unique()
        narrow = narrow.join(touched, on=keys, how="semi", nulls_equal=True)
    latest = latest_arrivals(narrow, [ROW_HASH], marked.height)  # a later snapshot's copy wins
    return marked if latest is None else marked.filter(latest)


def snapshot_of(entity: Entity) -> pl.Expr:
    """Which snapshot a row came from: the first match of ``snapshot.group`` in its file's
    name (the whole name when no group is declared)."""
    name = pl.col(SOURCE_FILE).str.split("/").list.last()
    group = declared(entity).group
    return name if group is None else pl.coalesce(name.str.extract(f"({group})"), name)


def _newest_snapshot_keys(raw: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """The typed keys of the rows of the batch's newest snapshot."""
    order = [c for c in ORDER_OF_ARRIVAL if c in raw.columns]
    arrivals = raw.select(*order, snapshot_of(entity).alias("__snapshot")).sort(order)
    newest = arrivals.get_column("__snapshot").last()
    delivered = raw.filter(snapshot_of(entity) == newest).select(_typed_keys(raw, entity))
    return delivered.rename({f"__key_{k}": k for k in entity.keys})


def _now() -> pl.Expr:
    return pl.lit(datetime.now(UTC)).dt.cast_time_unit("us").alias(DELETED_AT)


def vanished(raw: pl.DataFrame, entity: Entity, current: pl.DataFrame) -> pl.DataFrame:
    """The live silver keys (with their partition value) that the batch's newest snapshot
    lacks: rows of the merge source marked ``_vanished``."""
    delivered = _newest_snapshot_keys(raw, entity)
    gone = current.drop(ROW_HASH).join(delivered, on=list(entity.keys), how="anti")
    if declared(entity).vanished == "soft_delete":
        gone = gone.with_columns(_now())
    return gone.with_columns(pl.lit(True).alias(VANISHED))


def rebuilt(raw: pl.DataFrame, valid: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """A backfill or full refresh of a snapshot source: the valid rows of all snapshots, less
    (delete) or flagged (soft_delete) the keys the newest snapshot lacks."""
    snapshot = declared(entity)
    if snapshot.vanished == "keep" or raw.is_empty():
        return valid
    keys = list(entity.keys)
    if snapshot.vanished == "delete":
        return valid.join(_newest_snapshot_keys(raw, entity), on=keys, how="semi")
    live = _newest_snapshot_keys(raw, entity).with_columns(__live=pl.lit(True))
    flagged = valid.join(live, on=keys, how="left").with_columns(
        pl.when(pl.col("__live").is_null()).then(_now()).alias(DELETED_AT)
    )
    return flagged.drop("__live")


def group_of(file_name: str, entity: Entity) -> str:
    """``snapshot_of`` for one file name (batch planning, from the bronze commit log)."""
    frame = pl.DataFrame({SOURCE_FILE: [file_name]})
    return frame.select(snapshot_of(entity)).item()
