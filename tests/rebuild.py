"""A mart rebuilt from silver by its declared query alone, and gold compared with it."""

from __future__ import annotations

import duckdb
import polars as pl
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from lakehouse.declare import catalog


def rebuilt(house, name: str) -> pl.DataFrame:
    """The mart computed whole from silver as it is now, by its declared query alone."""
    mart = catalog.load(house.project / "conf" / "datasets").marts[name]
    con = duckdb.connect()
    for table in mart.inputs:
        con.register(table, DeltaTable(str(house.lake / "silver" / table)).to_pyarrow_table())
    return con.sql(mart.query.sql).pl()


def assert_gold_equals_rebuild(house, names) -> None:
    """Every mart of ``names`` equals its rebuild: exactly, floats to 1e-12 relative."""
    for name in names:
        expected = rebuilt(house, name)
        actual = house.table(f"gold/{name}").select(expected.columns)
        floats = [c for c, t in expected.schema.items() if t.is_float()]
        order = [c for c in expected.columns if c not in floats]
        expected, actual = expected.sort(order), actual.sort(order)
        assert_frame_equal(actual.drop(floats), expected.drop(floats), check_dtypes=False)
        assert_frame_equal(actual.select(floats), expected.select(floats), rel_tol=1e-12)
