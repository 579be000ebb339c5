"""Hook: OpenLineage events for every run: START before it, COMPLETE or FAIL after it.

Settings (``conf/hooks.yml``, ``lineage:``): ``transport`` (none, console, file, http),
``namespace`` (of the jobs), ``url`` and ``endpoint`` (http), ``api_key_env`` (the name
of the variable holding the API key, never the key), ``file`` (file), ``timeout_seconds``
(the longest a run waits for the consumer). See ``lakehouse/ops/lineage.py``.
"""

from lakehouse.core.runs import Run
from lakehouse.ops import lineage

SETTINGS = {
    "transport": str,
    "namespace": str,
    "url": str,
    "endpoint": str,
    "api_key_env": str,
    "file": str,
    "timeout_seconds": float,
}
WHERE = "conf/hooks.yml lineage"


def before(run: Run, settings: dict) -> None:
    emitter = lineage.Emitter(settings, WHERE)
    run.state["lineage"] = emitter
    if emitter.enabled:
        emitter.emit([lineage.event(run, "START", emitter.namespace)])


def after(run: Run, settings: dict) -> None:
    emitter = run.state.get("lineage")
    if emitter is None or not emitter.enabled or run.status not in ("succeeded", "failed"):
        return
    kind = "COMPLETE" if run.status == "succeeded" else "FAIL"
    emitter.emit([lineage.event(run, kind, emitter.namespace)])
