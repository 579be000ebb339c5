"""Silver: typed, validated, deduplicated TPC-H entities, merged from bronze.

Upstream: ``lake_root/bronze/<entity>`` (read through its change data feed, only the
versions not yet processed). Outputs: ``lake_root/silver/<entity>`` (one row per business
key; orders partitioned by ``order_month``, line items by ``ship_month``) and
``lake_root/_quarantine/<entity>`` (rejected rows with rule and reason).
Line items are checked against silver orders, so ``silver_lineitem`` runs after
``silver_orders``.
"""

from __future__ import annotations

from lakehouse import silver
from lakehouse.delta import WriteResult
from lakehouse.runs import RunMode, new_run_id
from lakehouse.runs import run_mode as parse_run_mode
from lakehouse.storage import Location
from lakehouse.tpch import ENTITIES


def lake(lake_root: str) -> Location:
    """The lake's root folder."""
    return Location.from_uri(lake_root)


def run_id() -> str:
    """This run's id, stamped on every commit and quarantined row."""
    return new_run_id("silver")


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
) -> RunMode:
    """What this run does, from ``--inputs``: the next batches (default), ``plan``, a backfill
    (``from_date``/``to_date``) or ``full_refresh``."""
    return parse_run_mode(plan, from_date, to_date, full_refresh)


def silver_region(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per region."""
    return silver.refresh(ENTITIES["region"], lake, run_id, max_rows_per_batch, run_mode)


def silver_nation(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per nation."""
    return silver.refresh(ENTITIES["nation"], lake, run_id, max_rows_per_batch, run_mode)


def silver_supplier(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per supplier."""
    return silver.refresh(ENTITIES["supplier"], lake, run_id, max_rows_per_batch, run_mode)


def silver_part(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per part."""
    return silver.refresh(ENTITIES["part"], lake, run_id, max_rows_per_batch, run_mode)


def silver_partsupp(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per (part, supplier)."""
    return silver.refresh(ENTITIES["partsupp"], lake, run_id, max_rows_per_batch, run_mode)


def silver_customer(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per customer."""
    return silver.refresh(ENTITIES["customer"], lake, run_id, max_rows_per_batch, run_mode)


def silver_orders(
    lake: Location, run_id: str, max_rows_per_batch: int, run_mode: RunMode
) -> list[WriteResult]:
    """One row per order."""
    return silver.refresh(ENTITIES["orders"], lake, run_id, max_rows_per_batch, run_mode)


def silver_lineitem(
    lake: Location,
    run_id: str,
    max_rows_per_batch: int,
    run_mode: RunMode,
    silver_orders: list[WriteResult],
) -> list[WriteResult]:
    """One row per order line whose order is in silver orders."""
    keys = silver.order_keys(lake)
    entity = ENTITIES["lineitem"]
    return silver.refresh(entity, lake, run_id, max_rows_per_batch, run_mode, order_keys=keys)


def silver_tables(
    silver_region: list[WriteResult],
    silver_nation: list[WriteResult],
    silver_supplier: list[WriteResult],
    silver_part: list[WriteResult],
    silver_partsupp: list[WriteResult],
    silver_customer: list[WriteResult],
    silver_orders: list[WriteResult],
    silver_lineitem: list[WriteResult],
) -> list[WriteResult]:
    """Everything this run wrote to silver and quarantine."""
    return [
        *silver_region,
        *silver_nation,
        *silver_supplier,
        *silver_part,
        *silver_partsupp,
        *silver_customer,
        *silver_orders,
        *silver_lineitem,
    ]
