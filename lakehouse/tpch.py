"""The TPC-H entities: their typed silver schemas, business keys and partitioning.

Column names stay TPC-H's own (``o_orderkey``, ``l_extendedprice``...): they are the
standard every TPC-H query and tool speaks, so silver renames nothing, it only types.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl

MONEY = pl.Decimal(15, 2)

# The dates TPC-H generates: orders 1992-01-01..1998-08-02, receipts until 1998-12-31.
FIRST_DATE = "1992-01-01"
LAST_DATE = "1998-12-31"


@dataclass(frozen=True)
class Entity:
    """One silver table: its columns and types, grain, and partition."""

    name: str
    columns: dict[str, pl.DataType]
    keys: tuple[str, ...]
    partition: tuple[str, str] | None = None  # (partition column, date column it derives from)
    grain: str = ""
    parent: tuple[str, str, str] | None = None  # (foreign key, parent entity, parent key)

    @property
    def partition_column(self) -> str | None:
        return self.partition[0] if self.partition else None

    @property
    def schema(self) -> pl.Schema:
        columns = dict(self.columns)
        if self.partition:
            columns[self.partition[0]] = pl.Date()
        return pl.Schema(columns)


ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in [
        Entity(
            "region",
            {"r_regionkey": pl.Int64, "r_name": pl.String, "r_comment": pl.String},
            ("r_regionkey",),
            grain="One row per region.",
        ),
        Entity(
            "nation",
            {
                "n_nationkey": pl.Int64,
                "n_name": pl.String,
                "n_regionkey": pl.Int64,
                "n_comment": pl.String,
            },
            ("n_nationkey",),
            grain="One row per nation.",
        ),
        Entity(
            "supplier",
            {
                "s_suppkey": pl.Int64,
                "s_name": pl.String,
                "s_address": pl.String,
                "s_nationkey": pl.Int64,
                "s_phone": pl.String,
                "s_acctbal": MONEY,
                "s_comment": pl.String,
            },
            ("s_suppkey",),
            grain="One row per supplier.",
        ),
        Entity(
            "part",
            {
                "p_partkey": pl.Int64,
                "p_name": pl.String,
                "p_mfgr": pl.String,
                "p_brand": pl.String,
                "p_type": pl.String,
                "p_size": pl.Int32,
                "p_container": pl.String,
                "p_retailprice": MONEY,
                "p_comment": pl.String,
            },
            ("p_partkey",),
            grain="One row per part.",
        ),
        Entity(
            "partsupp",
            {
                "ps_partkey": pl.Int64,
                "ps_suppkey": pl.Int64,
                "ps_availqty": pl.Int32,
                "ps_supplycost": MONEY,
                "ps_comment": pl.String,
            },
            ("ps_partkey", "ps_suppkey"),
            grain="One row per (part, supplier).",
        ),
        Entity(
            "customer",
            {
                "c_custkey": pl.Int64,
                "c_name": pl.String,
                "c_address": pl.String,
                "c_nationkey": pl.Int64,
                "c_phone": pl.String,
                "c_acctbal": MONEY,
                "c_mktsegment": pl.String,
                "c_comment": pl.String,
            },
            ("c_custkey",),
            grain="One row per customer.",
        ),
        Entity(
            "orders",
            {
                "o_orderkey": pl.Int64,
                "o_custkey": pl.Int64,
                "o_orderstatus": pl.String,
                "o_totalprice": MONEY,
                "o_orderdate": pl.Date,
                "o_orderpriority": pl.String,
                "o_clerk": pl.String,
                "o_shippriority": pl.Int32,
                "o_comment": pl.String,
            },
            ("o_orderkey",),
            partition=("order_month", "o_orderdate"),
            grain="One row per order.",
            parent=("o_custkey", "customer", "c_custkey"),
        ),
        Entity(
            "lineitem",
            {
                "l_orderkey": pl.Int64,
                "l_partkey": pl.Int64,
                "l_suppkey": pl.Int64,
                "l_linenumber": pl.Int32,
                "l_quantity": MONEY,
                "l_extendedprice": MONEY,
                "l_discount": MONEY,
                "l_tax": MONEY,
                "l_returnflag": pl.String,
                "l_linestatus": pl.String,
                "l_shipdate": pl.Date,
                "l_commitdate": pl.Date,
                "l_receiptdate": pl.Date,
                "l_shipinstruct": pl.String,
                "l_shipmode": pl.String,
                "l_comment": pl.String,
            },
            ("l_orderkey", "l_linenumber"),
            partition=("ship_month", "l_shipdate"),
            grain="One row per order line.",
            parent=("l_orderkey", "orders", "o_orderkey"),
        ),
    ]
}

DIMENSIONS = ("region", "nation", "supplier", "part", "partsupp", "customer")
FACTS = ("orders", "lineitem")


def generate(scale_factor: float, output_dir: str) -> Path:
    """Run ``tpchgen-cli`` once per scale factor into ``output_dir`` (Parquet, cached)."""
    out = Path(output_dir).expanduser().resolve() / f"sf{scale_factor:g}"
    done = out / "_GENERATED"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_tpchgen(), "parquet", "-s", f"{scale_factor:g}", "-o", str(out), "--overwrite"],
        check=True,
        capture_output=True,
        text=True,
    )
    done.write_text("ok\n")
    return out


def _tpchgen() -> str:
    """The ``tpchgen-cli`` of this environment (a venv's bin folder is not always on PATH)."""
    beside_python = Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside_python) if beside_python.exists() else shutil.which("tpchgen-cli")
    if found is None:
        raise FileNotFoundError("tpchgen-cli not found: install the project (pip install -e .)")
    return found


def read_generated(generated_dir: Path, name: str) -> pl.DataFrame:
    """A generated TPC-H table with plain string columns (tpchgen writes string views)."""
    frame = pl.read_parquet(generated_dir / f"{name}.parquet")
    return frame.with_columns(pl.col(pl.String).cast(pl.String))
