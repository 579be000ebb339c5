"""Hook: one run of a pipeline at a time. A second run exits with code 75 and says who runs.

Settings (``conf/hooks.yml``, ``lock:``): ``dir``, the folder of the local lock files;
``lake_root``, the lake; ``kind``: ``flock`` (a lock file on this machine's disk), ``lease``
(a lease object in the lake, for runs on several machines; needs a lake on S3), or ``auto``
(the default: a lease when the lake is on an object store, else ``flock``);
``lease_seconds``, how long a lease holds without renewal (it is renewed every third of it).
"""

from pathlib import Path

from lakehouse.coordination import lease, lock
from lakehouse.core.runs import Run
from lakehouse.core.settings import ConfigError
from lakehouse.core.storage import Location, check_conditional_put
from lakehouse.runtime.hooks import RunRefused

SETTINGS = {"dir": str, "lake_root": str, "kind": str, "lease_seconds": float}
KINDS = ("auto", "flock", "lease")


def before(run: Run, settings: dict) -> None:
    kind = settings.get("kind") or "auto"
    if kind not in KINDS:
        raise ConfigError(f"conf/hooks.yml lock.kind: {kind!r} is not one of {', '.join(KINDS)}")
    lake = Location.from_uri(settings.get("lake_root") or "data/lake")
    if kind == "lease" or (kind == "auto" and lease.is_object_store(lake)):
        if not lease.is_object_store(lake):
            raise ConfigError(
                f"conf/hooks.yml lock.kind: lease needs a lake on S3 (lake_root is {lake.uri})"
            )
        check_conditional_put(lake)  # the lease, like Delta's commits, relies on them
        held = lease.Lease(
            lake, run.pipeline, run.run_id, float(settings.get("lease_seconds") or 120)
        )
        try:
            held.acquire()
        except lease.LeaseBusy as busy:
            raise RunRefused(str(busy), lock.EXIT_LOCKED) from None
        run.state["lease"] = held
        return
    folder = Path(settings.get("dir") or "data/locks")
    folder = folder if folder.is_absolute() else run.project_dir / folder
    try:
        run.state["lock"] = lock.acquire(folder, run.pipeline, run.run_id)
    except lock.Locked as locked:
        raise RunRefused(str(locked), lock.EXIT_LOCKED) from None


def after(run: Run, settings: dict) -> None:
    if "lease" in run.state:
        run.state.pop("lease").release()
    else:
        lock.release(run.state.pop("lock"))
