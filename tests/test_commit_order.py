"""The driver's commits as tasks return (``lakehouse.runtime.commits``): whatever order the
executor hands the tasks back in, a lane's work is committed in position order, a lane
that waits for others only after their last work, and every piece exactly once."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hamilton.execution.grouping import NodeGroupPurpose

from lakehouse.runtime.commits import CommitOnReturn


@dataclass
class Work:
    lane: str
    position: int
    last: bool
    waits_for: tuple[str, ...]
    log: list
    early: bool = True

    def commit(self, opened: dict) -> None:
        self.log.append((self.lane, self.position))


def _lanes(log: list) -> list[Work]:
    parents = Work("parents", 0, False, (), log), Work("parents", 1, False, (), log)
    last_parent = Work("parents", 2, True, (), log)
    children = [Work("children", i, i == 1, ("parents",), log) for i in range(2)]
    others = [Work("others", i, i == 2, (), log) for i in range(3)]
    return [*parents, last_parent, *children, *others]


def test_any_return_order_commits_in_lane_order_and_children_after_parents():
    for seed in range(200):
        log: list = []
        works = _lanes(log)
        random.Random(seed).shuffle(works)
        hook = CommitOnReturn()
        for work in works:
            hook.run_after_task_return(
                result={"node": work}, success=True, purpose=NodeGroupPurpose.EXECUTE_BLOCK
            )
        assert sorted(log) == sorted((w.lane, w.position) for w in works)  # each once
        for lane in ("parents", "children", "others"):
            assert [p for name, p in log if name == lane] == sorted(
                p for name, p in log if name == lane
            )
        assert log.index(("children", 0)) > log.index(("parents", 2))


def test_a_failed_task_holds_back_its_lane_and_the_lanes_waiting_for_it():
    log: list = []
    works = _lanes(log)
    hook = CommitOnReturn()
    for work in works:
        failed = work.lane == "parents" and work.position == 1
        hook.run_after_task_return(
            result={"node": work}, success=not failed, purpose=NodeGroupPurpose.EXECUTE_BLOCK
        )
    assert log == [("parents", 0), ("others", 0), ("others", 1), ("others", 2)]


def test_the_adapter_travels_to_workers_without_the_drivers_state():
    """Hamilton pickles a task with the run's adapters for a Dask or Ray worker: open Delta
    tables and prepared frames waiting in the driver must not go along."""
    import pickle

    hook = CommitOnReturn()
    hook.opened["table"] = lambda: None  # not picklable, as a DeltaTable is not
    hook.waiting["lane"] = {1: object()}
    copy = pickle.loads(pickle.dumps(hook))
    assert copy.waiting == {} and copy.opened == {} and copy.next == {}
