"""Silver: typed, validated, deduplicated TPC-H entities, merged from bronze.

Upstream: ``lake_root/bronze/<entity>`` (read through its change data feed, only the
versions not yet processed). Outputs: ``lake_root/silver/<entity>`` (one row per business
key; orders partitioned by ``order_month``, line items by ``ship_month``) and
``lake_root/_quarantine/<entity>`` (rejected rows with rule and reason).
Line items are checked against silver orders, so ``silver_lineitem`` runs after
``silver_orders``.
"""

from __future__ import annotations

import sys

from lakehouse import settings, silver
from lakehouse.delta import WriteResult
from lakehouse.runs import RunMode, new_run_id
from lakehouse.runs import run_mode as parse_run_mode
from lakehouse.storage import Location
from lakehouse.tpch import ENTITIES


def lake(lake_root: str) -> Location:
    """The lake's root folder (the YAML's keys are checked here, before any read or write)."""
    settings.check_keys("silver", sys.modules[__name__])
    return settings.location("lake_root", lake_root, "silver")


def run_id() -> str:
    """This run's id, stamped on every commit and quarantined row."""
    return new_run_id("silver")


def run_mode(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
    replay: bool = False,
) -> RunMode:
    """What this run does, from ``--inputs``: the next batches (default), ``plan``, a backfill
    (``from_date``/``to_date``), ``full_refresh``, or ``replay`` of quarantined rows."""
    return parse_run_mode(plan, from_date, to_date, full_refresh, replay)


def silver_run(
    lake: Location,
    run_id: str,
    max_rows_per_batch: int,
    run_mode: RunMode,
    watermark: dict,
    on_invalid: str,
    max_invalid_fraction: float,
) -> silver.SilverRun:
    """This run's settings: ``watermark`` says how new bronze rows are found, ``on_invalid``
    and ``max_invalid_fraction`` what happens to invalid rows (silver.yml)."""
    return silver.SilverRun(
        lake,
        run_id,
        max_rows_per_batch,
        run_mode,
        silver.Watermark.from_config(watermark),
        silver.Policy(on_invalid, float(max_invalid_fraction)),
    )


def silver_region(silver_run: silver.SilverRun) -> list[WriteResult]:
    """One row per region."""
    return silver_run.refresh(ENTITIES["region"])


def silver_nation(silver_run: silver.SilverRun) -> list[WriteResult]:
    """One row per nation."""
    return silver_run.refresh(ENTITIES["nation"])


def silver_supplier(silver_run: silver.SilverRun) -> list[WriteResult]:
    """One row per supplier."""
    return silver_run.refresh(ENTITIES["supplier"])


def silver_part(silver_run: silver.SilverRun) -> list[WriteResult]:
    """One row per part."""
    return silver_run.refresh(ENTITIES["part"])


def silver_partsupp(silver_run: silver.SilverRun) -> list[WriteResult]:
    """One row per (part, supplier)."""
    return silver_run.refresh(ENTITIES["partsupp"])


def silver_customer(silver_run: silver.SilverRun) -> list[WriteResult]:
    """One row per customer."""
    return silver_run.refresh(ENTITIES["customer"])


def silver_orders(
    silver_run: silver.SilverRun, silver_customer: list[WriteResult]
) -> list[WriteResult]:
    """One row per order whose customer is in silver customer."""
    orders = ENTITIES["orders"]
    return silver_run.refresh(orders, parent_keys=silver.parent_keys(silver_run.lake, orders))


def silver_lineitem(
    silver_run: silver.SilverRun, silver_orders: list[WriteResult]
) -> list[WriteResult]:
    """One row per order line whose order is in silver orders."""
    lines = ENTITIES["lineitem"]
    return silver_run.refresh(lines, parent_keys=silver.parent_keys(silver_run.lake, lines))


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
