"""Benchmark: the cost of the lineitem contract, per million rows, good/bad split included.

Typed TPC-H line items (from tpchgen-cli, SF given) with 1% of the rows made invalid
(negative quantity, unknown return flag) are validated against the row rules of the
lineitem declaration (``conf/datasets/tpch.yml``) and split into good and bad rows, as silver does;
the whole silver ``split`` (typing text, contract, deduplication) is timed too.

    python bench/bench_contracts.py --scale-factor 1 --rows 2000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from demo import landing, tpch
from lakehouse.declare import catalog, contracts
from lakehouse.layers.silver import batch

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tpch-cache", default=str(PROJECT / "data" / "tpch"))
    args = parser.parse_args()

    generated = tpch.generate(args.scale_factor, args.tpch_cache)
    entity = catalog.load_dataset(PROJECT / "conf" / "datasets" / "tpch.yml").entities["lineitem"]
    lines = tpch.read_generated(generated, "lineitem").head(args.rows).select(list(entity.columns))
    bad = pl.int_range(pl.len()) % 100 == 0
    lines = lines.with_columns(
        l_quantity=pl.when(bad).then(-pl.col("l_quantity")).otherwise(pl.col("l_quantity")),
        l_returnflag=pl.when(bad).then(pl.lit("X")).otherwise(pl.col("l_returnflag")),
    )
    millions = lines.height / 1e6

    started = time.perf_counter()
    indexed = lines.with_row_index("__row")
    failed = contracts.failures(lines, contracts.row_schema(entity), "silver/lineitem")
    good = indexed.join(failed, on="__row", how="anti")
    rejected = indexed.join(failed, on="__row")
    contract = time.perf_counter() - started
    assert (
        rejected.height == lines.filter(bad).height
        and good.height + rejected.height == lines.height
    )

    raw = landing.as_text(lines).with_columns(
        _commit_version=pl.lit(1, pl.Int64), _source_file=pl.lit("bench.csv")
    )
    started = time.perf_counter()
    valid, rejected_rows = batch.validated(raw, entity, parent_keys=None)
    whole = time.perf_counter() - started

    print(f"\n{lines.height:,} line items, {rejected.height:,} invalid")
    per_million = contract / millions
    print(f"contract + good/bad split: {contract:.2f} s = {per_million:.2f} s per million rows")
    print("  (target: under 0.5 s per million rows)")
    print(f"silver split from text (typing, contract, dedupe): {whole:.2f} s")
    print(f"  = {whole / millions:.2f} s per million rows")


if __name__ == "__main__":
    main()
