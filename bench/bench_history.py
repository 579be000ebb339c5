"""Benchmark: does a one-day run cost the same with 10 days of history as with 1,000?

Two lakes at TPC-H scale factor 1 are built in the same session: one with ``--short`` days
of history, one with ``--long`` days. Then each gets one more day, and bronze, silver and
gold are timed on it (each its own ``flowerpower`` process, interpreter start included).
Dimension snapshots are dropped once only, so the extra day holds orders and line items.

    python bench/bench_history.py --short 10 --long 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from bench_daily import PROJECT, layer_config, run_layer

LAYERS = ("bronze", "silver", "gold")


def build(work: Path, days: int, scale_factor: float, env: dict) -> None:
    """A lake holding ``days`` days of history."""
    shutil.rmtree(work / "landing", ignore_errors=True)
    shutil.rmtree(work / "lake", ignore_errors=True)
    land(work, days, scale_factor, env)
    for layer in LAYERS:
        run_layer(layer, roots(work, layer), env)


def land(work: Path, days: int, scale_factor: float, env: dict) -> dict:
    config = layer_config(
        "landing",
        landing_root=str(work / "landing"),
        tpch_cache_dir=str(work.parent / "tpch"),
        scale_factor=scale_factor,
        days_per_run=days,
        dimension_snapshot_days=100_000,
    )
    return run_layer("landing", config, env)


def roots(work: Path, layer: str) -> dict:
    """The layer's settings pointed at this lake (only the roots the layer has)."""
    config = layer_config(layer)
    where = {"landing_root": str(work / "landing"), "lake_root": str(work / "lake")}
    return layer_config(layer, **{k: v for k, v in where.items() if k in config})


def one_more_day(work: Path, scale_factor: float, env: dict) -> dict[str, float]:
    land(work, 1, scale_factor, env)
    return {layer: run_layer(layer, roots(work, layer), env)["seconds"] for layer in LAYERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--workdir", default=str(PROJECT / "bench" / "out" / "history"))
    parser.add_argument("--reuse", action="store_true", help="keep lakes built by an earlier run")
    args = parser.parse_args()
    env = {**os.environ, "FP_LOG_LEVEL": "WARNING"}
    work = Path(args.workdir).resolve()

    timings = {}
    for days in (args.short, args.long):
        lake = work / f"days{days}"
        if not (args.reuse and (lake / "lake").exists()):
            build(lake, days, args.scale_factor, env)
        timings[days] = one_more_day(lake, args.scale_factor, env)

    print(f"\nTPC-H SF{args.scale_factor:g}: one more day on top of N days of history\n")
    print(f"{'layer':<10}{args.short:>10} days{args.long:>10} days{'ratio':>10}")
    for layer in (*LAYERS, "total"):
        short = (
            sum(timings[args.short].values()) if layer == "total" else timings[args.short][layer]
        )
        long = sum(timings[args.long].values()) if layer == "total" else timings[args.long][layer]
        print(f"{layer:<10}{short:>14.2f}{long:>15.2f}{long / short:>9.2f}x")
    print("\ntarget: the long-history total within 1.5x of the short one")


if __name__ == "__main__":
    main()
