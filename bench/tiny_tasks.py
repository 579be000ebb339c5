"""A Hamilton module of tiny tasks: what an executor costs per task, not the work in it.

Used by ``bench_executors.py``; importable by worker processes through its folder.
"""

from hamilton.htypes import Collect, Parallelizable


def item(task_count: int) -> Parallelizable[int]:
    """One task per number."""
    yield from range(task_count)


def doubled(item: int) -> int:
    """The whole work of a task."""
    return item * 2


def total(doubled: Collect[int]) -> int:
    """Collected in the driver."""
    return sum(doubled)
