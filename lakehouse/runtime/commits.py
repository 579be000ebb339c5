"""The driver commits a task's work as the task returns: a Hamilton adapter.

A task of a ``Parallelizable`` block may return work staged for a table (bronze's
``StagedBatch``, silver's ``PreparedBatch``); the tables' only writer is the driver, and
this adapter is where the driver sees each task come back, wherever it ran. It commits the
work of a lane (a table, an entity) in the order of its ``position`` (work that returns
early waits for the work before it), and a lane that ``waits_for`` others only once their
``last`` work is committed (silver: an entity after its parents). So a stopped run keeps
what its finished tasks committed, in the order a serial run commits it. What it does not
commit (behind a task that failed) the pipeline's collecting node commits or discards.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hamilton.execution.grouping import NodeGroupPurpose
from hamilton.lifecycle.api import TaskReturnHook


@runtime_checkable
class DriverCommit(Protocol):
    """Work a task staged, which the driver commits. It may also say ``waits_for`` (lanes
    whose ``last`` work must be committed first) and ``last`` (its lane's last work)."""

    lane: str  # commits of one lane follow ``position``
    position: int  # 0, 1, 2, ... within the lane
    early: bool  # may be committed as soon as its task returns

    def commit(self, opened: dict) -> None:
        """Commit the work once; ``opened``: a cache the run's commits share."""


class CommitOnReturn(TaskReturnHook):
    def __init__(self) -> None:
        self.waiting: dict[str, dict[int, DriverCommit]] = {}  # lane -> position -> work
        self.next: dict[str, int] = {}  # lane -> position to commit next
        self.done: set[str] = set()  # lanes whose last work is committed
        self.opened: dict = {}

    # Hamilton sends each task with the run's adapters to the worker that runs it: the
    # driver's state (work waiting, open tables) stays here, a worker commits nothing.
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # type: ignore[misc]

    def run_after_task_return(
        self, *, result: Any, success: bool, purpose: NodeGroupPurpose, **future_kwargs
    ) -> None:
        if not success or purpose != NodeGroupPurpose.EXECUTE_BLOCK or not isinstance(result, dict):
            return
        for work in result.values():
            if isinstance(work, DriverCommit) and work.early:
                self.waiting.setdefault(work.lane, {})[work.position] = work
        self._commit_ready()

    def _commit_ready(self) -> None:
        progress = True
        while progress:  # a lane done may free the lanes waiting for it
            progress = False
            for lane, waiting in self.waiting.items():
                while (work := waiting.get(self.next.get(lane, 0))) is not None:
                    if not set(getattr(work, "waits_for", ())) <= self.done:
                        break
                    work.commit(self.opened)
                    del waiting[work.position]
                    self.next[lane] = work.position + 1
                    if getattr(work, "last", False):
                        self.done.add(lane)
                    progress = True
