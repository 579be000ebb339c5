"""Quarantine: where rejected rows go, in what shape, and how many a batch may have.

``_quarantine/<entity>`` holds every row silver rejected, with its rule, a readable reason,
the row as it arrived (JSON text), where it came from and the run that rejected it. A row's
``row_key`` (table, source file, row text, rule) identifies it across runs, so a batch that
is redone, or a window read twice, never quarantines the same row twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from loguru import logger

from lakehouse import delta
from lakehouse.storage import Location

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


def is_new(quarantine: Location, rows: pl.DataFrame) -> pl.Series:
    """Mask of the quarantine ``rows`` whose ``row_key`` the quarantine table lacks."""
    table = delta.open_table(quarantine)
    if table is None or rows.is_empty():
        return pl.Series("is_new", [True] * rows.height, pl.Boolean)
    known = pl.from_arrow(table.to_pyarrow_dataset().to_table(columns=["row_key"]))["row_key"]
    return ~rows["row_key"].is_in(known.implode())


def not_yet_quarantined(quarantine: Location, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` less those whose ``row_key`` the quarantine table already holds."""
    return rows.filter(is_new(quarantine, rows))


def append(quarantine: Location, rows: pl.DataFrame, properties) -> delta.WriteResult:
    """Quarantined rows appended in one commit with the batch's watermark."""
    data = rows.to_arrow()
    version = delta.append(quarantine, data, properties)
    return delta.WriteResult(quarantine.name, quarantine.uri, "append", data.num_rows, version)
