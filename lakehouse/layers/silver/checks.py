"""The check stage of a silver batch: declared rules, the entity's model, the error budget
per drop, parents and the grain.

Typing is the type stage's (``conform``); the rules themselves are pandera schemas built
from the declaration (``lakehouse.declare.contracts``). Pure functions on Polars frames; no
I/O. Rows that fail leave with ``_rule``, ``_reason`` and ``_raw`` for the quarantine.
"""

from __future__ import annotations

import polars as pl

from lakehouse.core.frames import is_in_large
from lakehouse.declare import contracts
from lakehouse.declare.declaration import Entity
from lakehouse.layers.silver.conform import as_rejected
from lakehouse.layers.silver.quarantine import DROP_COLUMNS, OVER_BUDGET, Policy


def against_rules(parsed: pl.DataFrame, entity: Entity) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the typed rows, numbered ``__row``, that keep the declared rules and the entity's
    model; those that break one, as rejected)."""
    table = f"silver/{entity.name}"
    failed = contracts.row_failures(parsed.select(list(entity.columns)), entity, table)
    broken = as_rejected(parsed.join(failed, on="__row"))
    return parsed.join(failed, on="__row", how="anti").drop("__row"), broken


def within_budget(
    raw: pl.DataFrame,
    valid: pl.DataFrame,
    rejected: list[pl.DataFrame],
    policy: Policy | None,
    entity: Entity,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows of drops within the error budget, valid rows of the others as
    ``error_budget``). ``rejected``: the batch's rows rejected so far; a policy of fail
    raises on any of them."""
    if policy is None:
        return valid, valid.head(0)
    by = [c for c in DROP_COLUMNS if c in raw.columns]
    invalid = pl.concat([r.select(*by, "_rule", "_reason") for r in rejected])
    held = policy.held_drops(f"silver/{entity.name}", raw.select(by), invalid)
    if held.is_empty():
        return valid, valid.head(0)
    rows = valid.join(held, on=by, nulls_equal=True).with_columns(_rule=pl.lit(OVER_BUDGET))
    return valid.join(held, on=by, how="anti", nulls_equal=True), as_rejected(rows)


def with_parents(
    valid: pl.DataFrame, entity: Entity, parent_keys: pl.Series | None, policy: Policy | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the rows whose parent silver holds; the orphans, as rejected). Without
    ``parent_keys`` (or a parent) every row is kept."""
    parent = entity.parent
    if parent_keys is None or parent is None:
        return valid, valid.head(0)
    orphan = ~is_in_large(valid[parent.column], parent_keys)
    reason = pl.format(
        f"{parent.column}={{}} has no row in silver/{parent.entity}", pl.col(parent.column)
    )
    orphaned = valid.filter(orphan).with_columns(_rule=pl.lit("orphan"), _reason=reason)
    if policy and policy.on_invalid == "fail" and orphaned.height:
        raise ValueError(
            f"silver/{entity.name}: {orphaned.height:,} orphan rows; on_invalid is fail: "
            f"nothing committed. First: {orphaned['_reason'][0]}"
        )
    return valid.filter(~orphan), as_rejected(orphaned)


def keep_the_grain(valid: pl.DataFrame, entity: Entity) -> None:
    """One row per key, and the table-wide checks: ``ContractError`` if the batch breaks them."""
    table = f"silver/{entity.name}"
    contracts.check_table(valid.select(list(entity.columns)), contracts.grain_schema(entity), table)
