"""Benchmark: this checkout against an earlier revision, side by side, for regressions.

The earlier revision is checked out into a temporary git worktree and run with this
checkout's virtual environment (its lakehouse package first on the path). Each workload
runs in both, in turn (A B A B ...), each run a fresh process; the script prints each
side's median and the ratio of the medians (this checkout / the revision):

- ``validate``: silver's validation of N TPC-H line items arriving as text (typing, rules,
  deduplication, partition), the best of 3 rounds inside the process;
- ``idle``: ``flowerpower pipeline run silver`` with nothing to do (a run's fixed cost),
  on a lake the script makes once with ``daily``.

    python bench/bench_revisions.py --baseline HEAD~5 --rounds 5
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

VALIDATE = """
import sys, time
from pathlib import Path
import polars as pl
from demo import landing, tpch
from lakehouse.declare import catalog
try:
    from lakehouse.layers.silver.batch import validated
except ImportError:  # before the silver batch had a module of its own
    from lakehouse.layers.silver.conform import split as validated
rows, cache = int(sys.argv[1]), sys.argv[2]
entity = catalog.load_dataset(Path("demo/tpch.yml")).entities["lineitem"]
lines = tpch.read_generated(tpch.generate(0.3, cache), "lineitem").head(rows)
raw = landing.as_text(lines.select(list(entity.columns))).with_columns(
    _commit_version=pl.lit(1, pl.Int64), _source_file=pl.lit("bench.csv")
)
best = float("inf")
for _ in range(3):
    started = time.perf_counter()
    valid, rejected = validated(raw, entity, None)
    best = min(best, time.perf_counter() - started)
print(best)
"""


def worktree(revision: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench_revision_")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(folder), revision],
        cwd=PROJECT,
        check=True,
    )
    return folder


def validate_seconds(tree: Path, lake: Path, rows: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE, str(rows), str(PROJECT / "data" / "tpch")],
        cwd=tree,
        env=environment(lake, PYTHONPATH=str(tree)),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def idle_seconds(tree: Path, lake: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "flowerpower"), "pipeline", "run", "silver"],
        cwd=tree,
        env=environment(lake, PYTHONPATH=str(tree)),
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a git revision, e.g. HEAD~5")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    trees = {"this checkout": PROJECT, args.baseline: worktree(args.baseline)}
    lake = Path(tempfile.mkdtemp(prefix="bench_revision_lake_"))
    try:
        print(f"a lake for the idle runs: daily at {lake} ...", flush=True)
        env = environment(lake, PYTHONPATH=str(PROJECT))
        subprocess.run(
            [str(BIN / "flowerpower"), "pipeline", "run", "daily"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            check=True,
        )
        workloads = {
            f"validate {args.rows:,} line items (s, best of 3 in-process)": (
                lambda tree: validate_seconds(tree, lake, args.rows)
            ),
            "silver run with nothing to do (s, whole process)": (
                lambda tree: idle_seconds(tree, lake)
            ),
        }
        for name, measure in workloads.items():
            times: dict[str, list[float]] = {label: [] for label in trees}
            for _ in range(args.rounds):
                for label, tree in trees.items():
                    times[label].append(measure(tree))
            medians = {label: statistics.median(values) for label, values in times.items()}
            print(f"\n{name}")
            for label, value in medians.items():
                print(f"  {label:>16}: median {value:.3f}  (min {min(times[label]):.3f})")
            ratio = medians["this checkout"] / medians[args.baseline]
            print(f"  ratio this checkout / {args.baseline}: {ratio:.2f}")
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(trees[args.baseline])],
            cwd=PROJECT,
            check=False,
        )
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
