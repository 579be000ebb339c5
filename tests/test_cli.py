"""The command a cron line runs: ``flowerpower pipeline run daily``, in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import yaml
from deltalake import DeltaTable


def test_daily_from_the_command_line(lakehouse):
    done = lakehouse.cli("daily")
    assert done.returncode == 0, done.stderr[-3000:]
    headline = done.stdout.splitlines()[0]
    assert headline.startswith("daily daily-") and ": succeeded in " in headline, done.stdout
    assert "quarantined by rule:" in done.stdout
    for table in (
        "bronze/lineitem",
        "silver/orders",
        "silver/lineitem",
        "gold/daily_revenue",
        "gold/pricing_summary",
        "gold/customer_value",
    ):
        assert DeltaTable(str(lakehouse.lake / table)).count() > 0, table


def test_a_bad_input_exits_2_with_the_reason_and_no_colour_codes_in_a_log(lakehouse):
    # CI variables make loguru colour a redirected stream; a log file gets plain lines
    ci = {"CI": "1", "GITHUB_ACTIONS": "true"}
    done = lakehouse.cli("silver", "--inputs", '{"from_date": "1992-01-01"}', env=ci)
    assert done.returncode == 2
    assert "a backfill needs both from_date and to_date" in done.stderr
    assert "\x1b[" not in done.stderr + done.stdout


def test_an_empty_log_level_means_the_default_and_no_deprecation_chatter_shows(lakehouse):
    """An env file's ``FP_LOG_LEVEL=`` used to fail every run before it read a pipeline."""
    done = lakehouse.cli("status", env={"FP_LOG_LEVEL": ""})
    assert "does not exist" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 3  # the run itself ran: every table of an empty lake is missing
    assert "stale tables" in done.stdout
    assert "disable_telemetry" not in done.stderr  # Hamilton's deprecation chatter, silenced


def test_an_executor_setting_at_fault_exits_2_like_every_setting(lakehouse):
    spec = yaml.safe_load((lakehouse.project / "conf" / "pipelines" / "status.yml").read_text())
    spec["run"]["executor"] = {"type": "sparky"}
    (lakehouse.project / "conf" / "pipelines" / "status.yml").write_text(yaml.safe_dump(spec))
    done = lakehouse.cli("status")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "status.yml run.executor.type: 'sparky' is not an executor type" in done.stdout


IMPORT_ALL = """
import importlib, pkgutil, sys
import flowerpower.utils.logging as fp_logging
from flowerpower.pipeline.retry import RetryManager
from flowerpower.pipeline.runner import PipelineRunner
from hamilton.execution.executors import TaskFutureWrappingPythonFuture as Future

def state():
    return (PipelineRunner._create_retry_manager, PipelineRunner._execute_sync,
            RetryManager._log_failure, Future.get_state, fp_logging.setup_logging, sys.exit)

before = state()
import lakehouse
for found in pkgutil.walk_packages(lakehouse.__path__, "lakehouse."):
    importlib.import_module(found.name)
untouched = state() == before
from lakehouse.runtime import integration
integration.install()
print(untouched, [a is b for a, b in zip(state(), before)])
"""


def test_importing_the_engine_changes_nothing_until_the_integration_is_installed(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # every module imported: nothing patched; installed: the runner, retries, futures and
    # logging replaced (sys.exit only in the flowerpower command)
    assert done.stdout.split("\n")[0] == "True [False, False, False, False, False, True]"
