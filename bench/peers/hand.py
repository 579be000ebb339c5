"""The hand-written peer: DuckDB alone builds the dbt peer's models, in one process.

Each model under ``bench/peers/dbt/models`` becomes a table of one DuckDB file, in the order
of their ``ref``s, with dbt's two template calls filled in by hand (``ref('x')`` is table
``x``, ``env_var('X')`` the environment's value): the same SQL, none of dbt's machinery.

    python bench/peers/hand.py LANDING_ROOT OUT.duckdb
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import duckdb

MODELS = Path(__file__).resolve().parent / "dbt" / "models"
REF = re.compile(r"\{\{\s*ref\('(\w+)'\)\s*\}\}")
ENV = re.compile(r"\{\{\s*env_var\(\"(\w+)\"\)\s*\}\}")


def models() -> dict[str, str]:
    """Model name -> SQL, every model under MODELS."""
    return {path.stem: path.read_text() for path in sorted(MODELS.rglob("*.sql"))}


def build_order(sql: dict[str, str]) -> list[str]:
    """Models after the models they ``ref``."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name not in done:
            for needed in REF.findall(sql[name]):
                visit(needed)
            done.append(name)

    for name in sql:
        visit(name)
    return done


def main(landing: str, database: str) -> None:
    os.environ["LANDING_ROOT"] = landing
    sql = models()
    if os.path.exists(database):
        os.remove(database)
    with duckdb.connect(database) as con:
        for name in build_order(sql):
            body = ENV.sub(lambda m: os.environ[m[1]], REF.sub(r"\1", sql[name]))
            con.execute(f"CREATE TABLE {name} AS {body}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
