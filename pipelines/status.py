"""Status: per table, its last commit and age, the last run that wrote it, rows, quarantine.

Upstream: every Delta table under ``lake_root`` and the run ledger ``lake_root/_runs``.
Output: a table printed on the terminal; nothing is written. The run fails (exit code 3,
an alert through the hooks) when a table in ``freshness`` is older than its limit.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from lakehouse.core import settings
from lakehouse.core.storage import Location
from lakehouse.ops import status
from lakehouse.runtime import exit_status, integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "status")


def freshness_limits(freshness: dict) -> dict:
    """The freshness limits of the YAML, as durations."""
    where = "conf/pipelines/status.yml run.config.freshness"
    return {name: status.limit(text, f"{where}.{name}") for name, text in freshness.items()}


def table_status(lake: Location, as_of: str | None = None) -> pl.DataFrame:
    """One row per table: last commit, age in hours, last successful run, rows, quarantined.
    Ages are counted to now, or to ``as_of`` (``--inputs '{"as_of": "2026-01-02T03:00"}'``)."""
    now = None
    if as_of is not None:
        now = datetime.fromisoformat(as_of)
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
    return status.table_status(lake, now)


def status_report(table_status: pl.DataFrame, freshness_limits: dict) -> str:
    """The status printed as a table; stale tables fail the run (exit code 3)."""
    with pl.Config(
        tbl_rows=500,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_width_chars=200,
        fmt_str_lengths=60,
    ):
        text = str(table_status)
    print(text)
    problems = status.stale(table_status, freshness_limits)
    if problems:
        exit_status.request(status.EXIT_STALE)
        raise status.StaleTables("stale tables: " + "; ".join(problems))
    return text
