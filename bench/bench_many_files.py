"""Benchmark: a drop of many small files, listed, planned, staged and committed by bronze.

For each count, a landing folder of that many one-row CSV files of the demo's ``orders``
source is written, then ``flowerpower pipeline run bronze`` ingests them into an empty
lake, run again (as cron would) while files wait (``max_files_per_run`` in bronze.yml);
the script prints the runs, their wall time, files per second and the peak memory of the
largest run (the children's max RSS), and checks every row landed.

    python bench/bench_many_files.py --files 10000 200000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from deltalake import DeltaTable
from scratch import environment

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HEADER = (
    "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_orderpriority,o_clerk,"
    "o_shippriority,o_comment\n"
)


def land(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        row = f"{i + 1},1,O,10.00,1995-01-01,1-URGENT,Clerk#000000001,0,small file {i}\n"
        (folder / f"orders_{i:06d}.csv").write_text(HEADER + row)
    old = time.time() - 3600  # settled: bronze takes a file unchanged for settle_seconds
    for path in folder.iterdir():
        os.utime(path, (old, old))


def ingest(work: Path) -> tuple[float, float]:
    """(wall seconds, peak MiB) of one bronze run, as a child process."""
    env = environment(work)
    command = [str(BIN / "flowerpower"), "pipeline", "run", "bronze"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("  (peak memory: no higher than an earlier run's; shown as that)")
    return seconds, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 200_000])
    args = parser.parse_args()
    print(f"{'files':>9} {'runs':>5} {'seconds':>9} {'files/s':>9} {'peak MiB':>9}")
    for count in sorted(args.files):
        work = Path(tempfile.mkdtemp(prefix="bench_many_files_"))
        try:
            land(work / "landing" / "orders", count)
            runs, seconds, peak, landed = 0, 0.0, 0.0, 0
            while landed < count and runs < 100:
                took, peak = ingest(work)
                runs, seconds = runs + 1, seconds + took
                table = DeltaTable(str(work / "lake" / "bronze" / "orders"))
                landed = pl.from_arrow(table.to_pyarrow_table(columns=["o_orderkey"])).height
            assert landed == count, f"{landed} rows of {count} landed"
            rate = count / seconds
            print(f"{count:>9,} {runs:>5} {seconds:>9.1f} {rate:>9,.0f} {peak:>9,.0f}")
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
