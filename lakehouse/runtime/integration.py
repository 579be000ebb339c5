"""The lakehouse's integration with FlowerPower 0.37 and Hamilton, installed in one place.

``import lakehouse`` changes nothing outside the package. A pipeline module calls
``install()`` when FlowerPower imports it, which is before its runner builds anything for
the run (``pipelines/*.py`` do, first thing); a notebook or script that runs pipelines
in-process calls it too. Each step is idempotent, and each exists because FlowerPower 0.37
offers no public way to do it (no hooks or adapters from YAML, no executor it builds right):

- ``hooks.install``: ``PipelineRunner._create_retry_manager`` wraps FlowerPower's retry loop
  so one run, however many attempts, passes once through ``conf/hooks.yml``'s hooks (lock,
  ledger, lineage, alert), and ``RetryManager._log_failure`` is silenced (the hooks report
  a failure once); log lines during a run carry its run id (a loguru patcher).
- ``executors.install``: ``PipelineRunner._execute_sync`` builds the Hamilton driver with the
  executor from the pipeline's YAML (FlowerPower runs ``synchronous`` on a 10-thread pool,
  cannot build Dask, and drops keys it does not know); Hamilton's
  ``TaskFutureWrappingPythonFuture.get_state`` waits briefly instead of polling in a busy
  loop.
- ``console.install``: FlowerPower's ``setup_logging``, wherever it was imported, keeps
  library chatter for ``DEBUG`` and colours for terminals.
- ``exit_status.install`` (the ``flowerpower`` command only): ``sys.exit`` records the status
  and leaves with it before native destructors can abort (delta-rs #2184).

``tests/test_cli.py`` checks that ``import lakehouse`` alone leaves all of these untouched;
``tests/test_executors.py`` checks that an installed run reports its executor, so an
upgrade of FlowerPower that bypasses a replacement fails the tests.
"""

from __future__ import annotations

from lakehouse.runtime import console, executors, exit_status, hooks


def install() -> None:
    """Install every replacement above (idempotent)."""
    console.install()
    executors.install()
    exit_status.install()
    hooks.install()
