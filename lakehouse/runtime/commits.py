"""The driver commits a task's work as the task returns: a Hamilton adapter.

A task of a ``Parallelizable`` block may return work staged for a table (bronze's
``StagedBatch``); the tables' only writer is the driver, and this adapter is where the
driver sees each task come back, wherever it ran. It commits the work of a lane (a table)
in the order of its ``position`` (a batch that returns early waits for the ones before it),
so a run that is stopped keeps what its finished tasks committed, in the order a run
without stops would have committed it. What it does not commit (a task that failed, a
lane behind a failed task) the pipeline's collecting node commits or discards.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hamilton.execution.grouping import NodeGroupPurpose
from hamilton.lifecycle.api import TaskReturnHook


@runtime_checkable
class DriverCommit(Protocol):
    """Work a task staged, which the driver commits."""

    lane: str  # commits of one lane follow ``position``
    position: int  # 0, 1, 2, ... within the lane
    early: bool  # may be committed as soon as its task returns

    def commit(self, opened: dict) -> None:
        """Commit the work once; ``opened``: a cache the run's commits share."""


class CommitOnReturn(TaskReturnHook):
    def __init__(self) -> None:
        self.waiting: dict[str, dict[int, DriverCommit]] = {}  # lane -> position -> work
        self.next: dict[str, int] = {}  # lane -> position to commit next
        self.opened: dict = {}

    def run_after_task_return(
        self, *, result: Any, success: bool, purpose: NodeGroupPurpose, **future_kwargs
    ) -> None:
        if not success or purpose != NodeGroupPurpose.EXECUTE_BLOCK or not isinstance(result, dict):
            return
        for work in result.values():
            if isinstance(work, DriverCommit) and work.early:
                self.waiting.setdefault(work.lane, {})[work.position] = work
                self._commit_ready(work.lane)

    def _commit_ready(self, lane: str) -> None:
        waiting = self.waiting[lane]
        while self.next.get(lane, 0) in waiting:
            waiting.pop(self.next.get(lane, 0)).commit(self.opened)
            self.next[lane] = self.next.get(lane, 0) + 1
