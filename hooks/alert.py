"""Hook: an alert when a run fails, the status run's stale tables included (not when a run is
refused because another run holds the lock).

Settings (``conf/hooks.yml``, ``alert:``): ``command``, a shell command that gets the alert
as JSON on stdin; ``webhook_url_env``, the environment variable holding a URL to POST it to.
"""

from lakehouse.core.runs import Run
from lakehouse.ops import alerts

SETTINGS = {"command": str, "webhook_url_env": str}  # checked before any run


def before(run: Run, settings: dict) -> None:
    pass


def after(run: Run, settings: dict) -> None:
    if run.status != "failed":
        return
    alert = {
        "event": "tables_stale" if run.error_type == "StaleTables" else "run_failed",
        "pipeline": run.pipeline,
        "run_id": run.run_id,
        "host": run.host,
        "started_at": run.started_at.isoformat(),
        "seconds": round(run.seconds or 0, 3),
        "error_type": run.error_type,
        "error": run.error_message,
    }
    alerts.send(alert, settings.get("command"), settings.get("webhook_url_env"))
