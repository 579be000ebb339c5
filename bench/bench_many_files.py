"""Benchmark: a drop of many small files, listed, planned, staged and committed by bronze.

For each count, a landing folder of that many one-row CSV files of the demo's ``orders``
source is written, then ``flowerpower pipeline run bronze`` ingests them into an empty
lake, run again (as cron would) while files wait (``max_files_per_run`` in bronze.yml);
the script prints the runs, their wall time, files per second and the peak memory of the
largest run (the children's max RSS), and checks every row landed. Then the folder's
listing alone, each way in a child process of its own: fsspec's ``ls`` (a dict per file),
reduced to what bronze keeps, against ``lakehouse.io.listing`` (the folder read entry by
entry); seconds and the memory the listing added, and their ratios.

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


# Each lists the folder and keeps (path, size, version, modified) per file, no more; its
# imports are done before the clock and the memory are read.
LISTINGS = {
    "fsspec ls": (
        "fs = fsspec.filesystem('file')",
        "listed = [(i['name'], i['size'], i['mtime'], i['mtime'])"
        " for i in fs.ls(folder, detail=True) if i['type'] == 'file']",
    ),
    "lakehouse.io.listing": (
        "from lakehouse.io.listing import files_in; fs = fsspec.filesystem('file')",
        "listed = list(files_in(fs, folder))",
    ),
}
MEASURE = """
import sys, time, fsspec, psutil
folder = sys.argv[1]
{setup}
before, started = psutil.Process().memory_info().rss, time.perf_counter()
{listing}
seconds, added = time.perf_counter() - started, psutil.Process().memory_info().rss - before
print(len(listed), seconds, added / 2**20)
"""


def listings(folder: Path) -> dict[str, tuple[float, float]]:
    """(seconds, MiB added) of each way of listing ``folder``."""
    figures = {}
    for name, (setup, listing) in LISTINGS.items():
        code = MEASURE.format(setup=setup, listing=listing)
        out = subprocess.run(
            [sys.executable, "-c", code, str(folder)], cwd=PROJECT, capture_output=True,
            text=True, check=True,
        ).stdout.split()  # fmt: skip
        figures[name] = (float(out[1]), float(out[2]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 200_000])
    args = parser.parse_args()
    print(f"{'files':>9} {'runs':>5} {'seconds':>9} {'files/s':>9} {'peak MiB':>9}")
    listed: dict[int, dict[str, tuple[float, float]]] = {}
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
            listed[count] = listings(work / "landing" / "orders")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nthe listing alone\n{'files':>9} {'way':<22} {'seconds':>8} {'MiB':>6}")
    for count, figures in listed.items():
        for name, (seconds, mib) in figures.items():
            print(f"{count:>9,} {name:<22} {seconds:>8.2f} {mib:>6.0f}")
        (old_s, old_mib), (new_s, new_mib) = figures.values()
        ratios = f"{new_s / old_s:>7.2f}x {new_mib / old_mib:>5.2f}x"
        print(f"{count:>9,} {'ratio lean / fsspec':<22} {ratios}")


if __name__ == "__main__":
    main()
