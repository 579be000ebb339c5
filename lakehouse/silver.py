"""Silver edges: read the bronze rows not yet processed, quarantine the bad, MERGE the good.

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
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger

from lakehouse import conform, delta, quarantine, rebuild, snapshots
from lakehouse.declaration import Entity
from lakehouse.merge import append_new, merge, split_new
from lakehouse.quarantine import Policy
from lakehouse.runs import RunMode
from lakehouse.settings import ConfigError, did_you_mean
from lakehouse.storage import Location

DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Batch:
    """Bronze versions ``(after, through]`` that batch ``number`` of an entity processes."""

    number: int
    after: int
    through: int
    quarantined: bool  # the quarantine commit of this batch already exists

    @property
    def watermark(self) -> dict:
        return {"bronze_after": self.after, "bronze_through": self.through}

    def __str__(self) -> str:
        return f"batch {self.number}, bronze versions {self.after + 1}..{self.through}"


@dataclass(frozen=True)
class ColumnBatch:
    """Bronze rows whose ``column`` is within ``[since, upto]`` (``since`` None: from the start)."""

    number: int
    column: str
    since: str | None
    upto: str
    quarantined: bool
    bronze_version: int | None = None  # the bronze snapshot read (None: the latest)

    @property
    def watermark(self) -> dict:
        mark = {"column": self.column, "since": self.since, "max": self.upto}
        return mark | {"bronze_through": self.bronze_version}

    def __str__(self) -> str:
        return f"batch {self.number}, {self.column} {self.since or '...'}..{self.upto}"


@dataclass(frozen=True)
class Watermark:
    """How silver finds the bronze rows it has not processed (``watermark`` in silver.yml)."""

    kind: str = "version"  # version: bronze commits after the last batch; column: see below
    column: str | None = None  # column kind: a monotone bronze column (``_ingested_at``, a date)
    lookback_days: int = 0  # column kind: re-read rows this many days behind the last maximum
    columns: dict[str, str] | None = None  # column kind: per-entity columns overriding ``column``

    def column_for(self, entity: str) -> str:
        return (self.columns or {}).get(entity, self.column)

    @classmethod
    def from_config(cls, spec, where: str = "conf/pipelines/silver.yml run.config.watermark"):
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping (kind, column, ...), got {spec!r}")
        unknown = set(spec) - {"kind", "column", "lookback_days", "columns"}
        if unknown:
            known = ("kind", "column", "lookback_days", "columns")
            hints = [f"{key!r}{did_you_mean(key, known)}" for key in sorted(unknown)]
            raise ConfigError(f"{where}: unknown key(s) {', '.join(hints)}")
        mark = cls(**spec)
        if mark.kind not in ("version", "column"):
            raise ConfigError(f"{where}.kind: {mark.kind!r} is not one of version, column")
        if mark.kind == "column" and not mark.column:
            raise ConfigError(f"{where}: kind column needs a 'column' (e.g. _ingested_at)")
        lookback = mark.lookback_days
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 0:
            raise ConfigError(
                f"{where}.lookback_days: expected a whole number of days >= 0, got {lookback!r}"
            )
        if mark.columns is not None and not isinstance(mark.columns, dict):
            raise ConfigError(f"{where}.columns: expected a mapping entity -> column")
        return mark


def _rows_per_version(bronze_table, after: int, through: int) -> list[tuple[int, int, list]]:
    """(version, rows appended, landing files) of the bronze commits in ``(after, through]``,
    oldest first."""
    sizes = []
    for commit in bronze_table.history(limit=through - after):
        if after < commit["version"] <= through:
            mark = json.loads(commit.get(delta.WATERMARK_KEY, "{}"))
            files = [f["name"] for f in mark.get("files", [])]
            sizes.append((commit["version"], int(mark.get("rows", 0)), files))
    return sorted(sizes)


def batch_rows(entity: Entity, max_cells: int) -> int:
    """Bronze rows per batch of ``entity``: ``max_cells`` cells, its columns wide. Memory
    follows cells, not rows: a 5-column dimension takes three times the rows of a
    16-column fact table."""
    return max(1, max_cells // len(entity.columns))


SLIVER = 8  # a commit of at most 1/8 of a batch joins the batch before it


def _through(sizes: list[tuple[int, int, list]], max_rows: int, entity: Entity) -> int:
    """The last version of the longest prefix of ``sizes`` within ``max_rows`` (at least one).

    A small commit (at most 1/``SLIVER`` of ``max_rows``) still joins a batch it would take
    up to 1/``SLIVER`` over the bound: bronze tasks end in such remainders, and each would
    otherwise be a batch of its own, with a MERGE of its own.
    For a snapshot source whose vanished keys are acted on, a cut never splits a snapshot:
    the commits that go on with the last one's snapshot come too.
    """
    whole = entity.snapshot is not None and entity.snapshot.vanished != "keep"
    total, last, groups = 0, sizes[0][0], set()
    slack = max_rows // SLIVER
    for version, rows, files in sizes:
        these = {snapshots.group_of(f, entity) for f in files} if whole else set()
        fits = total + rows <= max_rows or (rows <= slack and total + rows <= max_rows + slack)
        if total and not fits and not (these & groups):
            break
        total, last, groups = total + rows, version, these
    return last


def plan_batch(
    bronze: Location,
    target: Location,
    quarantine: Location,
    app_id: str,
    max_cells: int,
    entity: Entity,
    bronze_table=None,
) -> Batch | None:
    """The next batch for ``app_id``, or None when bronze has nothing new.

    A batch holds at most ``batch_rows(entity, max_cells)`` bronze rows, unless one bronze
    commit alone has more.
    """
    bronze_table = bronze_table or delta.open_table(bronze)
    if bronze_table is None:
        return None
    done = delta.last_watermark(delta.open_table(target), app_id) or {
        "batch": 0,
        "bronze_through": -1,
    }
    if done.get("bronze_through") is None:  # last advanced by an older column watermark
        raise ConfigError(
            f"silver/{target.name} was last advanced by a column watermark that did not record "
            "its bronze version, so kind: version cannot tell where to go on: set kind back "
            "to column, or rebuild it with --inputs '{\"full_refresh\": true}'"
        )
    current = bronze_table.version()
    if current <= done["bronze_through"]:  # so no batch is pending either: it would cover
        return None  # bronze versions after the watermark, and there are none
    pending = delta.last_watermark(delta.open_table(quarantine), app_id)
    if pending and pending["batch"] == done["batch"] + 1:
        return Batch(pending["batch"], done["bronze_through"], pending["bronze_through"], True)
    sizes = _rows_per_version(bronze_table, done["bronze_through"], current)
    through = _through(sizes, batch_rows(entity, max_cells), entity)
    return Batch(done["batch"] + 1, done["bronze_through"], through, False)


def _shifted(value: str, days: int) -> str:
    """``value`` (an ISO date or timestamp, as the watermark stores it) minus ``days``."""
    moment = datetime.fromisoformat(value) - timedelta(days=days)
    return moment.date().isoformat() if len(value) == 10 else moment.isoformat()


def _as_column_value(value: str, dtype: pa.DataType):
    return (
        pa.scalar(datetime.fromisoformat(value), dtype) if pa.types.is_timestamp(dtype) else value
    )


def _newest(values: pl.Series) -> str | None:
    """The largest value that is a real date or time (text as landed may hold '1995-02-30')."""
    if values.dtype == pl.String:
        dates = values.str.to_date("%Y-%m-%d", strict=False)
        values = (
            dates if dates.null_count() < values.len() else values.str.to_datetime(strict=False)
        )
    newest = values.max()
    return None if newest is None else newest.isoformat()


def plan_column_batch(
    bronze: Location, target: Location, quarantine: Location, app_id: str, mark: Watermark
) -> ColumnBatch | None:
    """The rows from the last maximum of the column, less the lookback, to its maximum now.

    Rows arriving later with a value below that window are not seen: that is what a column
    watermark means; widen ``lookback_days`` for late data.
    """
    table = delta.open_table(bronze)
    if table is None:
        return None
    done = delta.last_watermark(delta.open_table(target), app_id) or {"batch": 0, "max": None}
    pending = delta.last_watermark(delta.open_table(quarantine), app_id)
    if pending and pending["batch"] == done["batch"] + 1:
        return ColumnBatch(
            pending["batch"],
            pending["column"],
            pending["since"],
            pending["max"],
            True,
            pending.get("bronze_through"),
        )
    column = mark.column_for(bronze.uri.rsplit("/", 1)[-1])
    if column not in table.schema().to_arrow().names:
        raise ConfigError(
            f"conf/pipelines/silver.yml run.config.watermark: column {column!r} is not a "
            f"column of {bronze.name}"
        )
    newest = done["max"] if "max" in done else _newest_through(bronze, column, done)
    since = _shifted(newest, mark.lookback_days) if newest else None
    dataset = table.to_pyarrow_dataset()
    dtype = dataset.schema.field(column).type
    window = None if since is None else pc.field(column) >= _as_column_value(since, dtype)
    upto = _newest(pl.from_arrow(delta.read_where(dataset, window, [column])).to_series())
    if upto is None:
        return None
    return ColumnBatch(done["batch"] + 1, column, since, upto, False, table.version())


def _newest_through(bronze: Location, column: str, done: dict) -> str | None:
    """The column's newest value in the bronze rows a version watermark has processed: where
    a switch from ``kind: version`` to ``kind: column`` goes on (nothing skipped, nothing
    merged twice beyond the lookback)."""
    if done["bronze_through"] < 0:
        return None
    table = delta.open_table(bronze, version=done["bronze_through"])
    values = table.to_pyarrow_dataset().to_table(columns=[column])
    return _newest(pl.from_arrow(values).to_series())


def bronze_rows(bronze: Location, batch: Batch | ColumnBatch, table=None) -> pl.DataFrame:
    """The batch's bronze rows (version batches also carry ``_commit_version``); ``table``:
    bronze opened at or after the batch's last version (None: opened here)."""
    if isinstance(batch, ColumnBatch):
        dataset = delta.open_table(bronze, version=batch.bronze_version).to_pyarrow_dataset()
        dtype = dataset.schema.field(batch.column).type
        column = pc.field(batch.column)
        window = column <= _as_column_value(batch.upto, dtype)
        if batch.since is not None:
            window = window & (column >= _as_column_value(batch.since, dtype))
        return pl.from_arrow(delta.read_where(dataset, window))
    table = table or delta.open_table(bronze)
    files = delta.appended_files(bronze, table, batch.after, batch.through)
    if files is not None:  # plain appends: their Parquet files read as they are, 2-3x faster
        return _read_appended(bronze, table, files)
    changes = table.load_cdf(starting_version=batch.after + 1, ending_version=batch.through)
    rows = pl.from_arrow(pa.table(changes))
    return rows.filter(pl.col("_change_type") == "insert").drop("_change_type", "_commit_timestamp")


def _read_appended(bronze: Location, table, files: list[tuple[int, str]]) -> pl.DataFrame:
    """The rows of bronze data files with the version that added each (``_commit_version``),
    every column of the table's schema present (null where a file predates it)."""
    frames = [pl.from_arrow(pa.schema(table.schema().to_arrow()).empty_table())]
    for version, uri in files:
        with bronze.fs.open(uri, "rb") as handle:
            rows = pl.read_parquet(handle)
        frames.append(rows.with_columns(pl.lit(version, pl.UInt64).alias("_commit_version")))
    return pl.concat(frames, how="diagonal_relaxed")


def refresh(
    entity: Entity,
    lake: Location,
    run_id: str,
    max_cells_per_batch: int,
    mode: RunMode,
    watermark: Watermark = Watermark(),
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

    parent_keys = functools.cache(parent_keys)

    def process(batch, table=None) -> list[delta.WriteResult]:
        keys = parent_keys()
        return _process(
            entity, batch, bronze, target, quarantined, app_id, run_id, keys, policy, table
        )

    results = []
    if watermark.kind == "column":
        batch = plan_column_batch(bronze, target, quarantined, app_id, watermark)
        results = process(batch) if batch is not None else []
    else:
        done = 0
        table = delta.open_table(bronze)  # append-only: opened once, read a batch at a time
        while batch := plan_batch(
            bronze, target, quarantined, app_id, max_cells_per_batch, entity, table
        ):
            results += process(batch, table)
            done += 1
            if done > 1:  # a backfill's progress; one batch is the summary's news
                logger.info(f"silver/{entity.name}: {done} batches done ({batch})")
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
            functools.partial(parent_keys, self.lake, entity),
            self.policy,
        )


def _log_plan(entity, bronze, target, quarantine, app_id, max_cells) -> None:
    batch = plan_batch(bronze, target, quarantine, app_id, max_cells, entity)
    if batch is None:
        logger.info(f"PLAN silver/{entity.name}: up to date")
        return
    bronze_table = delta.open_table(bronze)
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


def _process(
    entity, batch, bronze, target, quarantined, app_id, run_id, parent_keys, policy, table=None
):
    raw = bronze_rows(bronze, batch, table)
    read, gone, current = raw.height, None, None
    if entity.snapshot and not conform.missing_columns(raw.columns, entity):
        current = snapshots.current_state(target, entity)
        live = snapshots.live(current)
        if live is not None and entity.snapshot.vanished != "keep" and raw.height:
            gone = snapshots.vanished(raw, entity, live)
        raw = snapshots.changed(raw, entity, live)
    valid, rejected = conform.split(raw, entity, parent_keys, policy)
    properties = delta.commit_properties(app_id, batch.number, batch.watermark, run_id)
    results = []
    if not batch.quarantined:
        rows = quarantine.quarantine_rows(rejected, f"silver/{entity.name}", run_id)
        # windows overlap by the lookback; a file ingested again brings its bad rows again
        rows = quarantine.not_yet_quarantined(quarantined, rows)
        if rows.height:  # no rejects, no commit: a rerun finds none again
            results.append(quarantine.append(quarantined, rows, properties))
    unchanged = f", {read - raw.height} unchanged" if entity.snapshot else ""
    vanished = f", {gone.height} vanished" if gone is not None else ""
    logger.debug(
        f"silver/{entity.name}: {batch}: {read} rows read{unchanged}{vanished}, "
        f"{valid.height} valid, {rejected.height} rejected"
    )
    fresh, valid = split_new(target, entity, valid, current)
    if fresh.height:  # rows of new keys need no MERGE: appended ahead of it
        appended = append_new(target, entity, fresh, properties, run_id)
        results.append(replace(appended, inputs=(bronze.uri,)))
    if gone is not None and gone.height:
        valid = pl.concat(
            [valid.with_columns(pl.lit(False).alias(snapshots.VANISHED)), gone],
            how="diagonal_relaxed",
        )
    merged = merge(target, entity, valid, properties)
    results.append(replace(merged, rows_read=read, inputs=(bronze.uri,)))
    return results


def parent_keys(lake: Location, entity: Entity) -> pl.Series | None:
    """The keys of the entity's parent in silver: one narrow column; None for an entity
    without a parent."""
    if entity.parent is None:
        return None
    key = entity.parent.key
    table = delta.open_table(lake.child("silver", entity.parent.entity))
    if table is None:
        return pl.Series(key, [], entity.columns[entity.parent.column])
    return pl.from_arrow(table.to_pyarrow_dataset().to_table(columns=[key]))[key]


def undeclared_bronze(lake: Location, declared) -> list[str]:
    """Bronze tables no declared entity reads (``declared``: the catalog)."""
    sources = {entity.source for entity in declared.entities.values()}
    return [name for name in lake.child("bronze").folders() if name not in sources]
