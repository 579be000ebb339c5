"""Table status: how fresh each table is, which run wrote it last, how many rows it holds.

The run is the one whose id the table's last commit carries, with its status in the ledger.

A table's age is the time since its last commit. A run commits to a table when its upstream
brought something new (a batch's watermark moves even when none of its rows changed the
table), not when there was nothing to read: an old table means that no new data reached it,
or that its pipeline has not succeeded since (the last run's status tells which). Rows are
counted from the Delta log (no data file is read).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse.core import delta
from lakehouse.core.settings import limit  # noqa: F401 (status.yml freshness)
from lakehouse.core.storage import Location
from lakehouse.ops import ledger

EXIT_STALE = 3


class StaleTables(Exception):
    """Tables older than their freshness limit (or missing)."""


def tables(lake: Location) -> list[str]:
    """Every Delta table under the lake, as ``layer/name``."""
    found = []
    for layer in ("bronze", "silver", "gold", "_quarantine"):
        root = lake.child(layer)
        if root.exists():
            for path in sorted(root.fs.ls(root.uri, detail=False)):
                name = path.rstrip("/").rsplit("/", 1)[-1]
                if root.fs.exists(f"{path.rstrip('/')}/_delta_log"):
                    found.append(f"{layer}/{name}")
    return found


def _run_statuses(lake: Location) -> dict[str, str]:
    """Each run's status, from the run ledger."""
    runs = ledger.read(ledger.location(lake.uri))
    ids, statuses = runs.column("run_id").to_pylist(), runs.column("status").to_pylist()
    return dict(zip(ids, statuses, strict=True))


def table_status(lake: Location, now: datetime | None = None) -> pl.DataFrame:
    """One row per table: last commit, age, last successful run, rows, quarantined rows."""
    now = now or datetime.now(UTC)
    statuses = _run_statuses(lake)
    rows = []
    for name in tables(lake):
        table = delta.open_table(lake.child(*name.split("/")))
        if table is None:  # removed since it was listed
            continue
        commit = table.history(limit=1)[0]
        committed = datetime.fromtimestamp(commit["timestamp"] / 1000, UTC)
        actions = table.get_add_actions(flatten=True)
        count = sum(v for v in actions.column("num_records").to_pylist() if v is not None)
        run_id = commit.get(delta.RUN_ID_KEY)
        rows.append(
            {
                "table": name,
                "last_commit": committed,
                "age_hours": round((now - committed).total_seconds() / 3600, 1),
                "last_run": run_id,
                "run_status": statuses.get(run_id) if run_id else None,
                "rows": count,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "table": pl.String,
            "last_commit": pl.Datetime("us", "UTC"),
            "age_hours": pl.Float64,
            "last_run": pl.String,
            "run_status": pl.String,
            "rows": pl.Int64,
        },
    )
    quarantined = frame.filter(pl.col("table").str.starts_with("_quarantine/")).select(
        table=pl.col("table").str.replace("_quarantine/", "silver/"), quarantined=pl.col("rows")
    )
    return frame.join(quarantined, on="table", how="left")


def stale(status: pl.DataFrame, limits: dict[str, timedelta]) -> list[str]:
    """The tables over their limit, or missing, each with why."""
    ages = dict(zip(status["table"], status["age_hours"], strict=True))
    problems = []
    for name, most in limits.items():
        hours = most.total_seconds() / 3600
        if name not in ages:
            problems.append(f"{name}: missing")
        elif ages[name] > hours:
            problems.append(f"{name}: last commit {ages[name]} h ago (limit {hours:g} h)")
    return problems
