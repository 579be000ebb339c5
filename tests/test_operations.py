"""What runs around a pipeline: the lock, the run ledger and the failure alert (conf/hooks.yml)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from conftest import Lakehouse

from lakehouse.coordination import lock
from lakehouse.layers.gold import gold
from lakehouse.ops.ledger import runs as ledger_of

HOLD_HOOK = '''"""Test hook: keep the run (and so its lock) going for a while."""
import time


def before(run, settings):
    time.sleep(float(settings["seconds"]))


def after(run, settings):
    pass
'''


def _with_hook(lakehouse: Lakehouse, order: list[str], **settings) -> None:
    """Add the ``hold`` test hook to the sandbox project at the given place in the order."""
    (lakehouse.project / "hooks" / "hold.py").write_text(HOLD_HOOK)
    path = lakehouse.project / "conf" / "hooks.yml"
    config = yaml.safe_load(path.read_text())
    config["hooks"] = order
    config.pop("hold", None)
    if "hold" in order:
        config["hold"] = settings
    path.write_text(yaml.safe_dump(config))


def _popen(lakehouse: Lakehouse, *arguments: str) -> subprocess.Popen:
    env = {**os.environ, **lakehouse.env(), "FP_LOG_LEVEL": "INFO"}
    command = [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "run", *arguments]
    return subprocess.Popen(
        command, cwd=lakehouse.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _runs(lakehouse: Lakehouse, pipeline: str | None = None) -> pl.DataFrame:
    runs = lakehouse.table("_runs").sort("started_at")
    return runs if pipeline is None else runs.filter(pl.col("pipeline") == pipeline)


def _bronze_rows(lakehouse: Lakehouse) -> dict[str, list]:
    rows = {}
    for name in ("bronze/orders", "bronze/lineitem", "bronze/customer"):
        frame = lakehouse.table(name).drop("_ingested_at", "_run_id", "_source_file")
        rows[name] = frame.sort(frame.columns, nulls_last=True).rows()
    return rows


@pytest.mark.slow  # ten interpreters at once on two cores: half a minute
def test_ten_runs_at_once_one_works_the_others_exit_with_the_lock_code(lakehouse, tmp_path):
    lakehouse.run("landing")
    _with_hook(lakehouse, ["lock", "hold", "ledger", "alert"], seconds=15)
    runs = [_popen(lakehouse, "bronze") for _ in range(10)]
    outcomes = [(run.wait(timeout=240), run.stderr.read().decode()) for run in runs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0] + [lock.EXIT_LOCKED] * 9, [err[-2000:] for _, err in outcomes]
    refused = [err for code, err in outcomes if code == lock.EXIT_LOCKED]
    assert all("bronze is already running (pid " in err for err in refused)
    assert _runs(lakehouse, "bronze")["status"].to_list() == ["succeeded"]

    alone = Lakehouse(tmp_path / "alone", lakehouse.tpch_cache)  # the same landing, one run
    env = {**alone.env(), "LANDING_ROOT": str(lakehouse.landing)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "run", "bronze"],
        cwd=alone.project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert _bronze_rows(alone) == _bronze_rows(lakehouse)


def test_a_killed_run_is_marked_abandoned_and_its_lock_taken_over(lakehouse):
    lakehouse.run("landing")
    _with_hook(lakehouse, ["lock", "ledger", "hold", "alert"], seconds=60)
    killed = _popen(lakehouse, "bronze")
    deadline = time.time() + 60
    while time.time() < deadline:  # until its ledger row says it is running
        if _runs(lakehouse, "bronze").height:  # landing's row is there already
            break
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert _runs(lakehouse, "bronze")["status"].to_list() == ["running"]

    _with_hook(lakehouse, ["lock", "ledger", "alert"])
    done = lakehouse.cli("bronze")
    assert done.returncode == 0, done.stderr
    ledger = _runs(lakehouse, "bronze")
    killed_id = ledger["run_id"][0]
    assert f"taking over the lock of run {killed_id} (pid {killed.pid} is gone" in done.stderr
    assert ledger["status"].to_list() == ["abandoned", "succeeded"]
    assert "killed?" in ledger["error_message"][0]
    assert lakehouse.table("bronze/orders").height > 0


@pytest.mark.slow
def test_the_ledger_records_what_each_run_wrote(lakehouse):
    done = lakehouse.cli("daily")
    assert done.returncode == 0, done.stderr
    ledger = _runs(lakehouse)
    assert ledger["pipeline"].to_list() == [
        "daily",
        "landing",
        "bronze",
        "silver",
        "gold",
        "publish",
    ]
    assert set(ledger["status"]) == {"succeeded"}
    assert (ledger["ended_at"] >= ledger["started_at"]).all()
    bronze = ledger.filter(pl.col("pipeline") == "bronze").row(0, named=True)
    tables = {t["table"]: t for t in json.loads(bronze["tables"])}
    for name in ("bronze/orders", "bronze/lineitem"):
        assert tables[name]["rows"] == lakehouse.table(name).height
        assert tables[name]["version"] == lakehouse.version(name)
        assert tables[name]["watermark_before"] is None  # the first batch
        assert tables[name]["watermark_after"]["batch"] >= 1
    assert bronze["rows_written"] == sum(t["rows"] for t in tables.values())
    assert bronze["rows_read"] == bronze["rows_written"]  # every landed row, nothing dropped
    assert bronze["executor"] == "threadpool(max_workers=2)"
    assert bronze["run_id"] == lakehouse.table("bronze/orders")["_run_id"][0]
    silver = ledger.filter(pl.col("pipeline") == "silver").row(0, named=True)
    assert silver["rows_quarantined"] == sum(
        lakehouse.table(f"_quarantine/{t}").height for t in ("orders", "lineitem")
    )
    assert silver["rows_quarantined"] > 0
    silver_tables = json.loads(silver["tables"])
    orders = next(t for t in silver_tables if t["table"] == "silver/orders")
    assert orders["rows_read"] == lakehouse.table("bronze/orders").height
    published = ledger.filter(pl.col("pipeline") == "publish").row(0, named=True)
    marts = {t["table"]: t for t in json.loads(published["tables"])}
    assert marts["bi/daily_revenue"]["rows"] == lakehouse.table("gold/daily_revenue").height
    assert marts["bi/daily_revenue"]["bytes"] > 0
    assert marts["bi/daily_revenue"]["version"] == lakehouse.version("gold/daily_revenue")

    assert lakehouse.cli("daily").returncode == 0  # the next day: watermarks move on
    second = _runs(lakehouse).filter(pl.col("pipeline") == "bronze").row(1, named=True)
    orders = {t["table"]: t for t in json.loads(second["tables"])}["bronze/orders"]
    assert orders["watermark_before"] == tables["bronze/orders"]["watermark_after"]

    # the README's recipe, with a filter (its rows are written by MERGE: string_view text)
    runs = ledger_of(str(lakehouse.lake))  # noqa: F841 - DuckDB reads it by name
    found = duckdb.sql(
        "SELECT pipeline, status FROM runs WHERE status = 'succeeded' AND pipeline = 'bronze'"
    ).fetchall()
    assert found == [("bronze", "succeeded")] * 2
    assert orders["watermark_after"]["batch"] == orders["watermark_before"]["batch"] + 1


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_failed_run_is_recorded_and_alerted_to_the_webhook(lakehouse, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    alert_file = lakehouse.root / "alert.json"
    monkeypatch.setenv("ALERT_COMMAND", f"cat > {alert_file}")
    lakehouse.run("daily")

    def broken_write(*args, **kwargs):
        raise OSError("disk full while writing gold/daily_revenue")

    monkeypatch.setattr(gold, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        lakehouse.run("gold", inputs={"full_refresh": True})
    server.shutdown()

    failed = _runs(lakehouse).filter(pl.col("status") == "failed").row(0, named=True)
    assert failed["pipeline"] == "gold"
    assert failed["error_type"] == "OSError"
    assert failed["error_message"] == "disk full while writing gold/daily_revenue"
    assert _Webhook.received == [json.loads(alert_file.read_text())]
    alert = _Webhook.received[0]
    assert alert["event"] == "run_failed"
    assert (alert["pipeline"], alert["run_id"]) == ("gold", failed["run_id"])
    assert alert["error"] == "disk full while writing gold/daily_revenue"
