"""Catalog: what the project declares, and the data DAG (sources -> entities -> marts).

Upstream: ``conf/datasets/*.yml`` and each mart's query. Outputs: a table printed on the
terminal (per mart: what it reads, how it is kept, what a change recomputes) and a picture
of the data at ``output`` (PNG, SVG or PDF by its extension); no table is written.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from loguru import logger

from lakehouse.declare import catalog, data_dag
from lakehouse.declare.catalog import Catalog
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py


def declared() -> Catalog:
    """The enabled datasets, their marts' queries traced and bound."""
    return catalog.load()


def marts_kept(declared: Catalog) -> pl.DataFrame:
    """One row per mart: its inputs, how it is kept, what a change recomputes; printed."""
    table = data_dag.kept(declared)
    with pl.Config(tbl_rows=500, tbl_hide_dataframe_shape=True, tbl_width_chars=200,
                   fmt_str_lengths=80, tbl_hide_column_data_types=True):  # fmt: skip
        print(table)
    return table


def data_dag_file(declared: Catalog, output: str) -> str:
    """The data DAG drawn to ``output``; its path."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    drawing = data_dag.graph(declared)
    drawing.render(path.with_suffix(""), format=path.suffix.lstrip(".") or "png", cleanup=True)
    logger.info(f"catalog: the data DAG drawn to {path}")
    print(f"data DAG written to {path}")
    return str(path)
