"""SQL text built from values and names: literals, quoted identifiers, IN lists.

Every column name that reaches SQL (deltalake predicates, DuckDB, PostgreSQL, the marts'
queries) goes through ``quoted``; every value through ``sql_literal``.
"""

from __future__ import annotations

from collections.abc import Iterable


def sql_literal(value) -> str:
    """A value as a SQL literal (deltalake predicates, DuckDB, PostgreSQL); dates and times
    as ISO text, which each compares to its column's type."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def quoted(name: str, alias: str | None = None) -> str:
    """A column name as a SQL identifier (``alias."name"``), whatever it holds: a space, a
    double quote (doubled), a reserved word. Every name that reaches SQL goes through here."""
    column = '"' + name.replace('"', '""') + '"'
    return f"{alias}.{column}" if alias else column


def in_list(column: str, values: Iterable, alias: str | None = None) -> str:
    """``"column" IN (...)`` over the distinct values, sorted for a stable predicate."""
    items = sorted({v for v in values if v is not None})
    return f"{quoted(column, alias)} IN ({', '.join(sql_literal(v) for v in items)})"
