"""Maintenance: compaction, checkpoints and vacuum on every Delta table of the lake.

Upstream and output: every table under ``lake_root`` (bronze, silver, gold, quarantine, the
run ledger). Prints file counts and sizes per table before and after. Data never changes.
"""

from __future__ import annotations

import polars as pl

from lakehouse.core import settings
from lakehouse.core.settings import Positive
from lakehouse.core.storage import Location
from lakehouse.ops import maintenance, status
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "maintenance")


def maintained_tables(
    lake: Location, target_file_mb: Positive, retention_hours: int
) -> list[maintenance.Maintained]:
    """Each table compacted, checkpointed and vacuumed, one after the other."""
    names = [*status.tables(lake), "_runs"]
    return [
        maintenance.maintain(lake.child(*name.split("/")), target_file_mb, retention_hours)
        for name in names
        if lake.child(*name.split("/")).exists()
    ]


def maintenance_report(maintained_tables: list[maintenance.Maintained]) -> str:
    """File counts and sizes per table, before and after, printed."""
    frame = pl.DataFrame(
        [
            {
                "table": m.table,
                "files_before": m.before.files,
                "files_after": m.after.files,
                "mb_before": round(m.before.bytes / 1e6, 2),
                "mb_after": round(m.after.bytes / 1e6, 2),
                "compacted": m.compacted,
                "vacuumed": m.vacuumed,
            }
            for m in maintained_tables
        ]
    )
    with pl.Config(tbl_rows=500, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        text = str(frame)
    print(text)
    return text
