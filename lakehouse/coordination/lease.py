"""A pipeline's lock as a lease object in the lake, for runs on several machines.

When the lake is on S3 (or a store with S3's conditional writes), the lock of a pipeline is
the object ``<lake>/_locks/<pipeline>.json``: owner (host, pid, run id), when it was taken,
until when it holds, and a generation that grows with every holder. It is taken with a
create-if-absent PUT (``If-None-Match: *``), renewed and released with a compare-and-swap
PUT (``If-Match: <ETag>``), so of two runs only one ever holds it. A holder renews it in
the background every third of the lease; a holder that dies stops renewing, and after the
lease's expiry plus a grace for clock skew the next run takes it over (another
compare-and-swap: of two would-be successors one wins).

Fencing (``lakehouse.core.fence``): before each write (Delta commit, ledger row, landing or
published file) the run checks that its lease still holds (``check``): not taken over,
renewed in time, and not past its own expiry by the local clock (a process paused past the
lease notices on waking, before it writes). A run that finds it lost fails with exit code 5,
naming who holds the lease now. What is left is the window between that check and the write
reaching the store (one write's duration): a process paused exactly there, for longer than
the lease's grace, can still complete that one write on waking. Each commit records the
lease it was made under (``lakehouse.lease`` in the commit metadata).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fsspec.asyn import sync
from loguru import logger

from lakehouse.core import fence
from lakehouse.core.fence import LeaseLost
from lakehouse.core.storage import Location, split_protocol

DEFAULT_SECONDS = 120.0
SKEW_SECONDS = 5.0  # a lease is taken over only this long after its expiry (clocks differ)
__all__ = ["Lease", "LeaseBusy", "LeaseLost", "is_object_store"]


class LeaseBusy(Exception):
    """Another live run holds the lease."""


def now() -> float:
    return time.time()


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def is_object_store(location: Location) -> bool:
    return split_protocol(location.uri)[0] in ("s3", "s3a")


@dataclass
class Lease:
    """The lease of ``pipeline`` in the lake at ``lake``; ``seconds``: how long it holds
    without renewal."""

    lake: Location
    pipeline: str
    run_id: str
    seconds: float = DEFAULT_SECONDS
    etag: str | None = None
    expires_at: float = 0.0
    generation: int = 0
    lost: str | None = None  # why the lease was lost, once it was

    def __post_init__(self) -> None:
        self.object = self.lake.child("_locks", f"{self.pipeline}.json")
        _, path = split_protocol(self.object.uri)
        self.bucket, _, self.key = path.partition("/")
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost_message: str | None = None

    # --- the store ------------------------------------------------------------------------

    def _call(self, method: str, **kwargs):
        return self.lake.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)

    def _read(self) -> tuple[dict, str] | None:
        """The holder and the ETag of that very version, or None when there is no lease."""
        fs = self.lake.fs

        async def get() -> tuple[bytes, str]:
            answer = await fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with answer["Body"] as stream:
                return await stream.read(), answer["ETag"]

        try:
            body, etag = sync(fs.loop, get)
        except FileNotFoundError:
            return None
        return json.loads(body or b"{}"), etag

    def _write(self, holder: dict, **condition) -> str | None:
        """PUT ``holder`` under ``condition``; its new ETag, or None if the condition failed."""
        try:
            answer = self._call("put_object", Body=json.dumps(holder).encode(), **condition)
        except FileExistsError:
            return None
        except OSError as error:  # s3fs: If-Match failed -> EINVAL; a racing writer -> 409
            if (
                "PreconditionFailed" in str(error)
                or "ConditionalRequestConflict" in str(error)
                or getattr(error, "errno", None) == 22
            ):
                return None
            raise
        return answer["ETag"]

    def _holder(self, expires_at: float, generation: int) -> dict:
        return {
            "pipeline": self.pipeline,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run_id": self.run_id,
            "acquired_at": _stamp(now()),
            "expires_at": expires_at,
            "expires": _stamp(expires_at),
            "generation": generation,
        }

    # --- taking, renewing, giving back -------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease or raise ``LeaseBusy`` naming its holder (``LeaseLost`` when a
        lease this process holds already, ``daily``'s, was lost)."""
        fence.check()
        expires_at = now() + self.seconds
        etag = self._write(self._holder(expires_at, 1), IfNoneMatch="*")
        if etag is None:
            found = self._read()
            if found is None:  # released and deleted in between: try once more
                return self.acquire()
            holder, current = found
            if not holder.get("released") and now() < holder.get("expires_at", 0) + SKEW_SECONDS:
                raise LeaseBusy(
                    f"{self.pipeline} is already running (pid {holder.get('pid')} on "
                    f"{holder.get('host')}, run {holder.get('run_id')}, lease until "
                    f"{holder.get('expires')}); lease {self.object.uri}"
                )
            generation = int(holder.get("generation", 0)) + 1
            expires_at = now() + self.seconds
            fence.check()
            etag = self._write(self._holder(expires_at, generation), IfMatch=current)
            if etag is None:  # another run took it between our read and our write
                state = "released" if holder.get("released") else "expired"
                found = self._read()
                winner = found[0] if found else {}
                raise LeaseBusy(
                    f"{self.pipeline} is already running (pid {winner.get('pid')} on "
                    f"{winner.get('host')}, run {winner.get('run_id')}, lease until "
                    f"{winner.get('expires')}): it took the {state} lease of run "
                    f"{holder.get('run_id')} first; lease {self.object.uri}"
                )
            if not holder.get("released"):
                logger.warning(
                    f"{self.pipeline}: took over the lease of run {holder.get('run_id')} "
                    f"(pid {holder.get('pid')} on {holder.get('host')}), expired "
                    f"{holder.get('expires')}"
                )
            self.generation = generation
        else:
            self.generation = 1
        self.etag, self.expires_at = etag, expires_at
        fence.hold(self)
        self._renewer = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{self.pipeline}", daemon=True
        )
        self._renewer.start()

    def renew(self) -> None:
        """Push the expiry forward (compare-and-swap on the ETag); a failed condition means
        another run took the lease over: ``lost``."""
        if self.lost:
            return
        if self._expired():  # a lapsed lease stays lost, even if nobody took it over meanwhile
            logger.error(f"{self.pipeline}: lease lost ({self.lost}); no further write")
            return
        expires_at = now() + self.seconds
        etag = self._write(self._holder(expires_at, self.generation), IfMatch=self.etag)
        if etag is None:
            self.lost = "another run took the lease over"
            logger.error(f"{self.pipeline}: lease lost ({self.lost}); no further write")
            return
        self.etag, self.expires_at = etag, expires_at

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except Exception as error:  # the store unreachable: try again, until expiry
                logger.warning(f"{self.pipeline}: could not renew the lease: {error}")
            if self.lost:
                return

    def _expired(self) -> bool:
        """Past its expiry by the local clock (then ``lost``, for good)."""
        if self.lost is None and now() >= self.expires_at:
            self.lost = f"not renewed before it expired at {_stamp(self.expires_at)}"
        return self.lost is not None

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease still holds (called before every write)."""
        if self._expired():
            if self._lost_message is None:  # the store is asked once who holds it now
                self._lost_message = (
                    f"{self.pipeline}: run {self.run_id} lost its lease ({self.lost}) and "
                    f"stops before its next write; {self.held_now()}; lease {self.object.uri}"
                )
            raise LeaseLost(self._lost_message)

    def held_now(self) -> str:
        """Who holds the lease now, as the store says (for the message of a lost lease)."""
        try:
            found = self._read()
        except Exception as error:  # the store unreachable: say so, the run stops anyway
            return f"who holds it now is unknown (the store did not answer: {error})"
        if found is None:
            return "nobody holds it now"
        holder = found[0]
        who = f"run {holder.get('run_id')} (pid {holder.get('pid')} on {holder.get('host')})"
        if holder.get("released"):
            return f"{who} has held it since and released it"
        if holder.get("run_id") == self.run_id:
            return f"nobody took it over yet (it expired {holder.get('expires')})"
        return f"{who} holds it now, until {holder.get('expires')}"

    def release(self) -> None:
        """Stop renewing and give the lease back (the next run takes it without waiting)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.seconds)
        fence.drop(self)
        if self.lost:
            return
        released = {**self._holder(0.0, self.generation), "released": True}
        try:
            self._write(released, IfMatch=self.etag)
        except Exception as error:  # it expires by itself
            logger.warning(f"{self.pipeline}: could not release the lease: {error}")

    @property
    def marker(self) -> str:
        """What each commit records of the lease it was made under."""
        return f"{self.object.uri}#{self.generation}"
