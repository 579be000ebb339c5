"""Hook: one run of a pipeline at a time. A second run exits with code 75 and says who runs.

Settings (``conf/hooks.yml``, ``lock:``): ``dir``, the folder of the lock files (local disk).
"""

from pathlib import Path

from lakehouse import lock
from lakehouse.hooks import Run, RunRefused

SETTINGS = {"dir": str}  # checked against conf/hooks.yml before any run


def before(run: Run, settings: dict) -> None:
    folder = Path(settings.get("dir") or "data/locks")
    folder = folder if folder.is_absolute() else run.project_dir / folder
    try:
        run.state["lock"] = lock.acquire(folder, run.pipeline, run.run_id)
    except lock.Locked as locked:
        raise RunRefused(str(locked), lock.EXIT_LOCKED) from None


def after(run: Run, settings: dict) -> None:
    lock.release(run.state.pop("lock"))
