"""Benchmark: a snapshot with 1 % changed rows, diffed by row hash against merged whole.

A dimension of ``--rows`` rows (a composite key, five more columns, as text the way a CSV
export lands) is merged into silver once. Then the next snapshot, with ``--changed`` of
its rows altered, is brought in two ways on copies of that same silver table, alternated
``--rounds`` times in one process:

* diffed: ``snapshots.changed`` drops the rows whose hash silver holds, the rest are
  validated and merged (what silver does for an entity declared ``snapshot``);
* whole: every row validated and merged (the same entity without ``snapshot``).

    python bench/bench_snapshots.py --rows 800000 --changed 0.01 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl

from lakehouse.core import delta
from lakehouse.core.storage import Location
from lakehouse.declare import models
from lakehouse.declare.declaration import table
from lakehouse.layers.silver import batch, snapshots
from lakehouse.layers.silver.merge import merge

SPEC = {
    "key": ["region", "item"],
    "snapshot": {"vanished": "keep"},
    "columns": {
        "region": {"type": "string"},
        "item": {"type": "int64", "rules": {"ge": 1}},
        "price": {"type": "decimal(12,2)", "rules": {"ge": 0}},
        "stock": {"type": "int32", "rules": {"ge": 0}},
        "listed_on": {"type": "date"},
        "note": {"type": "string"},
    },
}


def snapshot(rows: int, changed: float, version: int) -> pl.DataFrame:
    """The export as landed (text), with bronze's lineage columns; ``changed`` of the rows
    differ from version 0's."""
    index = pl.col("i")
    touched = (index % int(1 / changed) == 0) if changed and version else pl.lit(False)
    return pl.DataFrame({"i": range(rows)}).select(
        region="r" + (index % 50).cast(pl.String),
        item=(index + 1).cast(pl.String),
        price=((index % 9_000) / 100 + touched.cast(pl.Int64)).round(2).cast(pl.String),
        stock=(index % 500).cast(pl.String),
        listed_on=pl.lit("2031-05-17"),
        note="item number " + index.cast(pl.String),
        _source_file=pl.lit(f"dims/export_{version}.csv"),
        _commit_version=pl.lit(version + 1, pl.Int64),
    )


def bring_in(raw: pl.DataFrame, entity, target: Location, diffed: bool) -> int:
    """Validate and merge ``raw`` into ``target`` (diffed first or not): rows merged."""
    if diffed:
        raw = snapshots.changed(
            raw, entity, snapshots.live(snapshots.current_state(target, entity))
        )
    valid, _ = batch.validated(raw, entity, None)
    properties = delta.commit_properties("bench", 2, {}, "bench-run")
    merge(target, entity, valid, properties)
    return valid.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    entity = table("dims", models.Entity.model_validate(SPEC), "bench_snapshots.py")
    whole_entity = dataclasses.replace(entity, snapshot=None)
    work = Path(tempfile.mkdtemp(prefix="bench_snapshots_"))
    base = Location.from_uri(str(work / "base"))
    first = batch.validated(snapshot(args.rows, args.changed, 0), entity, None)[0]
    merge(base, entity, first, delta.commit_properties("bench", 1, {}, "bench-run"))
    second = snapshot(args.rows, args.changed, 1)

    seconds: dict[str, list[float]] = {"diffed": [], "whole": []}
    merged = {}
    for _ in range(args.rounds):
        for way, chosen in (("diffed", entity), ("whole", whole_entity)):
            copy = work / way
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(work / "base", copy)
            started = time.perf_counter()
            merged[way] = bring_in(second, chosen, Location.from_uri(str(copy)), way == "diffed")
            seconds[way].append(time.perf_counter() - started)
    shutil.rmtree(work)

    print(f"\nsnapshot of {args.rows:,} rows, {args.changed:.0%} changed, {args.rounds} rounds")
    for way, values in seconds.items():
        print(
            f"  {way:<7} min {min(values):6.2f} s  median {statistics.median(values):6.2f} s  "
            f"({merged[way]:,} rows validated and merged)"
        )
    ratio = statistics.median(seconds["diffed"]) / statistics.median(seconds["whole"])
    print(f"  diffed / whole: {ratio:.3f}x (target <= 0.05x)")


if __name__ == "__main__":
    main()
