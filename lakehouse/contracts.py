"""Data contracts: one pandera model per silver and gold table, checked at each boundary.

Silver rows are checked in two steps: ``*Rows`` models hold the per-row rules (types,
ranges, allowed values) and run before deduplication, so a defective copy can never
supersede a good row; the table models add the grain (unique keys) and run on what is
about to be merged. Gold marts are checked whole before they are written.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandera.polars as pa
import polars as pl

FIRST = date(1992, 1, 1)
LAST = date(1998, 12, 31)
MONEY = pl.Decimal(15, 2)
RULE_OF_CHECK = {  # pandera check name (prefix) -> quarantine rule
    "greater_than": "out_of_range",
    "less_than": "out_of_range",
    "in_range": "out_of_range",
    "isin": "not_allowed",
    "str_length": "not_allowed",
    "multiple_fields_uniqueness": "duplicate",
    "field_uniqueness": "duplicate",
}


class ContractError(ValueError):
    """A batch breaks its contract as a whole (a wrong type, a missing column)."""


class RegionRows(pa.DataFrameModel):
    r_regionkey: pl.Int64 = pa.Field(ge=0, description="Region key.")
    r_name: pl.String = pa.Field(description="Region name.")
    r_comment: pl.String = pa.Field(description="Free text.")


class NationRows(pa.DataFrameModel):
    n_nationkey: pl.Int64 = pa.Field(ge=0, description="Nation key.")
    n_name: pl.String = pa.Field(description="Nation name (the `nation` of gold marts).")
    n_regionkey: pl.Int64 = pa.Field(ge=0, description="Region of the nation.")
    n_comment: pl.String = pa.Field(description="Free text.")


class SupplierRows(pa.DataFrameModel):
    s_suppkey: pl.Int64 = pa.Field(ge=1, description="Supplier key.")
    s_name: pl.String = pa.Field(description="Supplier name.")
    s_address: pl.String = pa.Field(description="Address.")
    s_nationkey: pl.Int64 = pa.Field(ge=0, description="Nation of the supplier.")
    s_phone: pl.String = pa.Field(description="Phone number.")
    s_acctbal: MONEY = pa.Field(description="Account balance (may be negative).")
    s_comment: pl.String = pa.Field(description="Free text.")


class PartRows(pa.DataFrameModel):
    p_partkey: pl.Int64 = pa.Field(ge=1, description="Part key.")
    p_name: pl.String = pa.Field(description="Part name.")
    p_mfgr: pl.String = pa.Field(description="Manufacturer.")
    p_brand: pl.String = pa.Field(description="Brand.")
    p_type: pl.String = pa.Field(description="Part type.")
    p_size: pl.Int32 = pa.Field(ge=1, description="Size.")
    p_container: pl.String = pa.Field(description="Container.")
    p_retailprice: MONEY = pa.Field(gt=0, description="Retail price.")
    p_comment: pl.String = pa.Field(description="Free text.")


class PartsuppRows(pa.DataFrameModel):
    ps_partkey: pl.Int64 = pa.Field(ge=1, description="Part key.")
    ps_suppkey: pl.Int64 = pa.Field(ge=1, description="Supplier key.")
    ps_availqty: pl.Int32 = pa.Field(ge=0, description="Quantity available.")
    ps_supplycost: MONEY = pa.Field(gt=0, description="Supply cost.")
    ps_comment: pl.String = pa.Field(description="Free text.")


class CustomerRows(pa.DataFrameModel):
    c_custkey: pl.Int64 = pa.Field(ge=1, description="Customer key.")
    c_name: pl.String = pa.Field(description="Customer name.")
    c_address: pl.String = pa.Field(description="Address.")
    c_nationkey: pl.Int64 = pa.Field(ge=0, description="Nation of the customer.")
    c_phone: pl.String = pa.Field(description="Phone number.")
    c_acctbal: MONEY = pa.Field(description="Account balance (may be negative).")
    c_mktsegment: pl.String = pa.Field(
        isin=["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"],
        description="Market segment (the `market_segment` of gold marts).",
    )
    c_comment: pl.String = pa.Field(description="Free text.")


class OrdersRows(pa.DataFrameModel):
    o_orderkey: pl.Int64 = pa.Field(ge=1, description="Order key.")
    o_custkey: pl.Int64 = pa.Field(ge=1, description="Customer who placed the order.")
    o_orderstatus: pl.String = pa.Field(
        isin=["O", "F", "P"], description="Open, fulfilled, partial."
    )
    o_totalprice: MONEY = pa.Field(ge=0, description="Order total.")
    o_orderdate: pl.Date = pa.Field(ge=FIRST, le=LAST, description="Day the order was placed.")
    o_orderpriority: pl.String = pa.Field(description="Priority, e.g. 1-URGENT.")
    o_clerk: pl.String = pa.Field(description="Clerk who took the order.")
    o_shippriority: pl.Int32 = pa.Field(ge=0, description="Shipping priority.")
    o_comment: pl.String = pa.Field(description="Free text.")


class LineitemRows(pa.DataFrameModel):
    l_orderkey: pl.Int64 = pa.Field(ge=1, description="Order of the line.")
    l_partkey: pl.Int64 = pa.Field(ge=1, description="Part sold.")
    l_suppkey: pl.Int64 = pa.Field(ge=1, description="Supplier of the part.")
    l_linenumber: pl.Int32 = pa.Field(ge=1, le=7, description="Line number within the order.")
    l_quantity: MONEY = pa.Field(gt=0, description="Quantity (positive).")
    l_extendedprice: MONEY = pa.Field(gt=0, description="Quantity times the part's price.")
    l_discount: MONEY = pa.Field(ge=0, le=Decimal("0.10"), description="Discount, 0 to 0.10.")
    l_tax: MONEY = pa.Field(ge=0, le=Decimal("0.08"), description="Tax, 0 to 0.08.")
    l_returnflag: pl.String = pa.Field(isin=["A", "N", "R"], description="Returned, not, refused.")
    l_linestatus: pl.String = pa.Field(isin=["O", "F"], description="Open or fulfilled.")
    l_shipdate: pl.Date = pa.Field(ge=FIRST, le=LAST, description="Day shipped.")
    l_commitdate: pl.Date = pa.Field(ge=FIRST, le=LAST, description="Day promised.")
    l_receiptdate: pl.Date = pa.Field(ge=FIRST, le=LAST, description="Day received.")
    l_shipinstruct: pl.String = pa.Field(description="Shipping instruction.")
    l_shipmode: pl.String = pa.Field(description="Shipping mode.")
    l_comment: pl.String = pa.Field(description="Free text.")


def _table(rows: type[pa.DataFrameModel], keys: list[str], grain: str) -> type[pa.DataFrameModel]:
    """The table contract: the row rules plus the grain (unique, not null keys)."""

    class Config:
        unique = keys
        strict = False  # partition columns are the table's own business

    return type(rows.__name__.removesuffix("Rows"), (rows,), {"Config": Config, "__doc__": grain})


SILVER_ROWS = {
    "region": RegionRows,
    "nation": NationRows,
    "supplier": SupplierRows,
    "part": PartRows,
    "partsupp": PartsuppRows,
    "customer": CustomerRows,
    "orders": OrdersRows,
    "lineitem": LineitemRows,
}
SILVER = {
    "region": _table(RegionRows, ["r_regionkey"], "One row per region."),
    "nation": _table(NationRows, ["n_nationkey"], "One row per nation."),
    "supplier": _table(SupplierRows, ["s_suppkey"], "One row per supplier."),
    "part": _table(PartRows, ["p_partkey"], "One row per part."),
    "partsupp": _table(PartsuppRows, ["ps_partkey", "ps_suppkey"], "One row per (part, supplier)."),
    "customer": _table(CustomerRows, ["c_custkey"], "One row per customer."),
    "orders": _table(OrdersRows, ["o_orderkey"], "One row per order."),
    "lineitem": _table(LineitemRows, ["l_orderkey", "l_linenumber"], "One row per order line."),
}


class DailyRevenue(pa.DataFrameModel):
    """One row per (order_date, nation, market_segment)."""

    order_date: pl.Date = pa.Field(ge=FIRST, le=LAST, description="Day the orders were placed.")
    nation: pl.String = pa.Field(description="Nation of the customer.")
    market_segment: pl.String = pa.Field(description="Market segment of the customer.")
    revenue: pl.Decimal(38, 4) = pa.Field(
        ge=0, description="sum(l_extendedprice * (1 - l_discount))."
    )
    order_count: pl.Int64 = pa.Field(ge=1, description="Orders with at least one line.")
    line_count: pl.Int64 = pa.Field(ge=1, description="Order lines.")

    class Config:
        unique = ["order_date", "nation", "market_segment"]
        strict = False


class PricingSummary(pa.DataFrameModel):
    """TPC-H Q1: one row per (ship_month, l_returnflag, l_linestatus)."""

    ship_month: pl.Date = pa.Field(description="First day of the month the lines shipped.")
    l_returnflag: pl.String = pa.Field(isin=["A", "N", "R"], description="Return flag.")
    l_linestatus: pl.String = pa.Field(isin=["O", "F"], description="Line status.")
    sum_qty: pl.Decimal(38, 2) = pa.Field(gt=0, description="Total quantity.")
    sum_base_price: pl.Decimal(38, 2) = pa.Field(gt=0, description="Total extended price.")
    sum_disc_price: pl.Decimal(38, 4) = pa.Field(ge=0, description="Total discounted price.")
    sum_charge: pl.Decimal(38, 6) = pa.Field(ge=0, description="Discounted price plus tax.")
    avg_qty: pl.Float64 = pa.Field(gt=0, description="Average quantity.")
    avg_price: pl.Float64 = pa.Field(gt=0, description="Average extended price.")
    avg_disc: pl.Float64 = pa.Field(ge=0, le=0.1, description="Average discount.")
    count_order: pl.Int64 = pa.Field(ge=1, description="Lines.")

    class Config:
        unique = ["ship_month", "l_returnflag", "l_linestatus"]


class CustomerValue(pa.DataFrameModel):
    """One row per customer with at least one order."""

    c_custkey: pl.Int64 = pa.Field(ge=1, unique=True, description="Customer key.")
    first_order_date: pl.Date = pa.Field(ge=FIRST, le=LAST, description="First order's day.")
    last_order_date: pl.Date = pa.Field(ge=FIRST, le=LAST, description="Latest order's day.")
    order_count: pl.Int64 = pa.Field(ge=1, description="Orders placed.")
    lifetime_revenue: pl.Decimal(38, 4) = pa.Field(ge=0, description="Revenue of all their lines.")


GOLD = {
    "daily_revenue": DailyRevenue,
    "pricing_summary": PricingSummary,
    "customer_value": CustomerValue,
}


def failures(frame: pl.DataFrame, model: type[pa.DataFrameModel], table: str) -> pl.DataFrame:
    """Rows breaking ``model``'s row rules: ``__row`` (position), ``_rule``, ``_reason``.

    A failure of the whole frame (a column missing or of the wrong type) raises
    ``ContractError`` naming the table, the column and what was expected.
    """
    empty = pl.DataFrame(schema={"__row": pl.UInt32, "_rule": pl.String, "_reason": pl.String})
    try:
        model.validate(frame, lazy=True)
        return empty
    except pa.errors.SchemaErrors as error:
        cases = error.failure_cases
    whole = cases.filter(pl.col("index").is_null())
    if whole.height:
        details = "; ".join(
            f"{c['column'] or ''} {c['check']}: {str(c['failure_case']).splitlines()[0]}"
            for c in whole.iter_rows(named=True)
        )
        raise ContractError(f"{table} breaks its contract as a whole: {details}")
    rule = pl.coalesce(
        *[
            pl.when(pl.col("check").str.starts_with(k)).then(pl.lit(v))
            for k, v in RULE_OF_CHECK.items()
        ],
        pl.lit("contract"),
    )
    return (
        cases.with_columns(
            rule=rule,
            why=pl.format(
                "{}={} fails {}", pl.col("column"), pl.col("failure_case"), pl.col("check")
            ),
        )
        .group_by(pl.col("index").cast(pl.UInt32).alias("__row"), maintain_order=True)
        .agg(_rule=pl.col("rule").first(), _reason=pl.col("why").str.join("; "))
    )


def check_table(frame: pl.DataFrame, model: type[pa.DataFrameModel], table: str) -> None:
    """A whole table (a mart, a batch about to be merged) must meet its contract."""
    found = failures(frame, model, table)
    if found.height:
        raise ContractError(
            f"{table} breaks its contract in {found.height} rows: {found['_reason'][0]}"
        )
