"""Make a ``flowerpower`` process's exit status tell the truth.

Processes that made many Delta commits sometimes abort at interpreter shutdown (exit 134,
"terminate called without an active exception", delta-rs #2184) after their data landed,
so cron would report a failure for a run that committed. In a ``flowerpower`` command this
records the status the command exits with and, once Python's exit handlers start, flushes
the logs and leaves with exactly that status, before native destructors can abort.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path

_status: list[int] = []
_requested: list[int] = []


def request(code: int) -> None:
    """Leave the ``flowerpower`` command with ``code`` if it fails (FlowerPower exits 1 for
    every failure; a refused run has its own code)."""
    _requested.append(code)


def for_error(error: BaseException) -> int:
    """The exit status for a run that failed with ``error``: 2 for a setting or declaration
    at fault (``exit_code`` on the exception), else 1."""
    code = getattr(error, "exit_code", None)
    return code if isinstance(code, int) and code > 0 else 1


def active() -> bool:
    """Whether this process is the ``flowerpower`` command (``install`` took effect)."""
    return sys.exit is _recording_exit


def _status_code(code) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1  # sys.exit("message") exits 1


def _recording_exit(code=0):
    _status.append(_status_code(code))
    _original_exit(code)


def _leave_with_recorded_status() -> None:
    if not _status:
        return  # not a sys.exit (an uncaught exception): let Python report it as usual
    logging.shutdown()
    try:
        from loguru import logger

        logger.complete()
    except ImportError:  # pragma: no cover - loguru comes with flowerpower
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_requested[-1] if _requested and _status[-1] != 0 else _status[-1])


_original_exit = sys.exit


def install() -> None:
    """Active only in the ``flowerpower`` command (not in tests or notebooks); idempotent."""
    if Path(sys.argv[0]).name != "flowerpower" or sys.exit is _recording_exit:
        return
    sys.exit = _recording_exit
    atexit.register(_leave_with_recorded_status)
