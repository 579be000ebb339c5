"""Benchmark: the daily flow at TPC-H scale factor 1, layer by layer, against a bare write.

Each layer runs as its own ``flowerpower pipeline run`` process, so its wall time and peak
memory (max RSS, from ``wait4``) are its own. In the same session the script times a bare
``deltalake.write_deltalake`` of the same lineitem CSV files streamed from DuckDB (all
columns as text, as bronze stores them) and prints bronze/bare as a ratio.

    python bench/bench_daily.py --scale-factor 1 --days 365 [--workdir bench/out]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml
from deltalake import DeltaTable, write_deltalake

PROJECT = Path(__file__).resolve().parent.parent
FLOWERPOWER = str(Path(sys.executable).parent / "flowerpower")


def layer_config(layer: str, **overrides) -> dict:
    spec = yaml.safe_load((PROJECT / "conf" / "pipelines" / f"{layer}.yml").read_text())
    config = spec["run"]["config"]
    config.update(overrides)
    return config


def run_layer(layer: str, config: dict, env: dict) -> dict:
    """Run one pipeline in a child process; its wall time and peak RSS."""
    command = [
        FLOWERPOWER,
        "pipeline",
        "run",
        layer,
        "--config",
        json.dumps(config),
        "--log-level",
        "WARNING",
    ]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    errors = child.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{layer} failed:\n{errors[-4000:]}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}


def bare_write(files: list[str], target: Path) -> None:
    """The floor: DuckDB reads the CSV files, deltalake writes one table, streamed."""
    shutil.rmtree(target, ignore_errors=True)
    con = duckdb.connect()
    reader = con.sql(
        f"SELECT * FROM read_csv({files!r}, all_varchar = true, header = true, null_padding = true)"
    ).to_arrow_reader()
    write_deltalake(str(target), reader)


def run_bare_write(landing: Path, target: Path, env: dict) -> dict:
    """``bare_write`` in a child process, timed like the layers (interpreter start included)."""
    command = [sys.executable, __file__, "--bare-write", str(landing), str(target)]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=PROJECT, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bare write failed")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_mb": usage.ru_maxrss / 1024,
        "rows": DeltaTable(str(target)).count(),
    }


def table_rows(lake: Path, name: str) -> int:
    return DeltaTable(str(lake / name)).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workdir", default=str(PROJECT / "bench" / "out"))
    parser.add_argument(
        "--bare-write", nargs=2, metavar=("LANDING", "TARGET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare_write:
        landing, target = map(Path, args.bare_write)
        return bare_write(sorted(str(p) for p in (landing / "lineitem").glob("*.csv")), target)

    work = Path(args.workdir).resolve()
    landing, lake = work / "landing", work / "lake"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    env = {**os.environ, "FP_LOG_LEVEL": "WARNING"}
    common = {"landing_root": str(landing), "lake_root": str(lake)}

    results = {}
    results["landing"] = run_layer(
        "landing",
        layer_config(
            "landing",
            landing_root=str(landing),
            tpch_cache_dir=str(work / "tpch"),
            scale_factor=args.scale_factor,
            days_per_run=args.days,
        ),
        env,
    )
    lineitem_files = sorted(str(p) for p in (landing / "lineitem").glob("*.csv"))

    bronze_all = layer_config("bronze", **common)
    only_lineitem = {**bronze_all, "only_sources": ["lineitem"]}
    results["bronze (lineitem)"] = run_layer("bronze", only_lineitem, env)
    results["bronze (other sources)"] = run_layer("bronze", bronze_all, env)
    lake_only = {"lake_root": str(lake)}  # silver and gold read no landing zone
    results["silver"] = run_layer("silver", layer_config("silver", **lake_only), env)
    results["gold"] = run_layer("gold", layer_config("gold", **lake_only), env)
    bare = run_bare_write(landing, work / "bare_lineitem", env)

    bronze = ("orders", "lineitem", "customer", "part", "partsupp", "supplier", "nation", "region")
    facts = table_rows(lake, "bronze/lineitem") + table_rows(lake, "bronze/orders")
    rows = {  # rows each layer read (landing: wrote)
        "landing": facts,
        "bronze (lineitem)": table_rows(lake, "bronze/lineitem"),
        "bronze (other sources)": sum(
            table_rows(lake, f"bronze/{t}") for t in bronze[:1] + bronze[2:]
        ),
        "silver": sum(table_rows(lake, f"bronze/{t}") for t in bronze),
        "gold": table_rows(lake, "silver/lineitem") + table_rows(lake, "silver/orders"),
    }
    files = len(lineitem_files)
    print(f"\nTPC-H SF{args.scale_factor:g}, {args.days} days landed, {files} lineitem files")
    print("rows: landing wrote, bronze appended, silver read from bronze, gold read from silver\n")
    print(f"{'layer':<24}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak MB':>10}")
    for layer, figures in [*results.items(), ("bare write_deltalake", bare)]:
        n = rows.get(layer, bare["rows"])
        seconds, peak = figures["seconds"], figures["peak_mb"]
        print(f"{layer:<24}{n:>12,}{seconds:>10.2f}{n / seconds:>12,.0f}{peak:>10.0f}")
    ratio = results["bronze (lineitem)"]["seconds"] / bare["seconds"]
    print(f"\nbronze lineitem ingest / bare write: {ratio:.2f}x (target <= 1.3x)")
    peak = max(f["peak_mb"] for f in results.values())
    print(f"peak memory of any layer: {peak:.0f} MB (target < 1536 MB)")


if __name__ == "__main__":
    main()
