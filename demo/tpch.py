"""The TPC-H demo's raw material: ``tpchgen-cli`` output at a scale factor, generated once.

What the tables are (columns, types, keys, rules) is declared in ``conf/datasets/tpch.yml``
like any dataset's; this module only makes and reads the generator's Parquet files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

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
