"""Benchmark: what a run with nothing to do costs, against starting Python and importing DuckDB.

Three commands in turn (A B C A B C ...), each a fresh process, on a lake made once:

- ``flowerpower pipeline run status`` as installed (bytecode compiled at install);
- the same with no bytecode to read (``PYTHONPYCACHEPREFIX`` pointed at an empty folder and
  ``PYTHONDONTWRITEBYTECODE=1``: what every run pays where an install did not compile it and
  the environment may not write it, as in many container images);
- ``python -c "import flowerpower.cli"``: what the ``flowerpower`` command imports before it
  reads a project (FlowerPower, Hamilton, fsspeckit; Hamilton's extensions off, as the
  command has them), the floor of any ``flowerpower pipeline run``;
- ``python -c "import duckdb"``, the yardstick.

    python bench/bench_startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import environment

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def seconds(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    env = environment(work)
    uncompiled = {
        **env,
        "PYTHONPYCACHEPREFIX": str(work / "no-bytecode"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    status = [str(BIN / "flowerpower"), "pipeline", "run", "status"]
    commands = {
        "status, bytecode compiled at install": (status, env),
        "status, no bytecode": (status, uncompiled),
        'python -c "import flowerpower.cli"': (
            [sys.executable, "-c", "import flowerpower.cli"],
            {**env, "HAMILTON_AUTOLOAD_EXTENSIONS": "0"},
        ),
        'python -c "import duckdb"': ([sys.executable, "-c", "import duckdb"], env),
    }
    try:
        subprocess.run(
            status[:-1] + ["daily"], cwd=PROJECT, env=env, capture_output=True, check=True
        )
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, (command, variables) in commands.items():
                times[name].append(seconds(command, variables))
        yardstick = statistics.median(times['python -c "import duckdb"'])
        print(f"\n{'command':<40} {'median s':>9} {'min s':>7} {'x import duckdb':>16}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<40} {median:9.3f} {min(values):7.3f} {median / yardstick:16.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
