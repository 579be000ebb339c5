"""A mart's query read by the engine: inputs, part expressions, what cannot be traced, and
the three kinds of mart function, bound against declared schemas at load time.

The queries here belong to no dataset of the project: a shop's shipments and carriers.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pytest
import web_events
import yaml

from lakehouse.declare import catalog, mart_query
from lakehouse.declare.declaration import DeclarationError

SHIPMENTS = """
    SELECT s.shipped_on AS ship_day, k.carrier_name, sum(s.weight_kg) AS total_kg, count(*) AS parcels
    FROM shipments s
    LEFT JOIN carriers k ON k.carrier_id = s.carrier_id
    WHERE s.weight_kg > 0
    GROUP BY ALL
"""


def test_a_query_names_its_inputs_and_the_expression_of_its_partition():
    traced = mart_query.trace(SHIPMENTS, ("ship_day",), "shipments.sql")
    assert traced.inputs == ("shipments", "carriers")
    assert traced.expressions == ("s.shipped_on",)
    assert traced.whole is None
    assert traced.occurrences == ("shipments", "carriers")


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT d, sum(x) OVER (ORDER BY d) AS s FROM t", "a window function"),
        ("SELECT d FROM t LIMIT 10", "LIMIT"),
        ("SELECT d FROM t WHERE x IN (SELECT x FROM u)", "a subquery"),
        ("SELECT d FROM t ANTI JOIN u USING (x)", "an anti-join"),
        ("SELECT d FROM t UNION ALL SELECT d FROM u", "a set operation"),
        ("SELECT max(d) AS d FROM t", "d is computed by an aggregate"),
        ("SELECT d, count(*) AS n FROM t GROUP BY x, d + 1", "d is not one of its GROUP BY"),
        ("SELECT d FROM t WHERE d > current_date", "changes from run to run"),
        ("WITH w AS (SELECT * FROM t) SELECT d FROM w", "a WITH clause"),
        ("SELECT d, count(*) AS n FROM t GROUP BY ROLLUP (d)", "ROLLUP"),
    ],
)
def test_a_query_that_cannot_be_traced_is_recomputed_whole_and_says_why(sql, why):
    assert why in mart_query.trace(sql, ("d",), "m.sql").whole


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT t.d AS d, count(*) AS n FROM t GROUP BY t.d",
        "SELECT t.d AS d, count(*) AS n FROM t GROUP BY 1",
        "SELECT t.d AS d, count(*) AS n FROM t GROUP BY d",
        "SELECT DISTINCT d, x FROM t JOIN u USING (x)",
        "SELECT d, x FROM t RIGHT JOIN u ON u.x = t.x",
    ],
)
def test_grouping_written_any_way_is_traced(sql):
    assert mart_query.trace(sql, ("d",), "m.sql").whole is None


def test_a_query_without_the_declared_part_column_is_refused():
    with pytest.raises(DeclarationError, match=r"m.sql: its SELECT gives no column ship_day"):
        mart_query.trace("SELECT a, b FROM t", ("ship_day",), "m.sql")
    with pytest.raises(DeclarationError, match="m.sql: not valid SQL"):
        mart_query.trace("SELEC a FROM t", ("a",), "m.sql")


def _tables(con, tables: dict[str, str]) -> None:
    for name, body in tables.items():
        con.sql(f"CREATE TABLE {name} AS {body}")


def test_the_lineage_of_a_changed_dimension_row_reaches_every_part_it_joins():
    """A carrier renamed: every day it shipped on, old name or new, and no other day."""
    traced = mart_query.trace(SHIPMENTS, ("ship_day",), "shipments.sql")
    con = duckdb.connect()
    _tables(
        con,
        {
            "shipments": "SELECT * FROM (VALUES (DATE '2030-01-01', 1, 2.5), (DATE '2030-01-02', 2, 1.0), "
            "(DATE '2030-01-03', 1, 4.0), (DATE '2030-01-04', 1, 0.0)) v(shipped_on, carrier_id, weight_kg)",
            "carriers": "SELECT * FROM (VALUES (1, 'Fast'), (2, 'Slow')) v(carrier_id, carrier_name)",
            "changed_carriers": "SELECT * FROM (VALUES (1, 'Fast'), (1, 'Faster')) v(carrier_id, carrier_name)",
        },
    )
    con.sql(
        f"CREATE VIEW _changed_carriers AS SELECT *, true AS {mart_query.CHANGED} FROM changed_carriers"
    )
    sql = traced.lineage_sql(traced.occurrences.index("carriers"), frozenset({"carriers"}))
    con.sql(
        "CREATE VIEW _all_carriers AS SELECT * FROM carriers UNION ALL SELECT * FROM changed_carriers"
    )
    days = sorted(row[0] for row in con.sql(sql).fetchall())
    assert days == [date(2030, 1, 1), date(2030, 1, 3)]  # 01-04 weighs 0: filtered out as written


def test_the_part_query_equals_the_whole_query_restricted_to_those_parts():
    traced = mart_query.trace(SHIPMENTS, ("ship_day",), "shipments.sql")
    con = duckdb.connect()
    _tables(
        con,
        {
            "shipments": "SELECT DATE '2030-01-01' + (i % 5)::INT AS shipped_on, i % 3 AS carrier_id, "
            "(i % 7)::DECIMAL(10,2) AS weight_kg FROM range(200) t(i)",
            "carriers": "SELECT * FROM (VALUES (0, 'A'), (1, 'B')) v(carrier_id, carrier_name)",
        },
    )
    wanted = (date(2030, 1, 2), date(2030, 1, 4))
    con.register(
        mart_query.TOUCHED,
        con.sql(
            "SELECT * FROM (VALUES (DATE '2030-01-02'), (DATE '2030-01-04')) v(ship_day)"
        ).to_arrow_table(),
    )
    part = con.sql(traced.part_sql(wanted) + " ORDER BY ALL").fetchall()
    whole = con.sql(
        f"SELECT * FROM ({SHIPMENTS}) WHERE ship_day IN ('2030-01-02', '2030-01-04') ORDER BY ALL"
    ).fetchall()
    assert part == whole and len(part) > 4


DECLARATION = {
    "sources": {"shipments": {"format": "csv"}, "carriers": {"format": "csv"}},
    "entities": {
        "carriers": {
            "grain": "One row per carrier.",
            "key": "carrier_id",
            "columns": {"carrier_id": {"type": "int32"}, "carrier_name": {"type": "string"}},
        },
        "shipments": {
            "grain": "One row per parcel.",
            "key": "parcel_id",
            "partition": {"column": "ship_week", "from": "shipped_on", "by": "day"},
            "columns": {
                "parcel_id": {"type": "string"},
                "carrier_id": {"type": "int32"},
                "shipped_on": {"type": "date"},
                "weight_kg": {"type": "decimal(10,2)"},
            },
        },
    },
    "mart_module": "shipping_marts",
    "marts": {
        "carrier_days": {
            "grain": "One row per (ship_day, carrier_name).",
            "key": ["ship_day", "carrier_name"],
            "partition": "ship_day",
            "columns": {
                "ship_day": {"type": "date"},
                "carrier_name": {"type": "string"},
                "total_kg": {"type": "decimal(38,2)"},
            },
        }
    },
}

FUNCTIONS = {
    "sql": '''
def carrier_days(shipments, carriers) -> str:
    """One row per (ship_day, carrier_name)."""
    return """SELECT s.shipped_on AS ship_day, k.carrier_name, sum(s.weight_kg) AS total_kg
              FROM shipments s LEFT JOIN carriers k USING (carrier_id) GROUP BY ALL"""
''',
    "relation": '''
import duckdb

def carrier_days(shipments: duckdb.DuckDBPyRelation, carriers: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """One row per (ship_day, carrier_name)."""
    return shipments.join(carriers, "carrier_id", how="left").aggregate(
        "shipped_on AS ship_day, carrier_name, sum(weight_kg) AS total_kg"
    )
''',
    "frame": '''
import polars as pl

def carrier_days(shipments: pl.LazyFrame, carriers: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (ship_day, carrier_name)."""
    return (
        shipments.join(carriers, on="carrier_id", how="left")
        .group_by(pl.col("shipped_on").alias("ship_day"), "carrier_name")
        .agg(pl.col("weight_kg").sum().alias("total_kg"))
    )
''',
}


def _project(tmp_path: Path, function: str, module: str = "shipping_marts") -> Path:
    datasets = tmp_path / "conf" / "datasets"
    datasets.mkdir(parents=True)
    spec = dict(DECLARATION, mart_module=module)
    (datasets / "shipping.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / f"{module}.py").write_text(function)
    return datasets


@pytest.mark.parametrize("kind", ["sql", "relation", "frame"])
def test_a_mart_function_returns_sql_a_relation_or_a_lazy_frame(tmp_path, kind):
    datasets = _project(tmp_path, FUNCTIONS[kind], f"shipping_marts_{kind}")
    mart = catalog.load(datasets).marts["carrier_days"]
    assert mart.inputs == ("shipments", "carriers")
    if kind == "frame":
        assert mart.query is None and "LazyFrame" in mart.whole
    else:
        assert mart.whole is None, mart.whole
        assert mart.query.expressions[0].endswith("shipped_on")
        assert mart.prune == {}  # the partition is shipped_on itself, not ship_week


def test_a_misspelled_column_is_found_at_load_time_naming_the_mart_and_its_file(tmp_path):
    datasets = _project(tmp_path, FUNCTIONS["sql"].replace("k.carrier_name", "k.carier_name"), "m1")
    with pytest.raises(DeclarationError) as error:
        catalog.load(datasets)
    message = str(error.value)
    assert "m1.py:carrier_days: mart 'carrier_days'" in message and "carier_name" in message
    frame = FUNCTIONS["frame"].replace('"carrier_name")', '"carrier")')
    datasets = _project(tmp_path / "f", frame, "m2")
    with pytest.raises(DeclarationError, match=r"m2.py:carrier_days: mart 'carrier_days'.*carrier"):
        catalog.load(datasets)


def test_a_declared_column_the_query_does_not_give_is_refused(tmp_path):
    function = FUNCTIONS["sql"].replace("sum(s.weight_kg) AS total_kg", "sum(s.weight_kg) AS kg")
    datasets = _project(tmp_path, function, "m3")
    with pytest.raises(DeclarationError, match="gives no column total_kg, declared in"):
        catalog.load(datasets)


def test_a_parameter_that_names_no_entity_is_refused(tmp_path):
    function = FUNCTIONS["sql"].replace("(shipments, carriers)", "(shipment, carriers)")
    datasets = _project(tmp_path, function, "m4")
    with pytest.raises(
        DeclarationError, match="parameter 'shipment' names no silver entity.*'shipments'"
    ):
        catalog.load(datasets)


def test_the_catalog_pipeline_prints_how_each_mart_is_kept_and_draws_the_data(lakehouse):
    web_events.install(lakehouse.project)
    picture = lakehouse.root / "out" / "data.svg"
    done = lakehouse.cli("catalog", env={"CATALOG_DAG": str(picture)})
    assert done.returncode == 0, done.stderr
    assert re.search(r"daily_page_stats .* page_views, users .* partition view_date", done.stdout)
    drawn = picture.read_text()
    edges = re.findall(r"<title>(\w+)&#45;&gt;(\w+)</title>", drawn)
    assert ("page_views", "daily_page_stats") in edges and ("users", "daily_page_stats") in edges
    assert ("bronze_users", "users") in edges


def test_a_function_whose_sql_reads_a_table_it_does_not_name_is_refused(tmp_path):
    function = FUNCTIONS["sql"].replace("(shipments, carriers)", "(shipments)")
    datasets = _project(tmp_path, function, "m5")
    with pytest.raises(
        DeclarationError, match="reads 'carriers', which is not one of its parameters"
    ):
        catalog.load(datasets)


@pytest.mark.parametrize("kind", ["with", "frame"])
def test_a_touched_override_on_a_mart_recomputed_whole_is_refused(tmp_path, kind):
    """A mart whose query cannot be traced (or a LazyFrame) has no part to recompute alone:
    a ``touched`` override there is refused at load, naming the mart and why."""
    function = FUNCTIONS["frame"]
    if kind == "with":  # a WITH clause: the engine recomputes the mart whole
        function = (
            FUNCTIONS["sql"]
            .replace('"""SELECT', '"""WITH t AS (SELECT * FROM shipments) SELECT')
            .replace("FROM shipments s", "FROM t s")
        )
    datasets = _project(tmp_path, function, f"touched_{kind}")
    spec = yaml.safe_load((datasets / "shipping.yml").read_text())
    assert catalog.load(datasets).marts["carrier_days"].whole  # recomputed whole, as it is
    spec["marts"]["carrier_days"]["touched"] = "SELECT shipped_on FROM changed_shipments"
    (datasets / "shipping.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(DeclarationError) as refused:
        catalog.load(datasets)
    message = str(refused.value)
    assert "marts.carrier_days.touched: mart 'carrier_days' is recomputed whole (" in message
    assert "drop it" in message


def test_a_mart_task_holds_duckdb_to_its_memory_per_task(tmp_path):
    """gold.yml memory_per_task reaches the DuckDB connection a mart task computes in (it
    spills beyond it rather than grow: a SF 10 backfill's gold peak 2.5 -> 1.7 GB)."""
    from lakehouse.core.storage import Location
    from lakehouse.layers.gold.changes import SilverSnapshot

    snapshot = SilverSnapshot.open(Location.from_uri(str(tmp_path)), {}, None, "64MB")
    limit = snapshot.con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    snapshot.close()
    assert limit.replace(" ", "") in ("61.0MiB", "64.0MB")  # DuckDB shows it in MiB
