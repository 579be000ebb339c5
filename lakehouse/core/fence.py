"""The fence: a run that lost its lease writes nothing more.

On a lake shared by several hosts each pipeline run holds a lease
(``lakehouse.coordination.lease``). Every write a run makes (a Delta commit, a table
created, a run ledger row, a landing or published file) first calls ``check()``, which
raises ``LeaseLost`` once a lease this process holds no longer holds: taken over by another
host, or lapsed while the process was paused or cut off from the store. The run then fails
with exit code ``EXIT_LEASE_LOST`` and ``daily`` stops at the layer that found it. This
module imports nothing of the project, so storage and Delta helpers can call it without the
lease's S3 machinery.
"""

from __future__ import annotations

from typing import Protocol

EXIT_LEASE_LOST = 5


class LeaseLost(RuntimeError):
    """This run no longer holds its pipeline's lease: it must not write."""

    exit_code = EXIT_LEASE_LOST


class Held(Protocol):
    @property
    def marker(self) -> str: ...

    def check(self) -> None: ...


_held: list[Held] = []  # the leases this process holds, in the order taken


def hold(lease: Held) -> None:
    _held.append(lease)


def drop(lease: Held) -> None:
    if lease in _held:
        _held.remove(lease)


def check() -> None:
    """Before any write: every lease this process holds still holds (``LeaseLost`` if not)."""
    for lease in list(_held):
        lease.check()


def markers() -> dict[str, str]:
    """Commit metadata naming the leases a commit is made under (none: no lease held)."""
    return {"lakehouse.lease": ",".join(held.marker for held in _held)} if _held else {}


def holds() -> bool:
    """Whether every lease this process holds still holds."""
    try:
        check()
    except LeaseLost:
        return False
    return True
