"""The "Bring your own data" walkthrough (docs/guide/bring-your-own-data.md), followed as a new
user would: its commands and files taken from that page itself, run in a copy of the project
with the default paths (data/landing, data/lake, data/marts.duckdb), then what the page says
they leave checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
from conftest import copy_project
from deltalake import DeltaTable

PROJECT_DIR = Path(__file__).resolve().parent.parent
GUIDE = PROJECT_DIR / "docs" / "guide" / "bring-your-own-data.md"
BIN = Path(sys.executable).parent


def _walkthrough_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the guide's walkthrough section, in order."""
    page = GUIDE.read_text()
    section = page.split("# Walkthrough: from an empty landing folder to a first mart\n")[1]
    section = re.split(r"\n##+ ", section)[0]  # up to the next heading (## or deeper)
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def _sh(script: str, project: Path) -> None:
    script = script.replace(".venv/bin/", f"{BIN}/")  # this environment's, not a project venv
    env = {k: v for k, v in os.environ.items() if k not in ("LAKE_ROOT", "LANDING_ROOT")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=project, env={**env, "FP_LOG_LEVEL": "INFO"}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{script}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def _table(project: Path, name: str) -> pl.DataFrame:
    return pl.from_arrow(DeltaTable(str(project / "data" / "lake" / name)).to_pyarrow_table())


def test_the_bring_your_own_data_walkthrough_works_as_written(tmp_path):
    project = tmp_path / "project"
    copy_project(project)  # the demo's declaration, not this project's own datasets
    blocks = _walkthrough_blocks()
    assert [language for language, _ in blocks] == [
        "bash",
        "bash",
        "yaml",
        "python",
        "yaml",
        "bash",
    ]
    (land, infer, entity, marts, mart_contract, run) = (text for _, text in blocks)

    _sh(land, project)  # 1. the demo off, a first file landed
    _sh(infer, project)  # 2. the draft
    declaration = project / "conf" / "datasets" / "trips.yml"
    draft = declaration.read_text()
    for column in ("trip_id", "started_at", "fare"):
        assert f"{column}:" in draft, draft
    declaration.write_text(entity)  # 3. the finished entity
    (project / "pipelines" / "trips_marts.py").write_text(marts)  # 4. the mart
    declaration.write_text(entity + "\n" + mart_contract)
    _sh(run, project)  # 5. daily, then the quarantine report

    silver = _table(project, "silver/trips")
    assert sorted(silver["trip_id"]) == ["T-000001", "T-000002", "T-000003"]
    late = silver.filter(pl.col("trip_id") == "T-000003").row(0, named=True)
    assert str(late["trip_date"]) == "2024-05-01"  # 21:50 UTC
    held = _table(project, "_quarantine/trips")
    assert held["row"].str.contains("T-000004").to_list() == [True]
    assert "rider_type" in held["reason"][0]
    mart = _table(project, "gold/daily_station_trips").sort("start_station")
    assert mart["start_station"].to_list() == ["Central Station", "Harbour", "Old Town"]
    assert mart["trips"].to_list() == [1, 1, 1]
    with duckdb.connect(str(project / "data" / "marts.duckdb"), read_only=True) as con:
        published = con.execute("SELECT count(*) FROM daily_station_trips").fetchone()[0]
    assert published == mart.height
