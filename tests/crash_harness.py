"""Kill a running pipeline with SIGKILL at a random moment, rerun it, compare every table.

Used by ``tests/test_crash.py`` (20 trials) and ``bench/crash_soak.py`` (hundreds). Also
``silver_killed_at_the_merge``: a silver run stopped in the test's own process where a
batch's MERGE would start (after its quarantine commit and its append of new keys). The
landing zone is prepared once and shared (it is the upstream, read-only for the lake); each
trial gets its own lake. The reference is one uninterrupted run over the same landing zone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml
from deltalake import DeltaTable


def silver_killed_at_the_merge(house, monkeypatch) -> None:
    """Run silver in this process with every batch's MERGE failing; the run fails."""
    import pytest

    from lakehouse.layers.silver import batch

    def killed(*args, **kwargs):
        raise RuntimeError("killed at the MERGE")

    monkeypatch.setattr(batch, "merge", killed)
    with pytest.raises(Exception, match="killed at the MERGE"):
        house.run("silver")
    monkeypatch.undo()


PER_RUN_COLUMNS = ("_ingested_at", "_run_id", "run_id", "quarantined_at")
FLOWERPOWER = str(Path(sys.executable).parent / "flowerpower")


@dataclass
class Trial:
    kill_after: float
    killed: bool  # False when the run finished before the kill time
    differences: list[str]


def lake_tables(lake: Path) -> dict[str, pl.DataFrame]:
    """Every Delta table under ``lake`` as sorted rows, without per-run columns."""
    tables = {}
    for log in sorted(lake.glob("*/*/_delta_log")):
        name = f"{log.parent.parent.name}/{log.parent.name}"
        frame = pl.from_arrow(DeltaTable(str(log.parent)).to_pyarrow_table())
        frame = frame.drop(*PER_RUN_COLUMNS, strict=False)
        tables[name] = frame.sort(frame.columns, nulls_last=True)
    return tables


def differences(expected: dict[str, pl.DataFrame], actual: dict[str, pl.DataFrame]) -> list[str]:
    """What differs between two lakes, table by table (empty: identical)."""
    found = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual or name not in expected:
            found.append(f"{name}: only in {'reference' if name in expected else 'trial'}")
            continue
        want, got = expected[name], actual[name]
        if not want.equals(got):
            lost = want.join(got, on=want.columns, how="anti", nulls_equal=True).height
            extra = got.join(want, on=got.columns, how="anti", nulls_equal=True).height
            found.append(
                f"{name}: {want.height} rows expected, {got.height} found "
                f"({lost} lost, {extra} extra)"
            )
    return found


class Harness:
    """A project copy, a landing zone with ``days`` days, and the layers to crash-test;
    ``start_from``: a lake every run starts from (a copy of it), else an empty one."""

    def __init__(
        self,
        project: Path,
        landing: Path,
        work: Path,
        layers=("bronze", "silver", "gold"),
        start_from: Path | None = None,
    ):
        self.project, self.landing, self.work = project, landing, work
        self.layers = list(layers)
        self.start_from = start_from
        daily = yaml.safe_load((project / "conf" / "pipelines" / "daily.yml").read_text())
        self.daily_config = {
            **daily["run"]["config"],
            "layers": self.layers,
            "project_dir": str(project),
        }

    def env(self, lake: Path) -> dict[str, str]:
        return {
            **os.environ,
            "LAKE_ROOT": str(lake),
            "LANDING_ROOT": str(self.landing),
            "FP_LOG_LEVEL": "WARNING",
        }

    def run(self, lake: Path, timeout: float = 600) -> float:
        """Run the layers to completion in a child process; its wall time."""
        started = time.perf_counter()
        done = subprocess.run(
            self._command(),
            cwd=self.project,
            env=self.env(lake),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"run into {lake} failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        return time.perf_counter() - started

    def kill_at(self, lake: Path, seconds: float) -> bool:
        """Start the layers, SIGKILL them after ``seconds``; True if they were still running."""
        child = subprocess.Popen(
            self._command(),
            cwd=self.project,
            env=self.env(lake),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            child.wait(timeout=seconds)
            return False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return True

    def fresh(self, lake: Path) -> None:
        """``lake`` as a run starts it: empty, or a copy of ``start_from``."""
        shutil.rmtree(lake, ignore_errors=True)
        if self.start_from is not None:
            shutil.copytree(self.start_from, lake)

    def trial(self, reference: dict[str, pl.DataFrame], lake: Path, kill_after: float) -> Trial:
        self.fresh(lake)
        killed = self.kill_at(lake, kill_after)
        self.run(lake)
        return Trial(kill_after, killed, differences(reference, lake_tables(lake)))

    def _command(self) -> list[str]:
        return [FLOWERPOWER, "pipeline", "run", "daily", "--config", json.dumps(self.daily_config)]


def random_kill_times(count: int, longest: float, seed: int) -> list[float]:
    """``count`` kill moments spread over ``[0.2 s, longest]``, reproducible by ``seed``."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.2, longest), 3) for _ in range(count)]


def run_concurrently(harness: Harness, lake: Path, copies: int, layers: list[str]) -> list[int]:
    """Start ``copies`` runs of ``layers`` at once into the same lake; their exit codes."""
    config = {**harness.daily_config, "layers": layers}
    command = [FLOWERPOWER, "pipeline", "run", "daily", "--config", json.dumps(config)]
    logs = [lake.parent / f"{lake.name}-{'-'.join(layers)}-{n}.log" for n in range(copies)]
    children = []
    for log in logs:  # a file, not a pipe nobody reads: a full pipe would block the run
        with log.open("w") as stderr:
            children.append(
                subprocess.Popen(
                    command,
                    cwd=harness.project,
                    env=harness.env(lake),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
    return [child.wait(timeout=600) for child in children]
