"""The type stage of a silver batch: raw bronze rows as the declared types, and the rows that
do not parse, and the partition date derived from the typed columns.

A column declared ``nullable`` may be empty (a cancelled order's ship date); any other empty
value is a ``missing_value`` (``null_key`` for a key column). Ranges, allowed values and
the grain are the check stage's (``lakehouse.layers.silver.checks``).

Pure functions on Polars frames; no I/O. A row that breaks a rule is never dropped
silently: it leaves with ``_rule`` (the first rule it broke), ``_reason`` (every problem,
readable) and ``_raw`` (the row as it arrived) so the batch can quarantine it.
"""

from __future__ import annotations

import polars as pl

from lakehouse.declare import contracts
from lakehouse.declare.declaration import Entity, Partition

TRUNCATE = {"day": "1d", "month": "1mo", "year": "1y"}
MIN_YEAR, MAX_YEAR = 1, 9999  # Python's dates: a year outside breaks every reader in Python
TRUE_TEXT, FALSE_TEXT = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")


def missing_columns(raw_columns: list[str], entity: Entity) -> list[str]:
    """Columns the entity needs that the bronze rows do not have."""
    return [c for c in entity.columns if c not in raw_columns]


def _timestamp(text: pl.Expr, dtype: pl.Datetime, local: str | None = None) -> pl.Expr:
    """ISO timestamps as text (``T`` or space, ``Z`` or an offset, or none) as ``dtype``:
    values with an offset are converted, those without are taken in the ``local`` zone (the
    declared one), else the column's."""
    text = text.str.replace("T", " ").str.replace(r"Z$", "+00:00")
    unit, zone = dtype.time_unit, dtype.time_zone
    with_offset = [
        text.str.to_datetime(f, time_unit=unit, time_zone=zone or "UTC", strict=False)
        for f in ("%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M%:z")
    ]
    if zone is None:
        with_offset = [moment.dt.replace_time_zone(None) for moment in with_offset]
    naive = [
        text.str.to_datetime(f, time_unit=unit, strict=False)
        for f in ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
    ]
    if zone:
        naive = [moment.dt.replace_time_zone(local or zone) for moment in naive]
        naive = [moment.dt.convert_time_zone(zone) for moment in naive]
    return pl.coalesce(with_offset + naive)


def typed(
    column: str, dtype: pl.DataType, raw_dtype: pl.DataType, zone: str | None = None
) -> pl.Expr:
    """``column`` as ``dtype``; a value that does not convert becomes null, and so does one
    that converts but that Python or a reader could not hold (year 0, NaN, infinity)."""
    return _representable(_converted(column, dtype, raw_dtype, zone), dtype)


def _representable(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return pl.when(value.dt.year().is_between(MIN_YEAR, MAX_YEAR)).then(value)
    if dtype.is_float():
        return pl.when(value.is_finite()).then(value)
    return value


def _converted(column: str, dtype: pl.DataType, raw_dtype: pl.DataType, zone) -> pl.Expr:
    source = pl.col(column)
    if raw_dtype == pl.String and dtype != pl.String:
        text = source.str.strip_chars()
        if dtype == pl.Date:
            return text.str.to_date("%Y-%m-%d", strict=False)
        if isinstance(dtype, pl.Datetime):
            return _timestamp(text, dtype, zone)
        if dtype == pl.Boolean:
            lower = text.str.to_lowercase()
            return (
                pl.when(lower.is_in(TRUE_TEXT)).then(True).when(lower.is_in(FALSE_TEXT)).then(False)
            )
        return text.cast(dtype, strict=False)
    if isinstance(raw_dtype, pl.Datetime) and dtype == pl.Date:
        return source.dt.date()
    return source.cast(dtype, strict=False)


def partition_value(partition: Partition, sources: list[pl.Expr] | None = None) -> pl.Expr:
    """The partition date from its typed source column(s) (or the expressions ``sources``)."""
    sources = sources or [pl.col(c) for c in partition.source]
    if len(sources) == 3:
        day = pl.format("{}-{}-{}", *sources).str.to_date("%Y-%m-%d", strict=False)
    else:
        day = sources[0].cast(pl.Date)
    return day.dt.truncate(TRUNCATE[partition.by])


def raw_partition_value(entity: Entity, raw_schema: pl.Schema) -> pl.Expr:
    """The partition date of rows as they sit in bronze (text or typed): null if unparseable."""
    partition = entity.partition
    if partition is None:
        raise ValueError(f"silver/{entity.name} has no partition to take a date for")
    return partition_value(
        partition,
        [typed(c, entity.columns[c], raw_schema[c], entity.zones.get(c)) for c in partition.source],
    )


def _checks(entity: Entity, raw: dict[str, str], parsed: dict[str, str]) -> list[tuple]:
    """(rule, broken, reason) for every rule of the entity, in order of precedence.

    ``raw`` and ``parsed`` name the columns holding each entity column as it arrived and as
    typed, so the same rules read a frame before and after ``conformed`` renames them.
    """
    checks = []
    for column in entity.columns:
        if column in entity.nullable:
            continue
        rule = "null_key" if column in entity.keys else "missing_value"
        checks.append((rule, pl.col(raw[column]).is_null(), pl.lit(f"{column} is empty")))
    checks.sort(key=lambda check: check[0] != "null_key")
    for column in entity.columns:
        broken = pl.col(raw[column]).is_not_null() & pl.col(parsed[column]).is_null()
        reason = pl.format(
            f"{column}='{{}}' is not a valid {entity.columns[column]}", pl.col(raw[column])
        )
        checks.append(("unparseable_value", broken, reason))
    if entity.partition and len(entity.partition.source) == 3:
        sources = entity.partition.source
        broken = pl.all_horizontal(pl.col(parsed[c]).is_not_null() for c in sources)
        broken = (
            broken
            & partition_value(entity.partition, [pl.col(parsed[c]) for c in sources]).is_null()
        )
        reason = pl.format(
            f"{'/'.join(sources)}={{}} is not a valid date",
            pl.concat_str([pl.col(parsed[c]) for c in sources], separator="-"),
        )
        checks.append(("unparseable_value", broken, reason))
    return checks


def conformed(raw: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """Raw rows with typed entity columns plus ``_rule``, the first rule broken (null: valid).

    The values as they arrived stay beside them as ``__raw_<column>``, for ``with_reasons``
    and ``raw_text``, until ``without_raw`` drops them.
    """
    as_typed = {c: f"__typed_{c}" for c in entity.columns}
    checks = _checks(entity, {c: c for c in entity.columns}, as_typed)
    first_broken = pl.coalesce(
        [pl.when(broken).then(pl.lit(i, pl.UInt8)) for i, (_, broken, _) in enumerate(checks)]
    )
    names = [name for name, _, _ in checks]
    return (
        raw.with_columns(
            typed(c, dtype, raw.schema[c], entity.zones.get(c)).alias(as_typed[c])
            for c, dtype in entity.columns.items()
        )
        .with_columns(
            _rule=first_broken.replace_strict(list(range(len(names))), names, default=None)
        )
        .rename({c: f"__raw_{c}" for c in entity.columns})
        .rename({as_typed[c]: c for c in entity.columns})
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


def raw_text(rows: pl.DataFrame, declared_only: bool = False) -> pl.Expr:
    """The row as it arrived, as JSON text (for quarantine): the declared columns, then the
    others bronze holds (all of them, or none with ``declared_only``)."""
    names = [c for c in rows.columns if c.startswith("__raw_")]
    extra = [c for c in rows.columns if not c.startswith("_") and f"__raw_{c}" not in rows.columns]
    fields = [pl.col(c).alias(c.removeprefix("__raw_")) for c in names]
    fields += [] if declared_only else [pl.col(c) for c in extra]
    return pl.struct([f.cast(pl.String) for f in fields]).struct.json_encode()


def as_rejected(rows: pl.DataFrame) -> pl.DataFrame:
    """Rejected rows with ``_raw``, the row as it arrived, and ``_identity``, the values it
    arrived with in the declared columns: what its quarantine ``row_key`` is made of, so a
    column bronze gained since, or the file ingested again, gives the same key."""
    return rows.with_columns(_raw=raw_text(rows), _identity=raw_text(rows, declared_only=True))


def without_raw(rows: pl.DataFrame) -> pl.DataFrame:
    """Drop the raw copies of the entity columns once the rows are valid."""
    return rows.select(pl.exclude("^__raw_.*$"))


def with_partition(rows: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """Add the entity's partition column (its date truncated to day, month or year)."""
    if entity.partition is None:
        return rows
    return rows.with_columns(partition_value(entity.partition).alias(entity.partition.column))


def typed_rows(raw: pl.DataFrame, entity: Entity) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the rows whose every column has its declared type, numbered ``__row``; the rows that
    do not parse or lack a required value, as rejected). A batch without a declared column
    breaks the contract as a whole: ``ContractError``."""
    missing = missing_columns(raw.columns, entity)
    if missing:
        raise contracts.ContractError(
            f"bronze/{entity.source} lacks column(s) {', '.join(missing)} that silver/"
            f"{entity.name} declares ({entity.where})"
        )
    rows = conformed(raw, entity)
    broken = rows.filter(pl.col("_rule").is_not_null())
    parsed = rows.filter(pl.col("_rule").is_null()).drop("_rule").with_row_index("__row")
    return parsed, as_rejected(with_reasons(broken, entity))
