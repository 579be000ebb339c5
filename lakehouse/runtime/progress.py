"""Progress of a run's tasks: a live line on a terminal, plain timestamped lines under cron.

A Hamilton adapter in the driver: it learns how many tasks a ``Parallelizable`` block
spawned and counts them as they come back from the executor (wherever they ran).
"""

from __future__ import annotations

import sys
import time

from hamilton.execution.grouping import NodeGroupPurpose
from hamilton.lifecycle.api import TaskGroupingHook, TaskReturnHook
from loguru import logger

LOG_EVERY_SECONDS = 10.0


class TaskProgress(TaskGroupingHook, TaskReturnHook):
    def __init__(self, pipeline: str, terminal: bool | None = None) -> None:
        self.pipeline = pipeline
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.total = self.done = 0
        self.started = self.logged = time.monotonic()

    def run_after_task_grouping(self, *, run_id: str, task_ids: list[str], **future_kwargs):
        pass

    def run_after_task_expansion(self, *, run_id: str, task_id: str, parameters: dict, **kw):
        self.total += len(parameters)
        logger.info(f"{self.pipeline}: {len(parameters)} tasks to run")

    def run_after_task_return(self, *, purpose: NodeGroupPurpose, success: bool, **future_kwargs):
        if purpose != NodeGroupPurpose.EXECUTE_BLOCK:
            return
        self.done += 1
        now = time.monotonic()
        elapsed = now - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0
        line = (
            f"{self.pipeline}: {self.done}/{self.total} tasks done "
            f"({self.done / max(self.total, 1):.0%}, {elapsed:.0f} s, ~{left:.0f} s left)"
        )
        finished = self.done >= self.total
        if self.terminal:
            sys.stderr.write(f"\r{line}" + ("\n" if finished else ""))
            sys.stderr.flush()
        elif finished or now - self.logged >= LOG_EVERY_SECONDS:
            self.logged = now
            logger.info(line)
