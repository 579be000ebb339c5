"""Benchmark: the backfill at several scale factors against the hand DuckDB script, side by side.

For each ``--scale-factors`` value, TPC-H is landed once (``--days`` daily drops, monthly
dimension snapshots; kept under ``--workdir`` and reused by a later call), then the
project's backfill (``flowerpower pipeline run daily`` over bronze, silver, gold and
publish, on an empty lake) and ``bench/peers/hand.py`` (the same validation,
deduplication and marts by DuckDB alone) run in alternation, ``--rounds`` times. Printed
per scale factor: each round's seconds and ratio, the median ratio against its target,
the peaks (max RSS of each process), the layers' seconds; then how cost grows with the
data from the smallest scale factor to the largest. The marts of both are checked equal.

    python bench/bench_scale.py --scale-factors 1 3 10 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench_peers import PROJECT, Bench, against_hand

TARGETS = {1.0: 1.3, 3.0: 1.3, 10.0: 1.5}  # project / hand, the targets


def landed(work: Path, scale_factor: float, days: int) -> Bench:
    """A bench whose landing zone holds the days (landed now unless a manifest says so)."""
    bench = Bench(work, scale_factor)
    manifests = work / "landing" / "_manifest"
    if not manifests.exists() or len(list(manifests.glob("*.json"))) < days:
        print(f"SF {scale_factor:g}: landing {days} days ...", flush=True)
        bench.land(days)
        time.sleep(5)  # bronze takes a file once it is 5 s old (settle_seconds)
    return bench


def equal_marts(bench: Bench) -> None:
    _, wrong = against_hand(bench)
    if wrong:
        sys.exit("the marts differ:\n  " + "\n  ".join(wrong))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factors", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", default=str(PROJECT / "bench" / "out" / "scale"))
    args = parser.parse_args()
    results: dict[float, dict[str, list[dict]]] = {}
    for scale in args.scale_factors:
        bench = landed(Path(args.workdir).resolve() / f"sf{scale:g}", scale, args.days)
        runs: dict[str, list[dict]] = {"project": [], "hand": []}
        for round_ in range(1, args.rounds + 1):
            bench.fresh_lake()
            runs["project"].append(bench.project())
            runs["hand"].append(bench.hand())
            ratio = runs["project"][-1]["seconds"] / runs["hand"][-1]["seconds"]
            print(f"SF {scale:g}, round {round_}: project / hand {ratio:.2f}x", flush=True)
        equal_marts(bench)
        results[scale] = runs
    report(results, args)


def report(results: dict[float, dict[str, list[dict]]], args) -> None:
    print(f"\nTPC-H backfill of {args.days} days, {args.rounds} rounds in alternation\n")
    columns = [
        "SF", "project s (per round)", "hand s", "ratio per round", "median", "target",
        "peak MB project / hand", "layers s (median)",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("| ---: | --- | --- | --- | ---: | ---: | --- | --- |")
    medians = {}
    for scale, runs in results.items():
        project = [r["seconds"] for r in runs["project"]]
        hand = [r["seconds"] for r in runs["hand"]]
        ratios = [p / h for p, h in zip(project, hand, strict=True)]
        medians[scale] = statistics.median(project), statistics.median(hand)
        layers = runs["project"][0]["layers"]
        per_layer = ", ".join(
            f"{n} {statistics.median(r['layers'].get(n, 0) for r in runs['project']):.1f}"
            for n in layers
        )
        peaks = f"{max(r['peak_mb'] for r in runs['project']):,.0f} / " + (
            f"{max(r['peak_mb'] for r in runs['hand']):,.0f}"
        )
        target = TARGETS.get(scale)
        print(
            f"| {scale:g} | {', '.join(f'{s:.1f}' for s in project)} | "
            f"{', '.join(f'{s:.1f}' for s in hand)} | {', '.join(f'{r:.2f}x' for r in ratios)} | "
            f"{statistics.median(ratios):.2f}x | {f'{target:.1f}x' if target else '-'} | "
            f"{peaks} | {per_layer} |"
        )
    if len(medians) > 1:
        low, high = min(medians), max(medians)
        data = high / low
        project = medians[high][0] / medians[low][0]
        hand = medians[high][1] / medians[low][1]
        print(
            f"\nfrom SF {low:g} to SF {high:g} ({data:g}x the data): the project's time "
            f"{project:.2f}x, the hand script's {hand:.2f}x"
        )


if __name__ == "__main__":
    main()
