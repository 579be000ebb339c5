"""Silver conforming: type raw bronze rows, find the ones that do not parse, keep one per key.

Ranges, allowed values and the grain are the contracts' business (``lakehouse.contracts``).

Pure functions on Polars frames; no I/O. A row that breaks a rule is never dropped
silently: it leaves with ``_rule`` (the first rule it broke) and ``_reason`` (every problem,
readable) so the caller can quarantine it.
"""

from __future__ import annotations

import polars as pl

from lakehouse.tpch import Entity

ORDER_OF_ARRIVAL = ("_commit_version", "_ingested_at", "_source_file")


def missing_columns(raw_columns: list[str], entity: Entity) -> list[str]:
    """Columns the entity needs that the bronze rows do not have."""
    return [c for c in entity.columns if c not in raw_columns]


def _typed(column: str, dtype: pl.DataType, raw_dtype: pl.DataType) -> pl.Expr:
    source = pl.col(column)
    if raw_dtype == pl.String and dtype == pl.Date:
        return source.str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    if raw_dtype == pl.String and dtype != pl.String:
        return source.str.strip_chars().cast(dtype, strict=False)
    return source.cast(dtype, strict=False)


def _checks(entity: Entity, raw: dict[str, str], typed: dict[str, str]) -> list[tuple]:
    """(rule, broken, reason) for every rule of the entity, in order of precedence.

    ``raw`` and ``typed`` name the columns holding each entity column as it arrived and as
    typed, so the same rules read a frame before and after ``conformed`` renames them.
    """
    checks = []
    for column in entity.columns:
        rule = "null_key" if column in entity.keys else "missing_value"
        checks.append((rule, pl.col(raw[column]).is_null(), pl.lit(f"{column} is empty")))
    checks.sort(key=lambda check: check[0] != "null_key")
    for column in entity.columns:
        broken = pl.col(raw[column]).is_not_null() & pl.col(typed[column]).is_null()
        reason = pl.format(
            f"{column}='{{}}' is not a valid {entity.columns[column]}", pl.col(raw[column])
        )
        checks.append(("unparseable_value", broken, reason))
    return checks


def conformed(raw: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """Raw rows with typed entity columns plus ``_rule``, the first rule broken (null: valid).

    The values as they arrived stay beside them as ``__raw_<column>``, for ``with_reasons``
    and ``raw_text``, until ``without_raw`` drops them.
    """
    typed = {c: f"__typed_{c}" for c in entity.columns}
    checks = _checks(entity, {c: c for c in entity.columns}, typed)
    first_broken = pl.coalesce(
        [pl.when(broken).then(pl.lit(i, pl.UInt8)) for i, (_, broken, _) in enumerate(checks)]
    )
    names = [name for name, _, _ in checks]
    return (
        raw.with_columns(
            _typed(c, dtype, raw.schema[c]).alias(typed[c]) for c, dtype in entity.columns.items()
        )
        .with_columns(
            _rule=first_broken.replace_strict(list(range(len(names))), names, default=None)
        )
        .rename({c: f"__raw_{c}" for c in entity.columns})
        .rename({typed[c]: c for c in entity.columns})
    )


def with_reasons(rejected: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """``_reason``: every rule a conformed row breaks, readable (built for rejected rows only:
    text per check is costly on a whole batch)."""
    checks = _checks(
        entity, {c: f"__raw_{c}" for c in entity.columns}, {c: c for c in entity.columns}
    )
    reason = pl.concat_str(
        [pl.when(broken).then(why) for _, broken, why in checks], separator="; ", ignore_nulls=True
    )
    return rejected.with_columns(_reason=reason)


def raw_text(rows: pl.DataFrame) -> pl.Expr:
    """The row as it arrived, as JSON text (for quarantine)."""
    names = [c for c in rows.columns if c.startswith("__raw_")]
    extra = [c for c in rows.columns if not c.startswith("_") and f"__raw_{c}" not in rows.columns]
    fields = [pl.col(c).alias(c.removeprefix("__raw_")) for c in names]
    fields += [pl.col(c) for c in extra]
    return pl.struct([f.cast(pl.String) for f in fields]).struct.json_encode()


def without_raw(rows: pl.DataFrame) -> pl.DataFrame:
    """Drop the raw copies of the entity columns once the rows are valid."""
    return rows.select(pl.exclude("^__raw_.*$"))


def with_partition(rows: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """Add the entity's partition column (first day of the month of its date column)."""
    if entity.partition is None:
        return rows
    column, source = entity.partition
    return rows.with_columns(pl.col(source).dt.truncate("1mo").alias(column))


def deduplicated(valid: pl.DataFrame, entity: Entity) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per business key, the superseded copies). The latest arrival wins.

    Arrival order is sorted on a narrow frame (keys, order, row number), not the whole batch.
    """
    order = [c for c in ORDER_OF_ARRIVAL if c in valid.columns]
    narrow = valid.select(*entity.keys, *order).with_row_index("__row")
    latest_rows = (
        narrow.sort([*order, "__row"])
        .unique(subset=list(entity.keys), keep="last")
        .get_column("__row")
    )
    is_latest = pl.int_range(pl.len(), dtype=pl.UInt32).is_in(latest_rows.implode())
    keys = ", ".join(entity.keys)
    superseded = valid.filter(~is_latest).with_columns(
        _rule=pl.lit("duplicate"),
        _reason=pl.lit(f"another row with the same {keys} arrived later in the batch"),
    )
    return valid.filter(is_latest), superseded


def orphans(rows: pl.DataFrame, foreign_key: str, parent_keys: pl.Series) -> pl.Series:
    """Mask of rows whose ``foreign_key`` is not among ``parent_keys``."""
    return ~rows[foreign_key].is_in(parent_keys.implode())
