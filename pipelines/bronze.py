"""Bronze: every new landing file appended, raw, to its source's Delta table.

Upstream: the ``sources`` in YAML (lakehouse.io): files under ``landing_root/<source>/``
or a ``uri`` (CSV, JSON lines, Parquet), or tables (PostgreSQL, DuckDB, Delta) read by watermark.
Outputs: ``lake_root/bronze/<source>``, append-only, the landed columns (CSV as text) plus
``_source_file``, ``_ingested_at`` and ``_run_id``. One Hamilton task per batch of a
source's files stages their rows; the driver commits each task's files with their file
watermarks as the task returns (``lakehouse/layers/bronze/``: ``landing_files`` finds the
new files, ``ingest`` stages them, ``commit`` commits them).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hamilton.htypes import Collect, Parallelizable
from loguru import logger

from lakehouse import io as plugins
from lakehouse.core import settings
from lakehouse.core.delta import WriteResult
from lakehouse.core.runs import RunMode, check_watermark, new_run_id
from lakehouse.core.runs import run_mode as parse_run_mode
from lakehouse.core.settings import Positive, Seconds
from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.layers.bronze import commit, ingest, landing_files, pull
from lakehouse.layers.bronze.landing_files import LandingFile
from lakehouse.layers.silver import snapshots
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py

SETTLE_SECONDS = Seconds(5)  # a landing file unchanged this long is complete (bronze.yml)
TASK_BYTES = Positive(32 * 1024 * 1024)  # landed bytes per staging task (bronze.yml task_bytes)
MAX_FILES_PER_RUN = Positive(100_000)  # new landing files one run takes (bronze.yml)
PLAN_NAMES = 20  # file names a plan shows per source


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "bronze")


def datasets() -> catalog.Catalog:
    """The declared datasets (``conf/datasets/*.yml``): their sources and entities."""
    return catalog.load(marts=False)


def source_plugins(
    sources: dict, datasets: catalog.Catalog, only_sources: list[str] | None = None
) -> dict[str, plugins.Source]:
    """The sources of the enabled datasets and of bronze.yml (which wins for a name both
    give, e.g. to read one source from elsewhere), each checked (format, keys, environment)
    before data moves; ``only_sources`` (``--inputs``) restricts a run to some of them."""
    where = "conf/pipelines/bronze.yml run.config.sources"
    specs = {
        name: (spec, f"{dataset.path} sources.{name}")
        for dataset in datasets.datasets
        if dataset.enabled
        for name, spec in dataset.sources.items()
    }
    specs.update({name: (spec, f"{where}.{name}") for name, spec in (sources or {}).items()})
    unknown = sorted(set(only_sources or ()) - set(specs))
    if unknown:
        raise ValueError(
            f"--inputs only_sources: no source {', '.join(unknown)} "
            f"(declared: {', '.join(sorted(specs)) or 'none'})"
        )
    if only_sources:
        specs = {name: specs[name] for name in only_sources}
    if not specs:
        logger.warning(f"bronze: no source is declared ({where} or conf/datasets/*.yml)")
    return {name: plugins.source(name, spec or {}, at) for name, (spec, at) in specs.items()}


def landing(
    landing_root: str, source_plugins: dict[str, plugins.Source], plan: bool = False
) -> Location:
    """The landing zone's root folder; it must exist when a file source lands there (a plan
    on a machine where nothing has landed yet just finds no file)."""
    in_landing = any(s.kind == "files" and not s.spec.get("uri") for s in source_plugins.values())
    return settings.location(
        "landing_root", landing_root, "bronze", must_exist=in_landing and not plan
    )


def run_id() -> str:
    """This run's id, stamped on every row and commit it writes."""
    return new_run_id("bronze")


def ingested_at() -> datetime:
    """One ingestion time for every row of this run."""
    return datetime.now(UTC)


def new_landing_files(
    landing: Location,
    lake: Location,
    source_plugins: dict[str, plugins.Source],
    datasets: catalog.Catalog,
    settle_seconds: Seconds = SETTLE_SECONDS,
) -> list[LandingFile]:
    """Landing files not yet in bronze: new, late, or rewritten since their last ingestion,
    each knowing the columns its entities declare; only files unchanged for
    ``settle_seconds`` (a file still being written waits for the next run)."""
    files = []
    for name, source in source_plugins.items():
        if source.kind != "files":
            continue
        entities = datasets.entities_of_source(name)
        required = tuple(dict.fromkeys(c for e in entities for c in e.columns))
        closed = any(e.schema_evolution == "fail" for e in entities)
        hashed = tuple((e.name, tuple(e.columns)) for e in entities if snapshots.reads_hashes(e))
        files += landing_files.list_new_files(landing, lake, name, source, required, closed, hashed)
    files = landing_files.settled(files, settle_seconds) if settle_seconds else files
    logger.debug(f"bronze: {len(files)} new landing files")
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
    new_landing_files: list[LandingFile],
    run_mode: RunMode,
    max_files_per_run: Positive = MAX_FILES_PER_RUN,
) -> list[LandingFile]:
    """The files this run ingests: the oldest ``max_files_per_run`` new ones (a drop of more
    files is taken over several runs, each committed: memory stays bounded). In plan mode,
    none: what would be ingested is logged."""
    if not run_mode.plan:
        taken = landing_files.oldest(new_landing_files, max_files_per_run)
        if len(taken) < len(new_landing_files):
            logger.info(
                f"bronze: {len(new_landing_files) - len(taken):,} more new landing files wait "
                f"for the next run (max_files_per_run {max_files_per_run:,})"
            )
        return taken
    for source, files in landing_files.by_source(new_landing_files).items():
        size = sum(f.size for f in files)
        rows = sum(landing_files.estimate_rows(f) for f in files)
        names = ", ".join(f.name for f in files[:PLAN_NAMES])
        if len(files) > PLAN_NAMES:
            names += f" and {len(files) - PLAN_NAMES:,} more"
        logger.info(
            f"PLAN bronze/{source}: {len(files)} files, {size:,} bytes, ~{rows:,} rows: {names}"
        )
    if not new_landing_files:
        logger.info("PLAN bronze: nothing to ingest")
    return []


def file_batch(
    files_to_ingest: list[LandingFile], task_bytes: Positive = TASK_BYTES
) -> Parallelizable[landing_files.Batch]:
    """One task per batch of a source's landing files, up to ``task_bytes`` landed (a bigger
    file alone): a day's small drops share a task and a Parquet file."""
    yield from landing_files.batches(files_to_ingest, task_bytes)


def staged_files(
    file_batch: landing_files.Batch,
    run_id: str,
    ingested_at: datetime,
    max_rows_per_commit: Positive,
    on_bad_file: str,
) -> commit.StagedBatch:
    """The batch's rows with lineage columns, staged as Parquet in their bronze table (or,
    for a file that cannot be read as its format promises, why not). The driver commits
    them as the task returns, unless ``on_bad_file`` is ``fail`` (then all at the end)."""
    outcomes = ingest.stage(file_batch.files, run_id, ingested_at, max_rows_per_commit)
    return commit.StagedBatch(
        outcomes,
        file_batch.table,
        file_batch.position,
        run_id,
        max_rows_per_commit,
        early=on_bad_file == "skip",
    )


def pulled_tables(
    source_plugins: dict[str, plugins.Source],
    lake: Location,
    run_id: str,
    ingested_at: datetime,
    max_rows_per_commit: Positive,
    run_mode: RunMode,
) -> list[WriteResult]:
    """Table sources (PostgreSQL, DuckDB, Delta): their new and changed rows merged into
    bronze, from each source's watermark column (see ``lakehouse.layers.bronze.pull``)."""
    results = []
    for source in source_plugins.values():
        if source.kind != "table":
            continue
        if run_mode.plan:
            logger.info(f"PLAN bronze/{source.name}: read {source.describe()} from its watermark")
            continue
        result = pull.ingest(source, lake, run_id, ingested_at, max_rows_per_commit)
        logger.debug(f"bronze: {result} ({result.rows_read:,} rows read)")
        results.append(result)
    return results


def bronze_tables(
    staged_files: Collect[commit.StagedBatch],
    pulled_tables: list[WriteResult],
    lake: Location,
    run_id: str,
    on_bad_file: str,
) -> list[WriteResult]:
    """This run's staged files committed to their bronze tables with their file watermarks,
    at most ``max_rows_per_commit`` rows a commit so that silver batches stay bounded: most
    already by the driver as their task returned (``lakehouse.layers.bronze.commit``), the
    rest here, in the same order.

    Unreadable files stay where they are. ``on_bad_file: skip`` records them in
    ``_quarantine/_files`` and loads the rest; ``fail`` commits nothing and says which."""
    batches = sorted(staged_files, key=lambda b: (b.lane, b.position))
    bad = [b for batch in batches for b in batch.bad]
    if on_bad_file not in ("skip", "fail"):
        for batch in batches:
            batch.discard()
        raise ValueError(
            f"conf/pipelines/bronze.yml run.config.on_bad_file: {on_bad_file!r} is not skip or fail"
        )
    if bad and on_bad_file == "fail":
        for batch in batches:
            batch.discard()
        listing = "\n  ".join(str(b) for b in bad)
        raise ValueError(
            f"bronze: {len(bad)} unreadable landing file(s), nothing committed:\n  {listing}"
        )
    results = list(pulled_tables)
    for b in bad:
        logger.warning(f"bronze: skipped, left in place: {b}")
    recorded = ingest.record_bad_files(lake, bad, run_id)
    if recorded is not None:
        results.append(recorded)
    opened: dict = {}  # each table opened once for all its commits
    for batch in batches:
        batch.commit(opened)  # a no-op for a batch the driver committed as it returned
        results += batch.results or []
    return results
