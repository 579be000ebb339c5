"""Silver edges: read the bronze rows not yet processed, quarantine the bad, MERGE the good.

State per entity (app id ``silver:<entity>``), all in Delta logs:
  * the silver table's newest commit says which bronze version it has merged up to;
  * the quarantine table's commit for the same batch is written *first* and fixes the
    batch's bronze range, so a run killed between the two commits redoes the MERGE over
    exactly the same rows, and never quarantines a row twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger

from lakehouse import conform, contracts, delta
from lakehouse.runs import RunMode
from lakehouse.storage import Location
from lakehouse.tpch import FIRST_DATE, LAST_DATE, Entity

QUARANTINE_SCHEMA = pl.Schema(
    {
        "table": pl.String,
        "rule": pl.String,
        "reason": pl.String,
        "row": pl.String,
        "source_file": pl.String,
        "bronze_version": pl.Int64,
        "run_id": pl.String,
        "quarantined_at": pl.Datetime("us", "UTC"),
        "row_key": pl.String,
        "replayed_at": pl.Datetime("us", "UTC"),  # set once a replay merged the row into silver
    }
)


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

    @property
    def watermark(self) -> dict:
        return {"column": self.column, "since": self.since, "max": self.upto}

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
    def from_config(cls, spec: dict) -> Watermark:
        where = "conf/pipelines/silver.yml run.config.watermark"
        unknown = set(spec) - {"kind", "column", "lookback_days", "columns"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        mark = cls(**spec)
        if mark.kind not in ("version", "column"):
            raise ValueError(f"{where}.kind: {mark.kind!r} is not one of version, column")
        if mark.kind == "column" and not mark.column:
            raise ValueError(f"{where}: kind column needs a 'column' (e.g. _ingested_at)")
        return mark


@dataclass(frozen=True)
class Policy:
    """What silver does with invalid rows (``on_invalid`` and ``max_invalid_fraction`` in YAML).

    quarantine: invalid rows go to quarantine; above the budget the batch fails, nothing
    committed. warn: the same, but above the budget only a warning. fail: any invalid row
    fails the batch before anything is committed. Superseded duplicates are not invalid.
    """

    on_invalid: str = "quarantine"
    max_invalid_fraction: float = 0.25

    def __post_init__(self):
        where = "conf/pipelines/silver.yml run.config"
        if self.on_invalid not in ("quarantine", "warn", "fail"):
            raise ValueError(
                f"{where}.on_invalid: {self.on_invalid!r} is not quarantine, warn or fail"
            )
        if not 0 <= self.max_invalid_fraction <= 1:
            raise ValueError(
                f"{where}.max_invalid_fraction: {self.max_invalid_fraction} is not in [0, 1]"
            )

    def check(self, table: str, rows_read: int, rejected: pl.DataFrame) -> None:
        """Raise before any write if this batch's invalid rows break the policy."""
        invalid = rejected.filter(pl.col("_rule") != "duplicate")
        if invalid.is_empty():
            return
        by_rule = ", ".join(
            f"{r} {n}" for r, n in invalid.group_by("_rule").len().sort("_rule").iter_rows()
        )
        fraction = invalid.height / max(rows_read, 1)
        summary = (
            f"{table}: {invalid.height:,} of {rows_read:,} rows invalid ({fraction:.1%}: {by_rule})"
        )
        if self.on_invalid == "fail":
            raise ValueError(
                f"{summary}; on_invalid is fail: nothing committed. First: {invalid['_reason'][0]}"
            )
        if fraction > self.max_invalid_fraction:
            message = f"{summary}, above max_invalid_fraction {self.max_invalid_fraction:.0%}"
            if self.on_invalid == "quarantine":
                raise ValueError(f"{message}: nothing committed")
            logger.warning(message)


def _rows_per_version(bronze_table, after: int, through: int) -> list[tuple[int, int]]:
    """(version, rows appended) of the bronze commits in ``(after, through]``, oldest first."""
    sizes = []
    for commit in bronze_table.history(limit=through - after):
        if after < commit["version"] <= through:
            mark = json.loads(commit.get(delta.WATERMARK_KEY, "{}"))
            sizes.append((commit["version"], int(mark.get("rows", 0))))
    return sorted(sizes)


def _through(sizes: list[tuple[int, int]], max_rows: int) -> int:
    """The last version of the longest prefix of ``sizes`` within ``max_rows`` (at least one)."""
    total, last = 0, sizes[0][0]
    for version, rows in sizes:
        if total and total + rows > max_rows:
            break
        total, last = total + rows, version
    return last


def plan_batch(
    bronze: Location, target: Location, quarantine: Location, app_id: str, max_rows: int
) -> Batch | None:
    """The next batch for ``app_id``, or None when bronze has nothing new.

    A batch holds at most ``max_rows`` bronze rows, unless one bronze commit alone has more.
    """
    bronze_table = delta.open_table(bronze)
    if bronze_table is None:
        return None
    done = delta.last_watermark(delta.open_table(target), app_id) or {
        "batch": 0,
        "bronze_through": -1,
    }
    pending = delta.last_watermark(delta.open_table(quarantine), app_id)
    if pending and pending["batch"] == done["batch"] + 1:
        return Batch(pending["batch"], done["bronze_through"], pending["bronze_through"], True)
    current = bronze_table.version()
    if current <= done["bronze_through"]:
        return None
    through = _through(_rows_per_version(bronze_table, done["bronze_through"], current), max_rows)
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
            pending["batch"], pending["column"], pending["since"], pending["max"], True
        )
    since = _shifted(done["max"], mark.lookback_days) if done["max"] else None
    dataset = table.to_pyarrow_dataset()
    column = mark.column_for(bronze.uri.rsplit("/", 1)[-1])
    if column not in dataset.schema.names:
        raise ValueError(f"silver.yml watermark column {column!r} is not a column of {bronze.name}")
    dtype = dataset.schema.field(column).type
    window = None if since is None else pc.field(column) >= _as_column_value(since, dtype)
    upto = _newest(pl.from_arrow(dataset.to_table(columns=[column], filter=window)).to_series())
    if upto is None:
        return None
    return ColumnBatch(done["batch"] + 1, column, since, upto, False)


def bronze_rows(bronze: Location, batch: Batch | ColumnBatch) -> pl.DataFrame:
    """The batch's bronze rows (version batches also carry ``_commit_version``)."""
    table = delta.open_table(bronze)
    if isinstance(batch, ColumnBatch):
        dataset = table.to_pyarrow_dataset()
        dtype = dataset.schema.field(batch.column).type
        column = pc.field(batch.column)
        window = column <= _as_column_value(batch.upto, dtype)
        if batch.since is not None:
            window = window & (column >= _as_column_value(batch.since, dtype))
        return pl.from_arrow(dataset.to_table(filter=window))
    changes = table.load_cdf(starting_version=batch.after + 1, ending_version=batch.through)
    rows = pl.from_arrow(pa.table(changes))
    return rows.filter(pl.col("_change_type") == "insert").drop("_change_type", "_commit_timestamp")


def split(
    raw: pl.DataFrame, entity: Entity, parent_keys: pl.Series | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, one per key, partitioned; rejected rows with rule and reason)."""
    missing = conform.missing_columns(raw.columns, entity)
    if missing:
        raise ValueError(f"bronze/{entity.name} lacks required column(s) {', '.join(missing)}")
    table = f"silver/{entity.name}"
    rows = conform.conformed(raw, entity)
    broken = rows.filter(pl.col("_rule").is_not_null())
    rejected = [conform.with_reasons(broken, entity).with_columns(_raw=conform.raw_text(broken))]
    parsed = rows.filter(pl.col("_rule").is_null()).drop("_rule").with_row_index("__row")
    del rows
    rules = contracts.SILVER_ROWS[entity.name]
    failed = contracts.failures(parsed.select(list(entity.columns)), rules, table)
    against_contract = parsed.join(failed, on="__row")
    rejected.append(against_contract.with_columns(_raw=conform.raw_text(against_contract)))
    valid = conform.without_raw(parsed.join(failed, on="__row", how="anti")).drop("__row")
    valid, duplicates = conform.deduplicated(valid, entity)
    rejected.append(duplicates.with_columns(_raw=conform.raw_text(duplicates)))
    if parent_keys is not None and entity.parent:
        foreign_key, parent, _ = entity.parent
        orphan = conform.orphans(valid, foreign_key, parent_keys)
        reason = pl.format(f"{foreign_key}={{}} has no row in silver/{parent}", pl.col(foreign_key))
        orphans = valid.filter(orphan).with_columns(_rule=pl.lit("orphan"), _reason=reason)
        rejected.append(orphans.with_columns(_raw=conform.raw_text(orphans)))
        valid = valid.filter(~orphan)
    rejected = pl.concat(rejected, how="diagonal_relaxed").drop("__row", strict=False)
    contracts.check_table(valid.select(list(entity.columns)), contracts.SILVER[entity.name], table)
    return conform.with_partition(valid, entity), rejected


def quarantine_rows(rejected: pl.DataFrame, table: str, run_id: str) -> pl.DataFrame:
    """Rejected rows in the quarantine table's shape."""
    now = datetime.now(UTC)
    version = pl.col("_commit_version") if "_commit_version" in rejected.columns else pl.lit(None)
    rows = rejected.select(
        table=pl.lit(table),
        rule=pl.col("_rule"),
        reason=pl.col("_reason"),
        row=pl.col("_raw"),
        source_file=pl.col("_source_file"),
        bronze_version=version.cast(pl.Int64),
        run_id=pl.lit(run_id),
        quarantined_at=pl.lit(now, pl.Datetime("us", "UTC")),
    )
    identity = pl.concat_str(["table", "source_file", "row", "rule"], separator="\x1f")
    keys = [hashlib.sha1(text.encode()).hexdigest() for text in rows.select(identity).to_series()]
    rows = rows.with_columns(row_key=pl.Series(keys, dtype=pl.String), replayed_at=pl.lit(None))
    return rows.cast(QUARANTINE_SCHEMA)


@dataclass(frozen=True)
class Replace:
    """The target rows a rebuild replaces: ``column`` within ``dates`` (no dates: all rows)."""

    column: str | None = None
    dates: tuple[date, date] | None = None

    def predicate(self, alias: str = "") -> str | None:
        if self.dates is None:
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
        merger = (
            table.merge(data, on, source_alias="s", target_alias="t", commit_properties=properties)
            .when_matched_update_all(predicate=changed)
            .when_not_matched_insert_all()
        )
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


def refresh(
    entity: Entity,
    lake: Location,
    run_id: str,
    max_rows_per_batch: int,
    mode: RunMode,
    watermark: Watermark = Watermark(),
    parent_keys: pl.Series | None = None,
    policy: Policy = Policy(),
) -> list[delta.WriteResult]:
    """Bring silver/<entity> up to date with bronze, as ``mode`` says.

    Incremental: every pending bronze batch. Backfill or full refresh: the bronze rows of the
    date range (all rows for a full refresh), re-validated and merged, deleting silver rows
    of the range that bronze no longer supports. Plan: log what would be read, write nothing.
    """
    bronze = lake.child("bronze", entity.name)
    target = lake.child("silver", entity.name)
    quarantine = lake.child("_quarantine", entity.name)
    app_id = f"silver:{entity.name}"
    if mode.replay:
        return replay(entity, lake, run_id, parent_keys)
    if mode.date_range or mode.full_refresh:
        return _rebuild(entity, bronze, target, quarantine, run_id, mode, parent_keys, policy)
    if mode.plan:
        _log_plan(entity, bronze, target, quarantine, app_id, max_rows_per_batch)
        return []

    def process(batch) -> list[delta.WriteResult]:
        return _process(
            entity, batch, bronze, target, quarantine, app_id, run_id, parent_keys, policy
        )

    results = []
    if watermark.kind == "column":
        batch = plan_column_batch(bronze, target, quarantine, app_id, watermark)
        results = process(batch) if batch is not None else []
    else:
        while batch := plan_batch(bronze, target, quarantine, app_id, max_rows_per_batch):
            results += process(batch)
    if not results:
        logger.info(f"silver/{entity.name}: up to date")
    return results


@dataclass(frozen=True)
class SilverRun:
    """One silver run's settings: lake, run id, batch size, mode and watermark."""

    lake: Location
    run_id: str
    max_rows_per_batch: int
    mode: RunMode
    watermark: Watermark
    policy: Policy = Policy()

    def refresh(
        self, entity: Entity, parent_keys: pl.Series | None = None
    ) -> list[delta.WriteResult]:
        return refresh(
            entity,
            self.lake,
            self.run_id,
            self.max_rows_per_batch,
            self.mode,
            self.watermark,
            parent_keys,
            self.policy,
        )


def _log_plan(entity, bronze, target, quarantine, app_id, max_rows) -> None:
    batch = plan_batch(bronze, target, quarantine, app_id, max_rows)
    if batch is None:
        logger.info(f"PLAN silver/{entity.name}: up to date")
        return
    bronze_table = delta.open_table(bronze)
    current = bronze_table.version()
    sizes = _rows_per_version(bronze_table, batch.after, current)
    pending = Batch(batch.number, batch.after, current, batch.quarantined)
    months = ""
    if entity.partition:
        dates = bronze_rows(bronze, pending).get_column(entity.partition[1]).cast(pl.String)
        months = ", ".join(sorted({d[:7] for d in dates.drop_nulls() if d}))
        months = f"; {entity.partition[0]} {months}"
    logger.info(
        f"PLAN silver/{entity.name}: bronze versions {batch.after + 1}..{current}, "
        f"~{sum(rows for _, rows in sizes):,} rows{months}"
    )


def _date_ranges(entity: Entity, mode: RunMode) -> list[tuple[date, date] | None]:
    """The date ranges a backfill or full refresh rebuilds, a year at a time (None: all rows)."""
    if entity.partition is None:
        return [None]
    first, last = mode.date_range or (date.fromisoformat(FIRST_DATE), date.fromisoformat(LAST_DATE))
    return [
        (max(first, date(year, 1, 1)), min(last, date(year, 12, 31)))
        for year in range(first.year, last.year + 1)
    ]


def bronze_rows_between(
    bronze: Location, entity: Entity, dates: tuple[date, date] | None
) -> pl.DataFrame:
    """Every bronze row whose date (as landed, text) is within ``dates`` (None: every row)."""
    dataset = delta.open_table(bronze).to_pyarrow_dataset()
    if dates is None:
        return pl.from_arrow(dataset.to_table())
    column = pc.field(entity.partition[1])
    rows = dataset.to_table(filter=(column >= str(dates[0])) & (column <= str(dates[1])))
    return pl.from_arrow(rows)


def _rebuild(
    entity, bronze, target, quarantine, run_id, mode, parent_keys, policy
) -> list[delta.WriteResult]:
    if delta.open_table(bronze) is None:
        logger.info(f"silver/{entity.name}: no bronze table yet")
        return []
    app_id = f"silver:{entity.name}:rebuild"
    results = []
    for dates in _date_ranges(entity, mode):
        raw = bronze_rows_between(bronze, entity, dates)
        valid, rejected = split(raw, entity, parent_keys)
        policy.check(f"silver/{entity.name}", raw.height, rejected)
        span = f"{dates[0]}..{dates[1]}" if dates else "all rows"
        if mode.plan:
            logger.info(f"PLAN silver/{entity.name} {mode}: {span}: {raw.height:,} bronze rows")
            continue
        new_rejects = _not_yet_quarantined(
            quarantine, quarantine_rows(rejected, f"silver/{entity.name}", run_id)
        )
        mark = {"rebuilt": span}
        if new_rejects.height:
            batch = delta.last_batch(delta.open_table(quarantine), app_id) + 1
            properties = delta.commit_properties(app_id, batch, mark, run_id)
            version = delta.append(quarantine, new_rejects.to_arrow(), properties)
            results.append(
                delta.WriteResult(
                    quarantine.name, quarantine.uri, "append", new_rejects.height, version
                )
            )
        batch = delta.last_batch(delta.open_table(target), app_id) + 1
        properties = delta.commit_properties(app_id, batch, mark, run_id)
        replace = Replace(entity.partition[1] if entity.partition else None, dates)
        results.append(merge(target, entity, valid, properties, replace=replace))
        logger.info(
            f"silver/{entity.name} {mode} {span}: {raw.height} bronze rows, {valid.height} valid, "
            f"{new_rejects.height} newly quarantined"
        )
    return results


def _not_yet_quarantined(quarantine: Location, rows: pl.DataFrame) -> pl.DataFrame:
    table = delta.open_table(quarantine)
    if table is None or rows.is_empty():
        return rows
    known = pl.from_arrow(table.to_pyarrow_dataset().to_table(columns=["row_key"]))
    return rows.join(known, on="row_key", how="anti")


def _process(
    entity, batch, bronze, target, quarantine, app_id, run_id, parent_keys, policy=Policy()
):
    raw = bronze_rows(bronze, batch)
    valid, rejected = split(raw, entity, parent_keys)
    policy.check(f"silver/{entity.name}", raw.height, rejected)
    properties = delta.commit_properties(app_id, batch.number, batch.watermark, run_id)
    results = []
    if not batch.quarantined:
        rows = quarantine_rows(rejected, f"silver/{entity.name}", run_id)
        if isinstance(batch, ColumnBatch):  # windows overlap by the lookback
            rows = _not_yet_quarantined(quarantine, rows)
        data = rows.to_arrow()
        version = delta.append(quarantine, data, properties)
        results.append(
            delta.WriteResult(quarantine.name, quarantine.uri, "append", data.num_rows, version)
        )
    results.append(replace(merge(target, entity, valid, properties), rows_read=raw.height))
    logger.info(
        f"silver/{entity.name}: {batch}: {raw.height} rows read, {valid.height} valid, "
        f"{rejected.height} rejected"
    )
    return results


def replay(
    entity: Entity, lake: Location, run_id: str, parent_keys: pl.Series | None = None
) -> list[delta.WriteResult]:
    """Re-process quarantined rows after a contract or upstream fix (``--inputs '{"replay":
    true}'``): rows valid now are merged into silver and marked ``replayed_at``; the others
    stay as they were. Superseded duplicates are never replayed. A replay killed between its
    MERGE and its marking is simply run again: the MERGE changes nothing the second time."""
    quarantine, target = lake.child("_quarantine", entity.name), lake.child("silver", entity.name)
    table = delta.open_table(quarantine)
    if table is None:
        return []
    delta.add_missing_columns(table, QUARANTINE_SCHEMA.to_arrow())
    table.update_incremental()
    pending = pl.from_arrow(table.to_pyarrow_table()).filter(
        (pl.col("rule") != "duplicate") & pl.col("replayed_at").is_null()
    )
    if pending.is_empty():
        logger.info(f"silver/{entity.name}: nothing to replay")
        return []
    raw = pl.DataFrame([json.loads(text) for text in pending["row"]], infer_schema_length=None)
    raw = raw.select(pl.all().cast(pl.String)).with_columns(
        _source_file=pending["source_file"],
        _commit_version=pending["bronze_version"],
        _row_key=pending["row_key"],
    )
    valid, still_invalid = split(raw, entity, parent_keys)
    app_id = f"silver:{entity.name}:replay"
    batch = delta.last_batch(delta.open_table(target), app_id) + 1
    properties = delta.commit_properties(app_id, batch, {"replayed": valid.height}, run_id)
    results = [merge(target, entity, valid, properties)]
    if valid.height:
        marks = pa.table(
            {
                "row_key": valid["_row_key"].to_arrow(),
                "replayed_at": pa.array(
                    [datetime.now(UTC)] * valid.height, pa.timestamp("us", "UTC")
                ),
            }
        )
        table.merge(
            marks, "t.row_key = s.row_key", source_alias="s", target_alias="t"
        ).when_matched_update({"replayed_at": "s.replayed_at"}).execute()
        table.update_incremental()
        results.append(
            delta.WriteResult(
                quarantine.name, quarantine.uri, "replayed", valid.height, table.version()
            )
        )
    logger.info(
        f"silver/{entity.name}: replayed {pending.height} quarantined rows: {valid.height} merged, "
        f"{still_invalid.height} still invalid"
    )
    return results


def parent_keys(lake: Location, entity: Entity) -> pl.Series | None:
    """The keys of the entity's parent in silver (order keys for line items, customer keys
    for orders): one narrow column; None for an entity without a parent."""
    if entity.parent is None:
        return None
    _, parent, key = entity.parent
    table = delta.open_table(lake.child("silver", parent))
    if table is None:
        return pl.Series(key, [], pl.Int64)
    return pl.from_arrow(table.to_pyarrow_dataset().to_table(columns=[key]))[key]
