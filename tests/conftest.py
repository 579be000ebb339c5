"""Shared fixtures: a copy of the project with its lake and landing zone in a temp folder."""

# ruff: noqa: E402
from __future__ import annotations

import os

# The flowerpower command runs with Hamilton's extension autoloading off (lakehouse_startup.py);
# so do the runs these tests make in process. It holds from Hamilton's first import on.
os.environ.setdefault("HAMILTON_AUTOLOAD_EXTENSIONS", "0")

import contextlib
import json
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable
from flowerpower import FlowerPowerProject

from demo import tpch

# The project the tests copy their pipelines, hooks and settings from (another checkout, or a
# project with its own conf/, can be named in LAKEHOUSE_TEST_PROJECT). The datasets of a
# test's lake are never the project's: each test declares its own (the TPC-H demo's
# declaration from demo/tpch.yml, web_events from tests/fixtures, ...).
REPOSITORY = Path(__file__).resolve().parent.parent
PROJECT_DIR = Path(os.environ.get("LAKEHOUSE_TEST_PROJECT") or REPOSITORY)
DEMO_DECLARATION = REPOSITORY / "demo" / "tpch.yml"


def copy_project(target: Path) -> None:
    """The project's settings, pipelines and hooks copied into ``target``, its datasets
    replaced by the demo's own declaration (the only dataset a test starts from)."""
    ignored = shutil.ignore_patterns("datasets", "__pycache__")
    for folder in ("conf", "pipelines", "hooks"):
        shutil.copytree(PROJECT_DIR / folder, target / folder, ignore=ignored)
    (target / "conf" / "datasets").mkdir()
    shutil.copy(DEMO_DECLARATION, target / "conf" / "datasets" / "tpch.yml")


class Lakehouse:
    """A project copy whose YAML points at a temp lake; runs pipelines in this process."""

    def __init__(self, root: Path, tpch_cache: Path):
        self.root = root
        self.project = root / "project"
        self.landing = root / "landing"
        self.lake = root / "lake"
        self.tpch_cache = tpch_cache
        copy_project(self.project)
        self.configure("bronze", settle_seconds=0)  # files here are complete when the test runs

    def switch_demo(self, on: bool) -> None:
        """Turn the TPC-H demo dataset on or off in this copy (``enabled`` in its YAML)."""
        demo = self.project / "conf" / "datasets" / "tpch.yml"
        switch = f"enabled: {'true' if on else 'false'}"
        demo.write_text(re.sub(r"(?m)^enabled: .*$", switch, demo.read_text()))

    def configure(self, pipeline: str, **config) -> None:
        """Change keys of ``run.config`` in ``conf/pipelines/<pipeline>.yml``."""
        path = self.project / "conf" / "pipelines" / f"{pipeline}.yml"
        spec = yaml.safe_load(path.read_text())
        spec["run"]["config"].update(config)
        path.write_text(yaml.safe_dump(spec))

    def env(self) -> dict[str, str]:
        return {
            "LANDING_ROOT": str(self.landing),
            "LAKE_ROOT": str(self.lake),
            "TPCH_CACHE_DIR": str(self.tpch_cache),
            "MARTS_DUCKDB": str(self.root / "marts.duckdb"),
        }

    def cli(self, *arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """``flowerpower pipeline run ...`` in a fresh process, the way cron runs it."""
        env = {**os.environ, **self.env(), "FP_LOG_LEVEL": "INFO", **(env or {})}
        command = [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "run", *arguments]
        return subprocess.run(
            command, cwd=self.project, env=env, capture_output=True, text=True, timeout=300
        )

    def run(self, pipeline: str, **kwargs) -> dict:
        project = FlowerPowerProject.load(base_dir=str(self.project))
        return project.run(pipeline, **kwargs)

    def table(self, name: str) -> pl.DataFrame:
        return pl.from_arrow(DeltaTable(str(self.lake / name)).to_pyarrow_table())

    def version(self, name: str) -> int:
        return DeltaTable(str(self.lake / name)).version()

    def manifests(self) -> list[dict]:
        folder = self.landing / "_manifest"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def last_day(self) -> date:
        return date.fromisoformat(self.manifests()[-1]["day"])

    def generated(self, scale_factor: float = 0.01) -> Path:
        return tpch.generate(scale_factor, str(self.tpch_cache))


@pytest.fixture(scope="session")
def tpch_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tpch")


@contextlib.contextmanager
def sandbox(root: Path, tpch_cache: Path):
    """A Lakehouse whose environment and working folder hold only inside the block."""
    patch = pytest.MonkeyPatch()
    house = Lakehouse(root, tpch_cache)
    for name, value in house.env().items():
        patch.setenv(name, value)
    patch.chdir(house.project)
    try:
        yield house
    finally:
        patch.undo()


@pytest.fixture
def lakehouse(tmp_path, tpch_cache):
    with sandbox(tmp_path, tpch_cache) as house:
        yield house


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1 for the session (see postgres_server.py)."""
    from postgres_server import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()
