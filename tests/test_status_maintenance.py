"""The status command (freshness, exit code 3, alert) and the maintenance pipeline."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from lakehouse.ops import status


def _freshness(lakehouse, limits: dict) -> None:
    path = lakehouse.project / "conf" / "pipelines" / "status.yml"
    spec = yaml.safe_load(path.read_text())
    spec["run"]["config"]["freshness"] = limits
    path.write_text(yaml.safe_dump(spec))


@pytest.mark.slow
def test_status_lists_every_table_and_fails_with_code_3_when_one_is_stale(lakehouse, monkeypatch):
    assert lakehouse.cli("daily").returncode == 0
    done = lakehouse.cli("status")
    assert done.returncode == 0, done.stderr
    for name in ("bronze/orders", "silver/lineitem", "gold/daily_revenue", "_quarantine/orders"):
        assert name in done.stdout
    rows = str(lakehouse.table("silver/orders").height)
    assert rows in done.stdout
    runs = lakehouse.table("_runs")
    assert runs.filter(runs["pipeline"] == "gold")["run_id"][0] in done.stdout

    alert_file = lakehouse.root / "alert.json"
    monkeypatch.setenv("ALERT_COMMAND", f"cat > {alert_file}")
    later = (datetime.now(UTC) + timedelta(hours=27)).isoformat()
    done = lakehouse.cli("status", "--inputs", json.dumps({"as_of": later}))
    assert done.returncode == status.EXIT_STALE, done.stderr
    assert "gold/daily_revenue: last commit 27.0 h ago (limit 26 h)" in done.stderr
    alert = json.loads(alert_file.read_text())
    assert alert["event"] == "tables_stale" and alert["pipeline"] == "status"
    assert "gold/customer_value" in alert["error"]

    _freshness(lakehouse, {"gold/not_built_yet": "1h"})
    done = lakehouse.cli("status")
    assert done.returncode == status.EXIT_STALE
    assert "gold/not_built_yet: missing" in done.stderr

    _freshness(lakehouse, {"gold/daily_revenue": "a day"})
    done = lakehouse.cli("status")
    assert done.returncode == 1
    assert "freshness.gold/daily_revenue: 'a day' is not a duration such as 30m, 26h or 8d" in (
        done.stderr
    )


def _rows(lakehouse, name: str) -> list:
    frame = lakehouse.table(name)
    return frame.sort(frame.columns, nulls_last=True).rows()


@pytest.mark.slow
def test_maintenance_compacts_and_vacuums_without_changing_data(lakehouse):
    for _ in range(3):
        lakehouse.run("daily")
    orphan = lakehouse.lake / "bronze" / "orders" / "part-00000-killed-writer.parquet"
    orphan.write_bytes(b"PAR1 left by a killed run PAR1")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    names = ["bronze/orders", "silver/lineitem", "gold/daily_revenue", "_quarantine/lineitem"]
    before = {name: _rows(lakehouse, name) for name in names}
    files_before = len(list((lakehouse.lake / "bronze" / "orders").glob("*.parquet")))

    path = lakehouse.project / "conf" / "pipelines" / "maintenance.yml"
    spec = yaml.safe_load(path.read_text())
    spec["run"]["config"]["retention_hours"] = 0
    path.write_text(yaml.safe_dump(spec))
    done = lakehouse.cli("maintenance")
    assert done.returncode == 0, done.stderr
    assert "files_before" in done.stdout and "bronze/orders" in done.stdout

    assert not orphan.exists()
    assert len(list((lakehouse.lake / "bronze" / "orders").glob("*.parquet"))) < files_before
    assert {name: _rows(lakehouse, name) for name in names} == before
    assert (lakehouse.lake / "bronze" / "orders" / "_delta_log" / "_last_checkpoint").exists()

    silver_before = lakehouse.table("silver/orders").height
    lakehouse.run("daily")  # the change data feed still reads right after compaction
    assert lakehouse.table("silver/orders").height > silver_before


def test_the_run_ledger_compacts_itself_and_keeps_one_row_per_run(tmp_path):
    """Each run adds a file to the ledger; past ``MAX_FILES`` a run's end compacts them and
    checkpoints the log, so reading the ledger at each run start stays cheap for years."""
    from pathlib import Path

    import polars as pl
    from deltalake import DeltaTable

    from lakehouse.core.runs import Run
    from lakehouse.core.storage import Location
    from lakehouse.ops import ledger

    where = ledger.location(str(tmp_path / "lake"))
    runs = []
    for number in range(ledger.MAX_FILES + 4):
        run = Run(f"sensor_{number % 3}", f"run-{number:03d}", Path(tmp_path), {"n": number})
        ledger.record_start(where, run)
        run.finish(
            "succeeded" if number % 5 else "failed",
            error=ValueError("bad") if number % 5 == 0 else None,
        )
        ledger.record_end(where, run)
        runs.append(run)
        files = len(DeltaTable(where.uri).file_uris())
        assert files <= ledger.MAX_FILES, f"run {number}: {files} files"
    table = DeltaTable(where.uri)
    assert Location.from_uri(where.uri).child("_delta_log", "_last_checkpoint").exists()
    rows = pl.from_arrow(table.to_pyarrow_table()).sort("run_id")
    assert rows["run_id"].to_list() == [r.run_id for r in runs]
    assert rows["status"].to_list() == [r.status for r in runs]
    assert rows["error_type"].to_list() == [r.error_type for r in runs]


def test_a_run_starts_when_the_ledger_holds_merged_text(tmp_path):
    """A ledger file rewritten by delta-rs (a MERGE, a compaction) stores text as
    string_view; finding the runs left ``running`` must still work on it."""
    from pathlib import Path

    import polars as pl
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from lakehouse.core.runs import Run
    from lakehouse.ops import ledger

    where = ledger.location(str(tmp_path / "lake"))
    killed = Run("loader", "run-killed", Path(tmp_path), {})
    ledger.record_start(where, killed)  # never ends: killed
    for number in range(3):
        run = Run(("loader", "mailer")[number % 2], f"run-{number}", Path(tmp_path), {})
        ledger.record_start(where, run)
        run.finish("failed" if number else "succeeded", error=ValueError("x") if number else None)
        ledger.record_end(where, run)
    table = DeltaTable(where.uri)
    every_row = table.to_pyarrow_table()
    table.merge(
        every_row, "t.run_id = s.run_id", source_alias="s", target_alias="t"
    ).when_matched_update_all().execute()  # one file of every row, as MERGE writes it
    table = DeltaTable(where.uri)
    assert {str(pq.read_schema(uri).field("status").type) for uri in table.file_uris()} == {
        "string_view"
    }

    ledger.record_start(where, Run("loader", "run-next", Path(tmp_path), {}))
    rows = pl.from_arrow(DeltaTable(where.uri).to_pyarrow_table())
    status = dict(zip(rows["run_id"], rows["status"], strict=True))
    assert status == {
        "run-killed": "abandoned",
        "run-0": "succeeded",
        "run-1": "failed",
        "run-2": "failed",
        "run-next": "running",
    }
