"""Benchmark: bronze and gold on every executor, side by side, and each executor's per-task cost.

The whole TPC-H dataset at ``--scale-factor`` lands as ``--files`` CSV files per fact table
(orders, lineitem, split by order date) plus one Parquet snapshot per dimension. Then, for
each executor in turn, in one session: bronze ingests every file into an empty lake (one task
per file) and gold rebuilds the marts from the same silver tables (one task per group of
months or customers). Each run is its own ``flowerpower pipeline run`` process, so the times
include starting Python and the executor, as cron sees them. Speedups are against
``synchronous`` measured in the same session.

Per-task cost: tiny tasks that double a number, through the same executors in this process,
after one warm-up run: (time for 2N tasks - time for N) / N, so that fixed costs cancel; the
fixed cost of a run
(starting the executor, and a pool's processes, which Hamilton starts for every run) is
what remains of the time for N.

    python bench/bench_executors.py --scale-factor 0.1 [--files 16] [--workdir bench/out]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

PROJECT = Path(__file__).resolve().parent.parent
FLOWERPOWER = str(Path(sys.executable).parent / "flowerpower")
EXECUTORS = {  # name -> command-line flags (2 workers on this 2-core machine)
    "synchronous": ["--executor", "synchronous"],
    "threadpool": ["--executor", "threadpool", "--executor-max-workers", "2"],
    "processpool": ["--executor", "processpool", "--executor-max-workers", "2"],
    "dask": ["--executor", "dask", "--executor-max-workers", "2"],
    "ray": ["--executor", "ray", "--executor-num-cpus", "2"],
}
SPECS = {  # the same executors for the tiny-task measurement
    "synchronous": {"type": "synchronous"},
    "threadpool": {"type": "threadpool", "max_workers": 2},
    "processpool": {"type": "processpool", "max_workers": 2},
    "dask": {"type": "dask", "max_workers": 2},
    "ray": {"type": "ray", "num_cpus": 2},
}
GOLD = ("daily_revenue", "pricing_summary", "customer_value")


def land(scale_factor: float, files: int, landing: Path, tpch_cache: Path) -> int:
    """The whole dataset as ``files`` CSV files per fact table, dimensions as Parquet."""
    from demo import tpch

    generated = tpch.generate(scale_factor, str(tpch_cache))
    orders = tpch.read_generated(generated, "orders").sort("o_orderdate")
    lines = tpch.read_generated(generated, "lineitem")
    edges = [orders["o_orderdate"][i * orders.height // files] for i in range(files)]
    edges.append(date(9999, 12, 31))
    count = 0
    for part in range(files):
        chunk = orders.filter(
            pl.col("o_orderdate").is_between(edges[part], edges[part + 1], "left")
        )
        keys = chunk.select("o_orderkey")
        for name, frame in (
            ("orders", chunk),
            ("lineitem", lines.join(keys, left_on="l_orderkey", right_on="o_orderkey", how="semi")),
        ):
            folder = landing / name
            folder.mkdir(parents=True, exist_ok=True)
            frame.write_csv(folder / f"{name}_part{part:03d}.csv")
            count += 1
    for name in tpch.DIMENSIONS:
        folder = landing / name
        folder.mkdir(parents=True, exist_ok=True)
        tpch.read_generated(generated, name).write_parquet(folder / f"{name}_full.parquet")
        count += 1
    return count


def run(pipeline: str, flags: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [FLOWERPOWER, "pipeline", "run", pipeline, *flags, "--log-level", "WARNING"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{pipeline} {' '.join(flags)} failed:\n{done.stderr[-4000:]}")
    return seconds


def rows(lake: Path, names: list[str]) -> dict[str, int]:
    return {n: DeltaTable(str(lake / n)).to_pyarrow_dataset().count_rows() for n in names}


def tiny_task_costs(task_count: int) -> dict[str, tuple[float, float]]:
    """Per executor: fixed seconds per run (start, stop, pool start-up), seconds per task."""
    from hamilton import driver
    from hamilton.execution import executors as h_executors

    from lakehouse.runtime import executors

    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_tasks

    costs = {}
    for name, given in SPECS.items():
        spec = executors.ExecutorSpec.parse(given, name)
        started = time.perf_counter()
        executor, stop = executors.start(spec, ["tiny_tasks"])
        startup = time.perf_counter() - started
        dr = (
            driver.Builder()
            .with_modules(tiny_tasks)
            .enable_dynamic_execution(allow_experimental_mode=True)
            .with_local_executor(h_executors.SynchronousLocalTaskExecutor())
            .with_remote_executor(executor)
            .build()
        )
        timings = []
        dr.execute(["total"], inputs={"task_count": task_count})  # warm-up: Ray starts workers
        for count in (task_count, 2 * task_count):
            started = time.perf_counter()
            total = dr.execute(["total"], inputs={"task_count": count})["total"]
            timings.append(time.perf_counter() - started)
            assert total == count * (count - 1)
        started = time.perf_counter()
        if stop is not None:
            stop()
        per_task = (timings[1] - timings[0]) / task_count
        fixed = startup + time.perf_counter() - started + timings[0] - task_count * per_task
        fixed = max(fixed, 0.0)  # noise makes a fixed cost of ~0 come out negative
        costs[name] = (fixed, per_task)
        print(
            f"  {name:12s} fixed {fixed:6.2f} s   per task {per_task * 1000:7.2f} ms",
            flush=True,
        )
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factor", type=float, default=0.1)
    parser.add_argument("--files", type=int, default=16, help="CSV files per fact table")
    parser.add_argument("--tiny-tasks", type=int, default=200)
    parser.add_argument("--workdir", default=str(PROJECT / "bench" / "out" / "executors"))
    parser.add_argument("--only", nargs="*", default=list(EXECUTORS), help="executors to run")
    args = parser.parse_args()

    work = Path(args.workdir).resolve()
    shutil.rmtree(work / "lake", ignore_errors=True)
    shutil.rmtree(work / "landing", ignore_errors=True)
    landing, lake, silver_lake = work / "landing", work / "lake", work / "silver_lake"
    count = land(args.scale_factor, args.files, landing, work / "tpch")
    env = {
        **os.environ,
        "LANDING_ROOT": str(landing),
        "LAKE_ROOT": str(lake),
        "FP_LOG_LEVEL": "WARNING",
    }
    print(
        f"SF {args.scale_factor:g}: {count} landing files "
        f"({args.files} per fact table), {os.cpu_count()} CPUs",
        flush=True,
    )

    results, counts = {}, {}
    for name in args.only:
        shutil.rmtree(lake, ignore_errors=True)
        bronze = run("bronze", EXECUTORS[name], env)
        bronze_rows = rows(lake, ["bronze/orders", "bronze/lineitem"])
        if not silver_lake.exists():
            run("silver", ["--executor", "synchronous"], env)
            shutil.copytree(lake, silver_lake)
        shutil.rmtree(lake)
        shutil.copytree(silver_lake, lake)
        for mart in GOLD:
            shutil.rmtree(lake / "gold" / mart, ignore_errors=True)
        gold = run("gold", EXECUTORS[name], env)
        counts[name] = {**bronze_rows, **rows(lake, [f"gold/{m}" for m in GOLD])}
        results[name] = (bronze, gold)
        print(
            f"  {name:12s} bronze {bronze:6.2f} s   gold {gold:6.2f} s   {counts[name]}", flush=True
        )
    assert len({str(c) for c in counts.values()}) <= 1, f"executors disagree on rows: {counts}"

    print(f"per-task cost ({args.tiny_tasks} tiny tasks):", flush=True)
    costs = tiny_task_costs(args.tiny_tasks)

    base = results.get("synchronous")
    print("\n| executor | bronze s | speedup | gold s | speedup | fixed s per run | ms per task |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (bronze, gold) in results.items():
        up = (f"{base[0] / bronze:.2f}x", f"{base[1] / gold:.2f}x") if base else ("-", "-")
        fixed, per_task = costs.get(name, (float("nan"), float("nan")))
        print(
            f"| {name} | {bronze:.1f} | {up[0]} | {gold:.1f} | {up[1]} "
            f"| {fixed:.2f} | {per_task * 1000:.2f} |"
        )


if __name__ == "__main__":  # Dask and process pools start workers that import this file
    main()
