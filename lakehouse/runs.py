"""Run identity and run mode (incremental, plan, backfill, full refresh), shared by every layer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lakehouse.settings import ConfigError


def new_run_id(pipeline: str) -> str:
    """The id of the run of ``pipeline`` in progress (the one its hooks and the run ledger
    know), else a new sortable, unique id: ``<pipeline>-<UTC time>-<random>``."""
    from lakehouse import hooks

    run = hooks.current(pipeline)
    if run is not None and run.run_id:
        return run.run_id
    return f"{pipeline}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class RunMode:
    """What a run of a layer does: the next increment, a plan, a backfill, or a full refresh."""

    plan: bool = False
    date_range: tuple[date, date] | None = None
    full_refresh: bool = False
    replay: bool = False  # silver: re-process quarantined rows
    audit: bool = False  # gold: recompute and compare, write nothing
    sample: int | None = None  # audit: this many parts per mart, drawn at random

    def __str__(self) -> str:
        kind = "full refresh" if self.full_refresh else "replay" if self.replay else "incremental"
        kind = "audit" if self.audit else kind
        if self.date_range:
            kind = f"backfill {self.date_range[0]}..{self.date_range[1]}"
        return kind


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    replay: bool = False,
) -> RunMode:
    """Check the run's ``--inputs`` and say what the run does; a bad input names itself
    (``ConfigError``: the command exits 2)."""
    if (from_date is None) != (to_date is None):
        raise ConfigError("a backfill needs both from_date and to_date (YYYY-MM-DD) in --inputs")
    date_range = None
    if from_date is not None:
        try:
            date_range = (date.fromisoformat(str(from_date)), date.fromisoformat(str(to_date)))
        except ValueError as error:
            raise ConfigError(f"--inputs from_date/to_date must be YYYY-MM-DD: {error}") from None
        if date_range[0] > date_range[1]:
            raise ConfigError(f"--inputs from_date {from_date} is after to_date {to_date}")
    if full_refresh and date_range:
        raise ConfigError("--inputs full_refresh rebuilds everything: drop from_date/to_date")
    if replay and (date_range or full_refresh or plan):
        raise ConfigError(
            "--inputs replay runs on its own: drop plan, from_date/to_date, full_refresh"
        )
    return RunMode(bool(plan), date_range, bool(full_refresh), bool(replay))


def check_watermark(watermark: dict, pipeline: str, kinds: tuple[str, ...]) -> str:
    """The watermark kind of ``pipeline``'s YAML, if it is one the pipeline supports."""
    where = f"conf/pipelines/{pipeline}.yml run.config.watermark"
    unknown = set(watermark) - {"kind"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kind = watermark.get("kind")
    if kind not in kinds:
        raise ValueError(f"{where}.kind: {kind!r} is not supported here (use {' or '.join(kinds)})")
    return kind
