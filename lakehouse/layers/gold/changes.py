"""What silver changed, as gold reads it: each input's change data feed since a mart's
watermark, old and new images, registered in DuckDB for the lineage queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
from loguru import logger

from lakehouse.core import delta, sqltext
from lakehouse.core.storage import Location
from lakehouse.declare import mart_query
from lakehouse.declare.marts import Mart

if TYPE_CHECKING:
    import duckdb

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def _changed_rows(table, after: int) -> pa.Table:
    """Rows of ``table`` changed after version ``after``: inserted, deleted, and both images
    of updated rows, with the table's columns."""
    feed = table.load_cdf(starting_version=after + 1, ending_version=table.version())
    rows = pa.table(feed)
    return rows.drop_columns([c for c in CDF_COLUMNS if c in rows.column_names])


@dataclass
class SilverSnapshot:
    """The silver tables one gold run reads, opened once, registered in one DuckDB connection
    (made when first asked for: a run with nothing to recompute never imports DuckDB)."""

    tables: dict
    prune: dict[str, str] = field(default_factory=dict)
    memory_limit: str | None = None  # DuckDB's (it spills beyond); None: DuckDB's default
    _con: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def open(
        cls,
        lake: Location,
        versions: Mapping[str, int | None],
        prune: dict[str, str] | None = None,
        memory_limit: str | None = None,
    ) -> SilverSnapshot:
        """The silver tables named in ``versions`` (a version each, None: the latest) that
        exist, with only the files that match the ``prune`` predicate of a table."""
        tables = {
            name: delta.open_table(lake.child("silver", name), version)
            for name, version in versions.items()
        }
        return cls({n: t for n, t in tables.items() if t is not None}, prune or {}, memory_limit)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            import duckdb

            limit: dict[str, str | bool | int | float | list[str]] = (
                {"memory_limit": self.memory_limit} if self.memory_limit else {}
            )
            self._con = duckdb.connect(config=limit)
            for name in self.tables:
                self._con.register(name, self.dataset(name))
        return self._con

    def dataset(self, name: str):
        return self.tables[name].to_pyarrow_dataset(file_pruning_predicate=self.prune.get(name))

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    @property
    def versions(self) -> dict[str, int]:
        return {name: t.version() for name, t in self.tables.items()}

    def changes(self, name: str, after: int) -> pa.Table | None:
        """The rows of ``name`` changed after version ``after`` (None: its change data feed
        cannot be read back that far, e.g. vacuumed or rewritten)."""
        try:
            return _changed_rows(self.tables[name], after)
        except Exception as error:  # delta-rs raises several kinds for a feed it cannot read
            logger.warning(f"gold: silver/{name} has no change data feed after {after}: {error}")
            return None

    def register_changes(self, changed: dict[str, pa.Table]) -> None:
        """For each changed input: ``changed_<name>`` (its changed rows, for a hand-written
        ``touched`` query), ``_changed_<name>`` (the same, marked) and ``_all_<name>`` (its
        rows and the changed rows' old images)."""
        for name, rows in changed.items():
            self.con.register(f"changed_{name}", rows)
            self.con.sql(
                f'CREATE OR REPLACE VIEW "_changed_{name}" AS '
                f'SELECT *, true AS {mart_query.CHANGED} FROM "changed_{name}"'
            )
            self.con.sql(
                f'CREATE OR REPLACE VIEW "_all_{name}" AS SELECT * FROM "{name}" '
                f'UNION ALL BY NAME SELECT * FROM "changed_{name}"'
            )

    def register_range(self, mart: Mart, first, last) -> frozenset[str]:
        """For each input of ``mart`` partitioned on a date: ``_changed_<name>``, its rows of
        the partitions that overlap ``first``..``last`` (a backfill's range)."""
        dated = set()
        for name, (column, by) in mart.dated.items():
            self.con.sql(
                f'CREATE OR REPLACE VIEW "_changed_{name}" AS '
                f'SELECT *, true AS {mart_query.CHANGED} FROM "{name}" '
                f"WHERE {sqltext.quoted(column)} BETWEEN date_trunc('{by}', DATE '{first}') "
                f"AND DATE '{last}'"
            )
            dated.add(name)
        return frozenset(dated)
