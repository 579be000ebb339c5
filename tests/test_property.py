"""The promise, tested with random change sequences: incremental gold equals a rebuild.

A shop's stores (a dimension) and its sales (facts), both delivered as full snapshots whose
vanished keys are deleted, so that every kind of change can happen: new days of sales,
late sales for old days, changed amounts, sales moved to another store (a foreign key
changed), deleted sales, a store renamed to another region (a dimension attribute), a
store closed (deleted) or opened, a snapshot sent again unchanged. Two marts read them:
one partitioned by month through an inner join, one keyed by store through a left join
from the dimension. After every step, each mart equals a rebuild from silver, exactly.

The TPC-H demo gets the same treatment: the next days (with their late rows and defects), a
nation renamed, customers moved to another nation or segment, a snapshot resent unchanged,
in random order; after every step its three marts equal their rebuild.

The default suite runs 6 shop sequences of 2 to 6 steps and 2 demo sequences; the slow
suite 25 shop sequences of 4 to 12 steps and 10 demo sequences of 3 to 8.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest
import yaml
from conftest import sandbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rebuild import assert_gold_equals_rebuild
from truth import land_snapshot, latest_snapshot

REGIONS = ("north", "south", "east", "west")
FIRST_DAY = date(2031, 1, 30)  # sales cross month ends early
MARTS = ("region_months", "store_totals")
DECLARATION = {
    "description": "A shop's stores and sales, both exported whole on every delivery.",
    "sources": {"stores": {"format": "csv"}, "sales": {"format": "csv"}},
    "entities": {
        "stores": {
            "grain": "One row per store.",
            "key": "store_id",
            "snapshot": {"vanished": "delete"},
            "columns": {"store_id": {"type": "int32"}, "region": {"type": "string"}},
        },
        "sales": {
            "grain": "One row per sale.",
            "key": "sale_id",
            "snapshot": {"vanished": "delete"},
            "partition": {"column": "sale_month", "from": "sold_on", "by": "month"},
            "columns": {
                "sale_id": {"type": "string"},
                "store_id": {"type": "int32"},
                "sold_on": {"type": "date"},
                "amount": {"type": "decimal(12,2)"},
            },
        },
    },
    "marts": {
        "region_months": {
            "sql": "marts/region_months.sql",
            "grain": "One row per (sale_month, region, sold_on).",
            "key": ["sale_month", "region", "sold_on"],
            "partition": "sale_month",
            "columns": {
                "sale_month": {"type": "date"},
                "region": {"type": "string"},
                "sold_on": {"type": "date"},
                "revenue": {"type": "decimal(38,2)"},
                "sales": {"type": "int64"},
            },
        },
        "store_totals": {
            "sql": "marts/store_totals.sql",
            "grain": "One row per open store.",
            "key": "store_id",
            "columns": {
                "store_id": {"type": "int32"},
                "region": {"type": "string"},
                "sales": {"type": "int64"},
                "revenue": {"type": "decimal(38,2)"},
            },
        },
    },
}
REGION_MONTHS = """
SELECT s.sale_month, st.region, s.sold_on, sum(s.amount) AS revenue, count(*) AS sales
FROM sales s JOIN stores st ON st.store_id = s.store_id
GROUP BY ALL
"""
STORE_TOTALS = """
SELECT st.store_id, st.region, count(s.sale_id) AS sales,
       coalesce(sum(s.amount), 0)::DECIMAL(38, 2) AS revenue
FROM stores st LEFT JOIN sales s ON s.store_id = st.store_id
GROUP BY ALL
"""


@dataclass
class Shop:
    """What the upstream system holds: the model the snapshots are cut from."""

    stores: dict[int, str] = field(default_factory=dict)
    sales: dict[str, dict] = field(default_factory=dict)
    next_day: date = FIRST_DAY
    next_sale: int = 0
    next_store: int = 1

    def open_store(self, rng: random.Random) -> None:
        self.stores[self.next_store] = rng.choice(REGIONS)
        self.next_store += 1

    def sell(self, rng: random.Random, day: date, count: int) -> None:
        for _ in range(count):
            self.sales[f"s-{self.next_sale:06d}"] = {
                "store_id": rng.choice(sorted(self.stores)),
                "sold_on": day,
                "amount": Decimal(rng.randrange(1, 100_000)) / 100,
            }
            self.next_sale += 1


def _some(rng: random.Random, keys, share: float = 0.3) -> list:
    keys = sorted(keys)
    return rng.sample(keys, max(1, int(len(keys) * share))) if keys else []


def apply(shop: Shop, step: str, rng: random.Random) -> None:
    """One upstream change of kind ``step``."""
    if step == "new_day":
        shop.sell(rng, shop.next_day, rng.randrange(1, 8))
        shop.next_day += timedelta(days=rng.choice((1, 2, 31)))
    elif step == "late_sales":
        days = max(1, (shop.next_day - FIRST_DAY).days)
        shop.sell(rng, FIRST_DAY + timedelta(days=rng.randrange(days)), 2)
    elif step == "amounts_changed":
        for key in _some(rng, shop.sales):
            shop.sales[key]["amount"] += Decimal("1.05")
    elif step == "sales_moved":
        for key in _some(rng, shop.sales, 0.2):
            shop.sales[key]["store_id"] = rng.choice(sorted(shop.stores))
    elif step == "sales_deleted" and len(shop.sales) > 3:
        for key in _some(rng, shop.sales, 0.2):
            del shop.sales[key]
    elif step == "store_renamed":
        store = rng.choice(sorted(shop.stores))
        shop.stores[store] = rng.choice([r for r in REGIONS if r != shop.stores[store]])
    elif step == "store_closed" and len(shop.stores) > 2:
        del shop.stores[rng.choice(sorted(shop.stores))]
    elif step == "store_opened":
        shop.open_store(rng)
    # "resent": the same snapshots again


def deliver(house, shop: Shop, number: int) -> None:
    """Both snapshots landed and carried through bronze, silver and gold."""
    stores = [{"store_id": k, "region": v} for k, v in sorted(shop.stores.items())]
    sales = [{"sale_id": k, **v} for k, v in sorted(shop.sales.items())]
    for name, rows in (("stores", stores), ("sales", sales)):
        folder = house.landing / name
        folder.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows).write_csv(folder / f"{name}_{number:03d}.csv")
    for layer in ("bronze", "silver", "gold"):
        house.run(layer)


def _project(house) -> None:
    house.switch_demo(False)
    datasets = house.project / "conf" / "datasets"
    (datasets / "shop.yml").write_text(yaml.safe_dump(DECLARATION, sort_keys=False))
    (house.project / "marts").mkdir()
    (house.project / "marts" / "region_months.sql").write_text(REGION_MONTHS)
    (house.project / "marts" / "store_totals.sql").write_text(STORE_TOTALS)


STEPS = st.sampled_from(
    [
        "new_day",
        "late_sales",
        "amounts_changed",
        "sales_moved",
        "sales_deleted",
        "store_renamed",
        "store_closed",
        "store_opened",
        "resent",
    ]
)


SEQUENCES = st.lists(st.tuples(STEPS, st.integers(0, 2**16)), min_size=2, max_size=6)


def check_sequence(steps, root, tpch_cache) -> None:
    with sandbox(root, tpch_cache) as house:
        _project(house)
        shop, rng = Shop(), random.Random(0)
        for _ in range(3):
            shop.open_store(rng)
        shop.sell(rng, FIRST_DAY, 6)
        deliver(house, shop, 0)
        assert_gold_equals_rebuild(house, MARTS)
        for number, (step, seed) in enumerate(steps, 1):
            apply(shop, step, random.Random(seed))
            deliver(house, shop, number)
            assert_gold_equals_rebuild(house, MARTS)
        assert house.table("gold/store_totals")["store_id"].sort().to_list() == sorted(shop.stores)


@given(steps=SEQUENCES)
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_incremental_gold_equals_a_rebuild_after_any_changes(steps, tmp_path_factory, tpch_cache):
    check_sequence(steps, tmp_path_factory.mktemp("shop"), tpch_cache)


@pytest.mark.slow
@given(steps=st.lists(st.tuples(STEPS, st.integers(0, 2**16)), min_size=4, max_size=12))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_incremental_gold_equals_a_rebuild_over_long_sequences(steps, tmp_path_factory, tpch_cache):
    check_sequence(steps, tmp_path_factory.mktemp("shop"), tpch_cache)


DEMO_MARTS = ("daily_revenue", "pricing_summary", "customer_value")
DEMO_STEPS = st.sampled_from(
    ["days", "nation_renamed", "customer_moved", "segment_changed", "resent"]
)


def change_demo(house, step: str, rng: random.Random, number: int) -> None:
    """One upstream change of the TPC-H demo: the next days (with their late rows and
    defects), or a later dimension snapshot with a change (or none)."""
    day = f"2099-01-{number:02d}"
    if step == "days":
        house.run("landing")
    elif step == "nation_renamed":
        nation = latest_snapshot(house, "nation")
        key = rng.randrange(nation.height)
        named = pl.col("n_nationkey") == key
        renamed = pl.when(named).then(pl.col("n_name") + f" {number}").otherwise("n_name")
        land_snapshot(house, "nation", nation.with_columns(n_name=renamed), day)
    elif step in ("customer_moved", "segment_changed"):
        customer = latest_snapshot(house, "customer")
        ordering = house.table("silver/orders")["o_custkey"].unique().sort().to_list()
        chosen = pl.col("c_custkey").is_in(rng.sample(ordering, min(3, len(ordering))))
        if step == "customer_moved":
            change = {"c_nationkey": pl.when(chosen).then((pl.col("c_nationkey") + 1) % 25)}
        else:
            change = {"c_mktsegment": pl.when(chosen).then(pl.lit("MACHINERY"))}
        column, value = next(iter(change.items()))
        land_snapshot(
            house, "customer", customer.with_columns(value.otherwise(column).alias(column)), day
        )
    else:
        land_snapshot(house, "nation", latest_snapshot(house, "nation"), day)
    for layer in ("bronze", "silver", "gold"):
        house.run(layer)


def check_demo_sequence(steps, root, tpch_cache) -> None:
    with sandbox(root, tpch_cache) as house:
        house.configure("landing", days_per_run=2)
        change_demo(house, "days", random.Random(0), 0)
        for number, (step, seed) in enumerate(steps, 1):
            change_demo(house, step, random.Random(seed), number)
            assert_gold_equals_rebuild(house, DEMO_MARTS)


@given(steps=st.lists(st.tuples(DEMO_STEPS, st.integers(0, 2**16)), min_size=2, max_size=3))
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_demo_marts_equal_a_rebuild_after_any_changes(steps, tmp_path_factory, tpch_cache):
    check_demo_sequence(steps, tmp_path_factory.mktemp("demo"), tpch_cache)


@pytest.mark.slow
@given(steps=st.lists(st.tuples(DEMO_STEPS, st.integers(0, 2**16)), min_size=3, max_size=8))
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_demo_marts_equal_a_rebuild_over_long_sequences(steps, tmp_path_factory, tpch_cache):
    check_demo_sequence(steps, tmp_path_factory.mktemp("demo"), tpch_cache)
