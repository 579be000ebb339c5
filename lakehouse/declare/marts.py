"""Mart declarations: each gold mart's one query, its output contract, and how it is kept.

A mart is declared under ``marts:`` in ``conf/datasets/<dataset>.yml`` (its contract:
grain, key, columns, and ``partition`` when it is replaced partition by partition) and
written once, as a single SELECT over silver entities, in one of two places:

- ``sql: <file>``: a ``.sql`` file (its path relative to the project folder);
- a function named after the mart in the dataset's ``mart_module`` (under ``pipelines/``),
  whose parameters name the silver entities it reads, the Hamilton way. Its return type
  says what it gives: ``str`` (SQL text; each parameter is passed its table's name),
  ``duckdb.DuckDBPyRelation`` (each parameter is passed the table as a relation) or
  ``polars.LazyFrame`` (each parameter is passed a LazyFrame of the table).

When the catalog loads, every query is bound against the declared silver schemas (empty
tables of those columns): a misspelled table or column, or a declared output column the
query does not give, is a ``DeclarationError`` naming the mart and its file before any
layer moves data. How a change reaches the mart's parts is derived from the SQL
(``lakehouse.declare.mart_query``); a query that cannot be traced, and every LazyFrame mart, is
recomputed whole whenever an input changed, as said once here. ``touched:`` (SQL over
``changed_<entity>`` tables and the entities, returning the partition values or keys) is
the author's override, and the audit checks it like the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from loguru import logger
from sqlglot import exp

from lakehouse.core import sqltext
from lakehouse.core.shapes import did_you_mean
from lakehouse.declare import mart_query
from lakehouse.declare.declaration import DeclarationError, Entity

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

KINDS = {"str": "sql", "DuckDBPyRelation": "relation", "LazyFrame": "frame"}


@dataclass(frozen=True)
class Mart:
    """A gold table: the query that computes it, what it reads, and how it is kept.

    ``partition``: the output column whose values are replaced one by one; else ``keys``
    (the contract's) are upserted. ``query`` is the traced SQL (None for a LazyFrame mart,
    ``frame`` then names its function). ``prune``: input -> its partition column, when the
    mart's partition is that column itself (a task then reads only those files). ``dated``:
    input -> its date partition column and grain (a backfill's range picks its rows)."""

    name: str
    inputs: tuple[str, ...]
    contract: Entity
    where: str
    query: mart_query.Traced | None
    partition: str | None = None
    touched_sql: str | None = None
    frame: tuple[str, str] | None = None
    prune: dict[str, str] = dataclasses.field(default_factory=dict)
    dated: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def app_id(self) -> str:
        return f"gold:{self.name}"

    @property
    def keys(self) -> tuple[str, ...]:
        return () if self.partition else self.contract.keys

    @property
    def columns(self) -> tuple[str, ...]:
        """The output columns that name one part: the partition column, or the keys."""
        return (self.partition,) if self.partition else self.contract.keys

    @property
    def column(self) -> str:
        return self.columns[0]

    @property
    def whole(self) -> str | None:
        """Why every change recomputes the whole mart (None: changes are traced)."""
        if self.touched_sql:
            return None
        if self.query is None:
            return "a LazyFrame (the engine reads SQL only)"
        return self.query.whole

    @property
    def fingerprint(self) -> str:
        """What the mart's rows depend on besides silver: its query (as sqlglot writes it,
        so layout and comments do not count, or the LazyFrame function's source), how it
        is kept, and its contract's columns. Recorded with each commit's watermark: a mart
        whose fingerprint changed is recomputed whole."""
        if self.query is not None:
            text = self.query.sql
        else:
            module, function = self._frame()
            text = inspect.getsource(getattr(importlib.import_module(module), function))
        columns = sorted((name, str(dtype)) for name, dtype in self.contract.columns.items())
        kept = (self.partition, self.keys, self.touched_sql, columns)
        return hashlib.sha256(f"{text}\n{kept}".encode()).hexdigest()[:16]

    def check(self, rows: pa.Table) -> None:
        """The recomputed rows must meet the mart's output contract."""
        from lakehouse.declare import contracts

        model = contracts.table_schema(self.contract)
        contracts.check_table(pl.DataFrame(rows), model, f"gold/{self.name}")

    def traced(self) -> mart_query.Traced:
        """The traced query of a mart built as SQL (a LazyFrame mart has none)."""
        if self.query is None:
            raise TypeError(f"gold/{self.name} is a LazyFrame function, not a query")
        return self.query

    def _frame(self) -> tuple[str, str]:
        """(module, function) of a mart built as a LazyFrame (one without a query)."""
        if self.frame is None:
            raise TypeError(f"gold/{self.name} is a query, not a LazyFrame function")
        return self.frame

    def lazy_frame(self, tables: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
        module, function = self._frame()
        build = getattr(importlib.import_module(module), function)
        return build(*(tables[name] for name in self.inputs))


def load(
    name: str,
    settings: dict,
    contract: Entity,
    module: str | None,
    project: Path,
    entities: dict[str, Entity],
) -> Mart:
    """One declared mart, its query found, traced and bound against ``entities``."""
    where = contract.where
    partition = settings.get("partition")
    columns = (partition,) if partition else contract.keys
    if partition and partition not in contract.columns:
        raise DeclarationError(
            f"{where}.partition: {partition!r} is not a declared column"
            f"{did_you_mean(partition, list(contract.columns))}"
        )
    if settings.get("sql"):
        path = project / str(settings["sql"])
        if not path.is_file():
            raise DeclarationError(f"{where}.sql: no file {path}")
        sql, frame, at = path.read_text(), None, str(settings["sql"])
        inputs = mart_query.inputs_of(mart_query.parse(sql, f"{at} (mart {name!r})"))
    else:
        sql, frame, inputs, at = _from_function(name, module, where, entities)
    unknown = [i for i in inputs if i not in entities]
    if unknown:
        raise DeclarationError(
            f"{at}: mart {name!r} reads {unknown[0]!r}, which no enabled dataset declares as an "
            f"entity{did_you_mean(unknown[0], list(entities))}"
        )
    query = mart_query.trace(sql, columns, f"{at} (mart {name!r})") if sql is not None else None
    unnamed = [t for t in (query.inputs if query else ()) if t not in inputs]
    if unnamed:
        raise DeclarationError(
            f"{at}: mart {name!r} reads {unnamed[0]!r}, which is not one of its parameters"
        )
    untraced = "a LazyFrame (the engine reads SQL only)" if query is None else query.whole
    if settings.get("touched") and untraced:
        raise DeclarationError(
            f"{where}.touched: mart {name!r} is recomputed whole ({untraced}): no part of it "
            f"can be recomputed alone, so touched does not apply; drop it"
        )
    mart = Mart(name, inputs, contract, at, query, partition, settings.get("touched"), frame)
    mart = _bound(mart, entities)
    if mart.whole:
        logger.info(f"gold/{name} ({at}): recomputed whole whenever an input changes: {mart.whole}")
    partitions = {table: entities[table].partition for table in inputs}
    dated = {
        table: (partition.column, partition.by)
        for table, partition in partitions.items()
        if partition
    }
    return dataclasses.replace(mart, prune=_prune(mart, entities), dated=dated)


def _from_function(name: str, module_name: str | None, where: str, entities: dict):
    """(sql, frame, inputs, where) of the mart function ``name`` in ``module_name``."""
    if not module_name:
        raise DeclarationError(f"{where}: give sql (a .sql file), or mart_module with a function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DeclarationError(f"{where}: cannot import {module_name!r}: {error}") from None
    build = getattr(module, name, None)
    at = f"{_shown(getattr(module, '__file__', None) or module_name)}:{name}"
    if not callable(build):
        raise DeclarationError(f"{where}: no function {name}() in {module_name}")
    inputs = tuple(inspect.signature(build).parameters)
    returns = inspect.signature(build).return_annotation
    returns = returns if isinstance(returns, str) else getattr(returns, "__name__", str(returns))
    kind = KINDS.get(returns.rsplit(".", 1)[-1])
    if kind is None:
        raise DeclarationError(
            f"{at}: annotate what the mart returns: -> str (SQL), -> duckdb.DuckDBPyRelation "
            f"or -> polars.LazyFrame (found {returns!r})"
        )
    unknown = [i for i in inputs if i not in entities]
    if unknown:
        raise DeclarationError(
            f"{at}: parameter {unknown[0]!r} names no silver entity of an enabled dataset"
            f"{did_you_mean(unknown[0], list(entities))}"
        )
    if kind == "frame":
        return None, (module_name, name), inputs, at
    if kind == "sql":
        return build(*inputs), None, inputs, at
    with _empty_silver(entities, inputs) as con:
        relation = build(*(con.table(i) for i in inputs))
        return relation.sql_query(), None, inputs, at


def _shown(path: str) -> str:
    """A file as a message names it: relative to the working folder when it lies inside."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


class _empty_silver:
    """A DuckDB connection holding an empty table of each entity's declared schema."""

    def __init__(self, entities: dict[str, Entity], names):
        self.entities, self.names = entities, names

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        self.con = duckdb.connect()
        for name in self.names:
            self.con.register(f"_empty_{name}", empty(self.entities[name]))
            self.con.sql(f'CREATE TABLE "{name}" AS SELECT * FROM "_empty_{name}"')
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()


def empty(entity: Entity) -> pa.Table:
    """No rows, with the silver table's columns."""
    return pl.DataFrame(schema=entity.schema).to_arrow()


def _bound(mart: Mart, entities: dict[str, Entity]) -> Mart:
    """The mart's query bound against empty silver tables: a wrong name is a
    ``DeclarationError`` naming the mart and its file; its output must give every column of
    the contract. A derived lineage query that fails to bind makes the mart whole."""
    if mart.query is None:
        frames = {i: pl.LazyFrame(schema=entities[i].schema) for i in mart.inputs}
        try:
            outputs = list(mart.lazy_frame(frames).collect_schema())
        except Exception as error:  # a Polars error of the user's frame
            raise DeclarationError(
                f"{mart.where}: mart {mart.name!r}: {str(error).splitlines()[0]}"
            ) from None
        _check_outputs(mart, outputs)
        return mart
    import duckdb

    with _empty_silver(entities, mart.inputs) as con:
        try:
            outputs = con.sql(mart.query.sql).columns
        except duckdb.Error as error:
            raise DeclarationError(
                f"{mart.where}: mart {mart.name!r}: {str(error).splitlines()[0]}"
            ) from None
        _check_outputs(mart, outputs)
        if mart.touched_sql:
            _bind_override(con, mart)
        if mart.query.whole is None:
            try:
                for name in mart.inputs:
                    con.sql(
                        f'CREATE VIEW "_changed_{name}" AS SELECT *, true AS '
                        f'{mart_query.CHANGED} FROM "{name}"'
                    )
                    con.sql(f'CREATE VIEW "_all_{name}" AS SELECT * FROM "{name}"')
                everything = frozenset(mart.inputs)
                for index in range(len(mart.query.occurrences)):
                    con.sql(mart.query.lineage_sql(index, everything))
                parts = ", ".join(sqltext.quoted(c) for c in mart.columns)
                con.sql(
                    f"CREATE VIEW {mart_query.TOUCHED} AS SELECT {parts} FROM ({mart.query.sql})"
                )
                con.sql(mart.query.part_sql())
            except duckdb.Error as error:
                why = f"its lineage query does not bind ({str(error).splitlines()[0]})"
                query = dataclasses.replace(mart.query, whole=why)
                return dataclasses.replace(mart, query=query)
    return mart


def _bind_override(con, mart: Mart) -> None:
    """A hand-written ``touched`` query must bind over the inputs and ``changed_<input>``."""
    import duckdb

    for name in mart.inputs:
        con.sql(f'CREATE VIEW "changed_{name}" AS SELECT * FROM "{name}"')
    try:
        given = con.sql(mart.touched_sql).columns
    except duckdb.Error as error:
        raise DeclarationError(
            f"{mart.contract.where}.touched: {str(error).splitlines()[0]}"
        ) from None
    if len(given) != len(mart.columns):
        raise DeclarationError(
            f"{mart.contract.where}.touched: returns {', '.join(given)}; it must return "
            f"{', '.join(mart.columns)}"
        )


def _check_outputs(mart: Mart, outputs) -> None:
    missing = [c for c in mart.contract.columns if c not in outputs]
    if missing:
        raise DeclarationError(
            f"{mart.where}: mart {mart.name!r} gives no column {', '.join(missing)}, declared "
            f"in {mart.contract.where}.columns (it gives {', '.join(outputs)})"
        )


def _prune(mart: Mart, entities: dict[str, Entity]) -> dict[str, str]:
    """input -> column, where the mart's partition is that input's own partition column
    (an input read once: a self-join's two sides need different files)."""
    if not mart.partition or mart.query is None or mart.query.expressions is None:
        return {}
    expression = mart_query.parse_expression(mart.query.expressions[0])
    if not isinstance(expression, exp.Column):
        return {}
    for name, alias in mart.query.tables:
        if expression.table in (alias, "") and entities[name].partition_column == expression.name:
            if mart.query.occurrences.count(name) == 1:
                return {name: expression.name}
    return {}
