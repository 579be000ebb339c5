"""Publish: the gold marts copied to the sinks in YAML (DuckDB file, PostgreSQL, Delta,
Parquet), only the partitions or keys that changed, exactly once per gold version.

Upstream: ``lake_root/gold/<mart>`` and its change data feed. Outputs: each sink's copy of
each mart, with the gold version it holds recorded in the same transaction (see
``lakehouse.layers.publish.publish`` and ``lakehouse.io``).
"""

from __future__ import annotations

from loguru import logger

from lakehouse import io as plugins
from lakehouse.core import settings
from lakehouse.core.delta import WriteResult
from lakehouse.core.runs import RunMode
from lakehouse.core.runs import run_mode as parse_run_mode
from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.layers.publish import publish
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py

WHERE = "conf/pipelines/publish.yml run.config"


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return settings.location("lake_root", lake_root, "publish")


def sink_plugins(sinks: dict) -> list[plugins.Sink]:
    """The sinks of the YAML, each checked (format, keys, environment) before data moves."""
    if not sinks:
        raise ValueError(f"{WHERE}.sinks: name at least one sink (see docs/io-plugins.md)")
    return [plugins.sink(name, spec or {}, f"{WHERE}.sinks.{name}") for name, spec in sinks.items()]


def gold_marts(
    lake: Location, sink_plugins: list[plugins.Sink], marts: list | None = None
) -> list[publish.Mart]:
    """The gold marts to publish: ``marts``, or every gold table (after ``sink_plugins``, so
    that a bad sink fails before any table is opened)."""
    return publish.marts(lake, marts, f"{WHERE}.marts", catalog.load().marts)


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
) -> RunMode:
    """``plan`` only logs; ``full_refresh`` republishes every mart whole. A backfill's dates
    need nothing here: publish follows whatever gold changed."""
    return parse_run_mode(plan, from_date, to_date, full_refresh)


def published_tables(
    gold_marts: list[publish.Mart], sink_plugins: list[plugins.Sink], run_mode: RunMode
) -> list[WriteResult]:
    """Every sink brought to every mart's current gold version, mart by mart."""
    results = []
    for sink in sink_plugins:
        for mart in gold_marts:
            if run_mode.plan:
                change = publish.plan(mart, sink)
                what = (
                    "nothing"
                    if change is None
                    else (
                        "the whole mart"
                        if change.whole
                        else f"{len(change.values)} {change.column}"
                    )
                )
                logger.info(f"PLAN publish {sink.name}/{mart.name}: {what}")
                continue
            results.append(publish.publish(mart, sink, whole=run_mode.full_refresh))
    return results
