"""Runs: one run of a pipeline as its hooks, the ledger and the summary see it (``Run``), the
run in progress (``current``), run ids, and the run mode (incremental, plan, backfill, full
refresh), shared by every layer."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path

from lakehouse.core.delta import WriteResult
from lakehouse.core.settings import ConfigError


@dataclass
class Run:
    """One run of a pipeline, as the hooks see it; ``after`` hooks see its outcome too."""

    pipeline: str
    run_id: str
    project_dir: Path
    inputs: dict
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: str = field(default_factory=socket.gethostname)
    executor: str | None = None
    status: str = "running"  # then: succeeded, failed or refused
    exit_code: int | None = None  # a failed or refused run: what the command exits with
    ended_at: datetime | None = None
    error_type: str | None = None
    error_message: str | None = None
    outputs: dict | None = None
    state: dict = field(default_factory=dict)  # hooks keep their own things here
    children: list[Run] = field(default_factory=list)  # runs it started (daily's layers)
    parent: Run | None = field(default=None, repr=False)
    _clock: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else self._seconds

    def finish(self, status: str, outputs: dict | None = None, error: BaseException | None = None):
        self._seconds = time.perf_counter() - self._clock
        self.status, self.outputs, self.ended_at = status, outputs, datetime.now(UTC)
        if error is not None:
            self.error_type = type(error).__name__
            self.error_message = str(error)

    def results(self) -> list[WriteResult]:
        """Every table write the run reported (``daily`` reports its layers' too)."""
        found: list[WriteResult] = []

        def walk(value) -> None:
            if isinstance(value, WriteResult):
                found.append(value)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self.outputs)
        return found

    @cached_property
    def git_commit(self) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(self.project_dir), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None


_current: ContextVar[Run | None] = ContextVar("current_run", default=None)


def current(pipeline: str | None = None) -> Run | None:
    """The run in progress in this context (of ``pipeline``, when given)."""
    run = _current.get()
    return run if run is not None and pipeline in (None, run.pipeline) else None


def enter(run: Run) -> Token:
    """Make ``run`` the run in progress (``current``) until ``leave`` with the token."""
    return _current.set(run)


def leave(token: Token) -> None:
    """The run in progress is again the one before ``enter`` gave ``token``."""
    _current.reset(token)


def new_run_id(pipeline: str) -> str:
    """The id of the run of ``pipeline`` in progress (the one its hooks and the run ledger
    know), else a new sortable, unique id: ``<pipeline>-<UTC time>-<random>``."""
    run = current(pipeline)
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
