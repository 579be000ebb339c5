"""Report: one self-contained HTML page (no network needed to view it) of the lake's health.

Upstream: the run ledger ``lake_root/_runs``, every table's Delta log (freshness against the
limits of ``conf/pipelines/status.yml``), ``lake_root/_quarantine/<entity>`` (rows held
back) and ``lake_root/_quarantine/_files`` (bad files). Output: the file at ``output``
(default ``data/report.html``); no table is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import yaml
from loguru import logger

from lakehouse.core import delta, settings
from lakehouse.core.storage import Location, replace_file
from lakehouse.declare import catalog, data_dag
from lakehouse.layers.bronze.landing_files import bad_files_location
from lakehouse.ops import ledger, report, status
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py

STATUS_CONF = Path("conf") / "pipelines" / "status.yml"


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "report")


def freshness_limits(freshness: dict) -> dict:
    """The freshness limits: this pipeline's ``freshness``, else those of status.yml."""
    where = "conf/pipelines/report.yml run.config.freshness"
    if not freshness and STATUS_CONF.exists():
        from flowerpower.utils.yaml_env import interpolate_env_in_data

        spec = interpolate_env_in_data(yaml.safe_load(STATUS_CONF.read_text()) or {})
        freshness = ((spec.get("run") or {}).get("config") or {}).get("freshness") or {}
        where = f"{STATUS_CONF} run.config.freshness"
    return {name: status.limit(text, f"{where}.{name}") for name, text in freshness.items()}


def table_status(lake: Location) -> pl.DataFrame:
    """One row per table: last commit and its age (``status``)."""
    return status.table_status(lake)


def runs(lake: Location) -> pl.DataFrame:
    """Every run in the ledger."""
    return pl.from_arrow(ledger.read(ledger.location(lake.uri)))


def quarantined_per_day(lake: Location) -> pl.DataFrame:
    """Rows quarantined per day, table and rule."""
    frames = []
    for name in status.tables(lake):
        if not name.startswith("_quarantine/") or name == "_quarantine/_files":
            continue
        table = delta.open_table(lake.child(*name.split("/")))
        rows = pl.from_arrow(table.to_pyarrow_table(columns=["table", "rule", "quarantined_at"]))
        frames.append(
            rows.group_by(day=pl.col("quarantined_at").dt.date(), table="table", rule="rule").agg(
                count=pl.len()
            )
        )
    empty = {"day": pl.Date, "table": pl.String, "rule": pl.String, "count": pl.UInt32}
    return pl.concat(frames) if frames else pl.DataFrame(schema=empty)


def bad_files(lake: Location) -> pl.DataFrame:
    """The landing files bronze could not read (``_quarantine/_files``)."""
    table = delta.open_table(bad_files_location(lake))
    if table is None:
        return pl.DataFrame(
            schema={
                "source": pl.String,
                "file": pl.String,
                "error": pl.String,
                "message": pl.String,
                "recorded_at": pl.Datetime("us", "UTC"),
            }
        )
    return pl.from_arrow(table.to_pyarrow_table()).sort("recorded_at")


def data_dag_svg() -> str:
    """The data DAG of the enabled datasets (sources -> entities -> marts) as inline SVG;
    a note instead where it cannot be drawn (no graphviz ``dot`` on this host)."""
    try:
        drawing = data_dag.graph(catalog.load())
        return drawing.pipe(format="svg").decode()
    except Exception as error:  # a picture never stops the report
        logger.warning(f"report: no data DAG: {type(error).__name__}: {error}")
        return f"<p>No picture: {type(error).__name__} (is graphviz installed?)</p>"


def report_file(
    lake: Location,
    output: str,
    table_status: pl.DataFrame,
    freshness_limits: dict,
    runs: pl.DataFrame,
    quarantined_per_day: pl.DataFrame,
    bad_files: pl.DataFrame,
    data_dag_svg: str,
) -> str:
    """The report written to ``output``; its path."""
    html = report.render(
        lake.uri,
        datetime.now(UTC),
        table_status,
        freshness_limits,
        runs,
        quarantined_per_day,
        bad_files,
        data_dag_svg,
    )
    target = settings.location("output", output, "report")
    replace_file(target, html.encode())
    logger.info(f"report: {target.uri} ({len(html):,} bytes)")
    print(f"report written to {target.uri}")
    return target.uri
