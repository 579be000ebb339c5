"""Quarantine report: recent rejected rows and unreadable files, counted by table and rule.

Upstream: ``lake_root/_quarantine/<table>`` (rows silver rejected) and
``lake_root/_quarantine/_files`` (landing files bronze could not read). Output: a table
printed on the terminal; nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse.core import delta, settings
from lakehouse.core.settings import Positive
from lakehouse.core.storage import Location
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "quarantine")


def quarantine_counts(lake: Location, since_days: Positive) -> pl.DataFrame:
    """One row per (table, rule): rows quarantined in the last ``since_days`` days, newest time."""
    since = datetime.now(UTC) - timedelta(days=int(since_days))
    root = lake.child("_quarantine")
    counts = []
    if root.exists():
        for path in sorted(root.fs.ls(root.uri, detail=False)):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            table = delta.open_table(root.child(name))
            if table is None:
                continue
            rows = pl.from_arrow(table.to_pyarrow_table())
            when, rule = (
                ("recorded_at", "error") if name == "_files" else ("quarantined_at", "rule")
            )
            label = "landing files" if name == "_files" else f"silver/{name}"
            counts.append(
                rows.filter(pl.col(when) >= since)
                .group_by(pl.col(rule).alias("rule"))
                .agg(rows=pl.len(), newest=pl.col(when).max())
                .with_columns(table=pl.lit(label))
            )
    schema = {
        "table": pl.String,
        "rule": pl.String,
        "rows": pl.UInt32,
        "newest": pl.Datetime("us", "UTC"),
    }
    if not counts:
        return pl.DataFrame(schema=schema)
    return pl.concat(counts).select(list(schema)).sort("table", "rule")


def quarantine_report(quarantine_counts: pl.DataFrame, since_days: int) -> str:
    """The counts as a readable table, printed."""
    with pl.Config(tbl_rows=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        text = f"Quarantined in the last {since_days} days:\n{quarantine_counts}"
    print(text)
    return text
