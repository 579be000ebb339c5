"""Bronze: every new landing file appended, raw, to its source's Delta table.

Upstream: ``landing_root/<source>/`` files (CSV or Parquet, per ``sources`` in YAML).
Outputs: ``lake_root/bronze/<source>``, append-only, the landed columns (CSV as text) plus
``_source_file``, ``_ingested_at`` and ``_run_id``. One Hamilton task per file stages its
rows; one commit per table adds them with the file watermark (see ``lakehouse.ingest``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hamilton.htypes import Collect, Parallelizable
from loguru import logger

from lakehouse import ingest
from lakehouse.delta import WriteResult
from lakehouse.runs import RunMode, check_watermark, new_run_id
from lakehouse.runs import run_mode as parse_run_mode
from lakehouse.storage import Location


def lake(lake_root: str) -> Location:
    """The lake's root folder (bronze, silver, gold and quarantine tables live below it)."""
    return Location.from_uri(lake_root)


def landing(landing_root: str) -> Location:
    """The landing zone's root folder."""
    return Location.from_uri(landing_root)


def run_id() -> str:
    """This run's id, stamped on every row and commit it writes."""
    return new_run_id("bronze")


def ingested_at() -> datetime:
    """One ingestion time for every row of this run."""
    return datetime.now(UTC)


def new_landing_files(landing: Location, lake: Location, sources: dict) -> list[ingest.LandingFile]:
    """Landing files not yet in bronze: new, late, or rewritten since their last ingestion."""
    files = [
        file
        for source, spec in sources.items()
        for file in ingest.list_new_files(landing, lake, source, spec["format"])
    ]
    logger.info(f"bronze: {len(files)} new landing files")
    return files


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    watermark: dict | None = None,
) -> RunMode:
    """What this run does, from ``--inputs``: ingest new files (default) or only ``plan``."""
    check_watermark(watermark or {}, "bronze", ("files",))
    mode = parse_run_mode(plan, from_date, to_date, full_refresh)
    if mode.date_range or mode.full_refresh:
        raise ValueError(
            "bronze keeps every landed file exactly once and has no backfill or full refresh: "
            "rebuild silver or gold from it instead"
        )
    return mode


def files_to_ingest(
    new_landing_files: list[ingest.LandingFile], run_mode: RunMode
) -> list[ingest.LandingFile]:
    """The files this run ingests. In plan mode, none: what would be ingested is only logged."""
    if not run_mode.plan:
        return new_landing_files
    for source, files in ingest.by_source(new_landing_files).items():
        size = sum(f.size for f in files)
        rows = sum(ingest.estimate_rows(f) for f in files)
        names = ", ".join(f.name for f in files)
        logger.info(
            f"PLAN bronze/{source}: {len(files)} files, {size:,} bytes, ~{rows:,} rows: {names}"
        )
    if not new_landing_files:
        logger.info("PLAN bronze: nothing to ingest")
    return []


def landing_file(files_to_ingest: list[ingest.LandingFile]) -> Parallelizable[ingest.LandingFile]:
    """One task per landing file to ingest."""
    yield from files_to_ingest


def staged_file(
    landing_file: ingest.LandingFile, run_id: str, ingested_at: datetime
) -> ingest.StagedFile:
    """The file's rows with lineage columns, staged as Parquet in its bronze table."""
    return ingest.stage(landing_file, landing_file.table.fs, run_id, ingested_at)


def bronze_tables(
    staged_file: Collect[ingest.StagedFile], run_id: str, max_rows_per_commit: int
) -> list[WriteResult]:
    """This run's staged files committed to their bronze tables with their file watermarks,
    at most ``max_rows_per_commit`` rows a commit so that silver batches stay bounded."""
    results = []
    for group in ingest.commit_groups(list(staged_file), max_rows_per_commit):
        source = group[0].file.source
        result = ingest.commit_staged(group[0].file.table, source, group, run_id)
        logger.info(f"bronze: {result} ({len(group)} files)")
        results.append(result)
    return results
