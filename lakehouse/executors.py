"""Workarounds for the executors FlowerPower 0.37 builds on Hamilton 1.90.

Hamilton drives ``Parallelizable`` tasks from a loop that polls every future without ever
blocking. On a small machine that loop takes the GIL from the worker threads it waits for:
bronze over 418 small files took 33 s in a threadpool against 6 s inline. Here a poll of an
unfinished future waits up to ``POLL_WAIT_SECONDS`` for it (releasing the GIL), which turns
the spin into a wait without delaying a finished task. Applied once, when ``lakehouse`` is
imported (every pipeline module imports it before FlowerPower builds the executor).
"""

from __future__ import annotations

from concurrent.futures import wait

from hamilton.execution import executors

POLL_WAIT_SECONDS = 0.002
_original_get_state = executors.TaskFutureWrappingPythonFuture.get_state


def _get_state_waiting_briefly(self):
    if not self.future.done():
        wait([self.future], timeout=POLL_WAIT_SECONDS)
    return _original_get_state(self)


def install() -> None:
    """Make Hamilton's pool futures wait briefly instead of spinning (idempotent)."""
    executors.TaskFutureWrappingPythonFuture.get_state = _get_state_waiting_briefly
