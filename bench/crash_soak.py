"""Soak test: hundreds of SIGKILLs at random moments, each followed by a rerun.

Every trial kills ``daily`` (bronze, silver, gold) at a random moment in a fresh lake,
reruns it, and compares every table with one uninterrupted run (``tests/crash_harness.py``).

    python bench/crash_soak.py --trials 300 [--days 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "tests"))

from crash_harness import Harness, differences, lake_tables, random_kill_times  # noqa: E402
from flowerpower import FlowerPowerProject  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="crash-soak-"))
    project = root / "project"
    shutil.copytree(PROJECT / "conf", project / "conf")
    shutil.copytree(PROJECT / "pipelines", project / "pipelines")
    os.environ.update(
        LANDING_ROOT=str(root / "landing"),
        LAKE_ROOT=str(root / "unused"),
        TPCH_CACHE_DIR=str(root / "tpch"),
        FP_LOG_LEVEL="WARNING",
    )
    _land(project, args.days)

    harness = Harness(project, root / "landing", root)
    seconds = harness.run(root / "reference")
    reference = lake_tables(root / "reference")
    failures, killed, started = 0, 0, time.perf_counter()
    for i, kill_after in enumerate(random_kill_times(args.trials, seconds, args.seed), 1):
        trial = harness.trial(reference, root / "trial", kill_after)
        killed += trial.killed
        if trial.differences:
            failures += 1
            print(f"trial {i}: killed after {kill_after}s: {trial.differences}", flush=True)
        if i % 10 == 0:
            print(
                f"{i} trials, {killed} killed mid-run, {failures} with lost or duplicated rows",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(
        f"\n{args.trials} trials in {elapsed:.0f} s: {killed} killed mid-run, "
        f"{failures} failed (lost or duplicated rows)"
    )
    assert differences(reference, lake_tables(root / "reference")) == []
    shutil.rmtree(root)
    sys.exit(1 if failures else 0)


def _land(project: Path, days: int) -> None:
    """Drop ``days`` days of demo data with defects on, once, for every trial to share."""
    import yaml

    path = project / "conf" / "pipelines" / "landing.yml"
    spec = yaml.safe_load(path.read_text())
    spec["run"]["config"].update(days_per_run=days, defect_rate=0.05)
    path.write_text(yaml.safe_dump(spec))
    FlowerPowerProject.load(str(project)).run("landing")


if __name__ == "__main__":
    main()
