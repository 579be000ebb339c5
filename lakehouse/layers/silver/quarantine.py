"""Quarantine: where rejected rows go, in what shape, and how many a batch may have.

``_quarantine/<entity>`` holds every row silver rejected, with its rule, a readable reason,
the row as it arrived (JSON text), where it came from and the run that rejected it. A row's
``row_key`` (table, source file relative to the landing root, the values it arrived with in
the declared columns, rule) identifies it across runs, so a batch that is redone, a window
read twice, a file ingested again or a full refresh never quarantines the same row twice,
whatever columns bronze gained in between.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow.compute as pc
from loguru import logger

from lakehouse.core import delta
from lakehouse.core.settings import ConfigError
from lakehouse.core.storage import Location

QUARANTINE_SCHEMA = pl.Schema(
    {
        "table": pl.String(),
        "rule": pl.String(),
        "reason": pl.String(),
        "row": pl.String(),
        "source_file": pl.String(),
        "bronze_version": pl.Int64(),
        "run_id": pl.String(),
        "quarantined_at": pl.Datetime("us", "UTC"),
        "row_key": pl.String(),
        "replayed_at": pl.Datetime("us", "UTC"),  # set once a replay merged the row into silver
    }
)


DROP_COLUMNS = ("_commit_version", "_source_file")  # one landing file, as one commit took it
OVER_BUDGET = "error_budget"


@dataclass(frozen=True)
class Policy:
    """What silver does with invalid rows (``on_invalid`` and ``max_invalid_fraction`` in YAML).

    The error budget is judged per drop (one landing file as one bronze commit took it, or
    one pull), so a bad drop never holds later good ones hostage. quarantine: invalid rows go
    to quarantine; a drop above the budget goes there whole, its valid rows under the rule
    ``error_budget`` (``replay`` takes them once the drop is accepted). warn: invalid rows
    go to quarantine, a drop above the budget only warns. fail: any invalid row fails the
    batch before anything is committed. Superseded duplicates are not invalid; orphans are
    (and fail a batch under fail) but do not count against a drop's budget: they say what the
    parent lacks, not what is wrong with the drop.
    """

    on_invalid: str = "quarantine"
    max_invalid_fraction: float = 0.25

    def __post_init__(self):
        where = "conf/pipelines/silver.yml run.config"
        if self.on_invalid not in ("quarantine", "warn", "fail"):
            raise ConfigError(
                f"{where}.on_invalid: {self.on_invalid!r} is not quarantine, warn or fail"
            )
        if not 0 <= self.max_invalid_fraction <= 1:
            raise ConfigError(
                f"{where}.max_invalid_fraction: {self.max_invalid_fraction} is not in [0, 1]"
            )

    def held_drops(self, table: str, rows: pl.DataFrame, invalid: pl.DataFrame) -> pl.DataFrame:
        """The drops whose every row goes to quarantine, with ``_reason`` (quarantine policy);
        raises before any write if the policy is fail and a row is invalid.

        ``rows``: the batch's drop columns; ``invalid``: the drop columns and ``_rule`` and
        ``_reason`` of its invalid rows."""
        by = [c for c in DROP_COLUMNS if c in rows.columns]
        if invalid.is_empty():
            return pl.DataFrame(schema={**rows.select(by).schema, "_reason": pl.String})
        if self.on_invalid == "fail":
            raise ValueError(
                f"{table}: {invalid.height:,} of {rows.height:,} rows invalid; on_invalid is "
                f"fail: nothing committed. First: {invalid['_reason'][0]}"
            )
        counts = invalid.group_by([*by, "_rule"]).len().sort("_rule")
        drops = (
            rows.group_by(by)
            .len("rows")
            .join(
                counts.group_by(by).agg(
                    pl.col("len").sum().alias("invalid"),
                    pl.format("{} {}", "_rule", "len").str.join(", ").alias("rules"),
                ),
                on=by,
                nulls_equal=True,
            )
            .filter(pl.col("invalid") / pl.col("rows") > self.max_invalid_fraction)
        )
        outcome = (
            "the whole drop is held in quarantine"
            if self.on_invalid == "quarantine"
            else "its valid rows are merged (on_invalid: warn)"
        )
        drops = drops.with_columns(
            _reason=pl.format(
                "{}: {} of {} rows invalid ({}), above max_invalid_fraction "
                f"{self.max_invalid_fraction:.0%}: {outcome}",
                pl.col("_source_file") if "_source_file" in by else pl.lit(table),
                "invalid",
                "rows",
                "rules",
            )
        )
        for reason in drops["_reason"]:
            logger.warning(f"{table}: {reason}")
        if self.on_invalid == "warn":
            return drops.head(0).select(*by, "_reason")
        return drops.select(*by, "_reason")


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
    declared = rejected["_identity"] if "_identity" in rejected.columns else rows["row"]
    identity = pl.concat_str(
        [pl.col("table"), pl.col("source_file"), declared, pl.col("rule")],
        separator="\x1f",
        ignore_nulls=False,
    )
    keys = [hashlib.sha1(text.encode()).hexdigest() for text in rows.select(identity).to_series()]
    rows = rows.with_columns(row_key=pl.Series(keys, dtype=pl.String), replayed_at=pl.lit(None))
    return rows.cast(QUARANTINE_SCHEMA)


def is_new(quarantine: Location, rows: pl.DataFrame) -> pl.Series:
    """Mask of the quarantine ``rows`` whose ``row_key`` the quarantine table lacks."""
    table = delta.open_table(quarantine)
    if table is None or rows.is_empty():
        return pl.Series("is_new", [True] * rows.height, pl.Boolean)
    files = rows["source_file"]  # only the keys of the same files are read (file statistics)
    where = None if files.has_nulls() else pc.field("source_file").isin(files.unique().to_list())
    known = delta.read_where(table.to_pyarrow_dataset(), where, ["row_key"]).column("row_key")
    return ~rows["row_key"].is_in(pl.Series(known).implode())


def not_yet_quarantined(quarantine: Location, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` less those whose ``row_key`` the quarantine table already holds."""
    return rows.filter(is_new(quarantine, rows))


def append(quarantine: Location, rows: pl.DataFrame, properties) -> delta.WriteResult:
    """Quarantined rows appended in one commit with the batch's watermark."""
    data = rows.to_arrow()
    version = delta.append(quarantine, data, properties)
    by_rule = dict(rows.group_by("rule").len().sort("rule").iter_rows())
    return delta.WriteResult(
        quarantine.name, quarantine.uri, "append", data.num_rows, version, by_rule=by_rule
    )
