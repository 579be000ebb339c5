"""Hook: a row in the run ledger (``lake_root/_runs``) for every run, failed ones included.

Settings (``conf/hooks.yml``, ``ledger:``): ``lake_root``, the lake whose ``_runs`` it is.
"""

from lakehouse.core.runs import Run
from lakehouse.ops import ledger

SETTINGS = {"lake_root": str}  # checked against conf/hooks.yml before any run


def before(run: Run, settings: dict) -> None:
    ledger.record_start(ledger.location(settings.get("lake_root") or "data/lake"), run)


def after(run: Run, settings: dict) -> None:
    ledger.record_end(ledger.location(settings.get("lake_root") or "data/lake"), run)
