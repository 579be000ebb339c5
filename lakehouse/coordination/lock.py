"""A lock per pipeline, so that two runs of one pipeline never overlap, whoever starts them.

The lock is an ``flock`` on ``<dir>/<pipeline>.lock``: the kernel releases it when its process
ends, however it ends, so a lock left by a killed run is never in the way. The file also says
who holds it (pid, host, run id, start), for the message a refused run prints, and for the
warning when a run takes over from one that died holding it. It locks runs on one machine
(or on a file system with working ``flock``); with the lake on S3 the lock hook uses a lease
in the lake instead (``lakehouse.coordination.lease``), which keeps runs on several machines apart.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later


class Locked(Exception):
    """Another live run holds the lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(folder: Path, pipeline: str, run_id: str) -> int:
    """Take the lock of ``pipeline`` or raise ``Locked`` naming its holder; returns the fd."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pipeline}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')}, run {holder.get('run_id')}, "
            f"since {holder.get('since')}"
            if holder
            else "holder unknown"
        )
        raise Locked(f"{pipeline} is already running ({who}); lock file {path}") from None
    previous = _holder(fd)
    if previous and previous.get("host") == socket.gethostname() and not _alive(previous["pid"]):
        logger.warning(
            f"{pipeline}: taking over the lock of run {previous.get('run_id')} "
            f"(pid {previous['pid']} is gone: killed or crashed)"
        )
    mark = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run_id": run_id,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(mark).encode(), 0)
    return fd


def release(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.close(fd)  # closing the last descriptor releases the flock


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
