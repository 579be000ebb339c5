"""Snapshot sources: only changed rows are validated and merged; vanished keys by policy.

A dataset of another shape than TPC-H: a vendor price list exported whole every day as two
CSV parts (``prices_<day>_a.csv``, ``prices_<day>_b.csv``), keyed on (vendor, sku), a
string and an integer.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import polars as pl
import pytest
import yaml
from crash_harness import silver_killed_at_the_merge
from deltalake import DeltaTable

DECLARATION = {
    "description": "A vendor price list, exported whole every day in two parts.",
    "sources": {"prices": {"format": "csv"}},
    "entities": {
        "prices": {
            "grain": "One row per (vendor, sku).",
            "key": ["vendor", "sku"],
            "snapshot": {"vanished": "keep", "group": r"\d{4}-\d{2}-\d{2}"},
            "columns": {
                "vendor": {"type": "string"},
                "sku": {"type": "int32", "rules": {"ge": 1}},
                "price": {"type": "decimal(10,2)", "rules": {"gt": 0}},
                "listed_on": {"type": "date"},
            },
        }
    },
}


@pytest.fixture
def prices(lakehouse):
    lakehouse.switch_demo(False)
    return lakehouse


def declare(house, vanished: str) -> None:
    spec = json.loads(json.dumps(DECLARATION))
    spec["entities"]["prices"]["snapshot"]["vanished"] = vanished
    path = house.project / "conf" / "datasets" / "prices.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def price_list(count: int) -> dict[tuple[str, int], dict]:
    rng = random.Random(7)
    rows = {}
    for i in range(count):
        key = (f"v{i % 7}", 1000 + i)
        rows[key] = {
            "vendor": key[0],
            "sku": key[1],
            "price": f"{rng.randrange(100, 50_000) / 100:.2f}",
            "listed_on": f"2031-0{1 + i % 9}-1{i % 10}",
        }
    return rows


def land(house, day: str, rows: dict) -> None:
    """The snapshot of ``day`` in two CSV parts (half the rows each)."""
    folder = house.landing / "prices"
    folder.mkdir(parents=True, exist_ok=True)
    listed = list(rows.values())
    half = len(listed) // 2
    for part, chunk in (("a", listed[:half]), ("b", listed[half:])):
        pl.DataFrame(chunk, schema=dict.fromkeys(listed[0], pl.String)).write_csv(
            folder / f"prices_{day}_{part}.csv"
        )


def deliver(house, day: str, rows: dict) -> None:
    """Land the snapshot of ``day`` and carry it through bronze and silver."""
    land(house, day, rows)
    house.run("bronze")
    house.run("silver")


def silver(house) -> pl.DataFrame:
    return house.table("silver/prices")


def as_rows(frame: pl.DataFrame) -> dict[tuple[str, int], dict]:
    return {
        (r["vendor"], r["sku"]): {
            "vendor": r["vendor"],
            "sku": r["sku"],
            "price": f"{r['price']:.2f}",
            "listed_on": r["listed_on"].isoformat(),
        }
        for r in frame.iter_rows(named=True)
    }


def last_commit(house) -> dict:
    return DeltaTable(str(house.lake / "silver" / "prices")).history(1)[0]


def last_merge_metrics(house) -> dict:
    commit = last_commit(house)
    assert commit["operation"] == "MERGE"
    return commit["operationMetrics"]


def next_snapshot(rows: dict, changed: int, new: int, vanished: int) -> tuple[dict, list, list]:
    """``rows`` with ``changed`` prices raised, ``new`` keys added and ``vanished`` removed."""
    keys = sorted(rows)
    after = {k: dict(v) for k, v in rows.items()}
    raised = keys[:changed]
    for key in raised:
        after[key]["price"] = f"{Decimal(after[key]['price']) + Decimal('1.00'):.2f}"
    gone = keys[-vanished:] if vanished else []
    for key in gone:
        del after[key]
    for i in range(new):
        key = ("v-new", 90_000 + i)
        after[key] = {"vendor": key[0], "sku": key[1], "price": "9.99", "listed_on": "2031-12-01"}
    return after, raised, gone


def test_a_snapshot_merges_only_its_changed_and_new_rows_and_keeps_vanished_keys(prices):
    declare(prices, "keep")
    first = price_list(2000)
    deliver(prices, "2031-03-01", first)
    assert as_rows(silver(prices)) == first
    assert silver(prices)["_row_hash"].null_count() == 0

    second, raised, gone = next_snapshot(first, changed=20, new=5, vanished=10)
    deliver(prices, "2031-03-02", second)
    merged, appended = DeltaTable(str(prices.lake / "silver" / "prices")).history(2)
    metrics = merged["operationMetrics"]  # of 4,000 rows landed, the 1 % changed
    assert (merged["operation"], metrics["num_source_rows"]) == ("MERGE", 20)
    assert metrics["num_target_rows_updated"] == 20
    assert metrics["num_target_rows_inserted"] == 0
    # the 5 new keys were appended just before, in a commit that is not the batch's
    assert (appended["operation"], appended["operationMetrics"]["num_added_rows"]) == (
        "WRITE",
        5,
    )
    assert "lakehouse.watermark" not in appended
    assert as_rows(silver(prices)) == second | {k: first[k] for k in gone}  # kept
    assert not (prices.lake / "_quarantine" / "prices").exists() or (
        prices.table("_quarantine/prices").height == 0
    )

    land(prices, "2031-03-03", second)  # the same snapshot again: nothing to merge
    prices.run("bronze")
    before = prices.version("silver/prices")
    prices.run("silver")
    commit = last_commit(prices)  # only the batch's watermark was recorded
    assert (commit["operation"], commit["operationMetrics"]["num_added_rows"]) == ("WRITE", 0)
    assert prices.version("silver/prices") == before + 1
    assert as_rows(silver(prices)) == second | {k: first[k] for k in gone}


@pytest.mark.parametrize("vanished", ["keep", "soft_delete"])
def test_a_run_killed_between_the_append_of_new_keys_and_the_merge_is_completed_by_the_rerun(
    prices, monkeypatch, vanished
):
    declare(prices, vanished)
    first = price_list(400)
    deliver(prices, "2031-03-01", first)
    second, raised, gone = next_snapshot(first, changed=6, new=9, vanished=3)
    land(prices, "2031-03-02", second)
    prices.run("bronze")
    before = prices.version("silver/prices")

    silver_killed_at_the_merge(prices, monkeypatch)
    assert prices.version("silver/prices") == before + 1  # the 9 new keys only
    assert silver(prices).height == 400 + 9

    prices.run("silver")
    merged = last_merge_metrics(prices)  # the rerun found the new keys' rows unchanged
    assert merged["num_target_rows_inserted"] == 0
    assert merged["num_target_rows_updated"] == 6 + 3 * (vanished == "soft_delete")
    rows = silver(prices)
    assert rows.select("vendor", "sku").is_duplicated().sum() == 0
    assert as_rows(rows) == second | {k: first[k] for k in gone}
    if vanished == "soft_delete":
        flagged = rows.filter(pl.col("_deleted_at").is_not_null())
        assert sorted(zip(flagged["vendor"], flagged["sku"], strict=True)) == sorted(gone)


def test_soft_delete_flags_a_vanished_key_and_clears_the_flag_when_it_returns(prices):
    declare(prices, "soft_delete")
    first = price_list(300)
    deliver(prices, "2031-03-01", first)
    second, _, gone = next_snapshot(first, changed=3, new=0, vanished=4)
    deliver(prices, "2031-03-02", second)

    rows = silver(prices)
    flagged = rows.filter(pl.col("_deleted_at").is_not_null())
    assert sorted(zip(flagged["vendor"], flagged["sku"], strict=True)) == sorted(gone)
    assert as_rows(rows.filter(pl.col("_deleted_at").is_null())) == second

    third = dict(second)
    third[gone[0]] = {**first[gone[0]], "price": "1.23"}  # back, at a new price
    third[gone[1]] = first[gone[1]]  # back, unchanged
    deliver(prices, "2031-03-03", third)
    rows = silver(prices)
    live = rows.filter(pl.col("_deleted_at").is_null())
    assert as_rows(live) == third
    assert rows.height == len(third) + 2  # the two still gone stay, flagged


def test_delete_removes_vanished_keys_and_a_batch_never_splits_a_snapshot(prices):
    """Each part is its own bronze commit and a silver batch holds fewer rows than a
    snapshot: cut at the rows, a batch would hold half a snapshot and delete the other half."""
    declare(prices, "delete")
    prices.configure("bronze", max_rows_per_commit=100)
    prices.configure("silver", max_cells_per_batch=150 * 4)  # 150 rows of 4 columns
    first = price_list(400)
    second, _, gone = next_snapshot(first, changed=4, new=3, vanished=6)
    land(prices, "2031-03-01", first)
    land(prices, "2031-03-02", second)
    prices.run("bronze")
    assert DeltaTable(str(prices.lake / "bronze" / "prices")).version() >= 3  # four commits
    prices.run("silver")
    assert as_rows(silver(prices)) == second

    third, _, gone_too = next_snapshot(second, changed=0, new=0, vanished=5)
    deliver(prices, "2031-03-03", third)
    assert as_rows(silver(prices)) == third
    assert not set(gone_too) & set(as_rows(silver(prices)))

    prices.run("silver", inputs={"full_refresh": True})  # all three snapshots, from bronze
    assert as_rows(silver(prices)) == third
    # the older snapshots' copies are earlier versions, as the runs per snapshot merged them
    assert not (prices.lake / "_quarantine" / "prices").exists()  # nothing to quarantine


def test_a_bad_row_in_a_snapshot_is_quarantined_and_the_last_good_version_stays(prices):
    declare(prices, "keep")
    first = price_list(50)
    deliver(prices, "2031-03-01", first)
    key = sorted(first)[0]
    second = {**first, key: {**first[key], "price": "-4.00"}}
    deliver(prices, "2031-03-02", second)

    assert as_rows(silver(prices)) == first
    quarantined = prices.table("_quarantine/prices")
    assert quarantined.height == 1
    assert "price" in quarantined["reason"][0]
    assert quarantined["source_file"][0].endswith("prices_2031-03-02_a.csv")


def test_batches_that_change_nothing_commit_nothing_and_a_kill_after_them_is_finished_once(
    prices, monkeypatch
):
    """A catch-up over snapshots seen before: their batches commit nothing (the next commit
    carries the watermark past them). Killed at the MERGE of a later batch, after its
    quarantine commit, the rerun goes on from the watermark, over the batches that
    committed nothing, and neither quarantines the bad row twice nor leaves work behind."""
    from lakehouse.core import delta

    declare(prices, "keep")
    prices.configure("bronze", max_rows_per_commit=100)  # each part its own bronze commit
    prices.configure("silver", max_cells_per_batch=100 * 4)  # ... and its own batch
    first = price_list(200)
    deliver(prices, "2031-03-01", first)
    for day in ("2031-03-02", "2031-03-03", "2031-03-04"):
        land(prices, day, first)  # the same list again: 6 batches that change nothing
    last, raised, _ = next_snapshot(first, changed=3, new=0, vanished=0)
    bad = ("v1", 1001)  # in the first part, with the raised prices: one batch
    last[bad] = {**first[bad], "price": "-1.00"}
    land(prices, "2031-03-05", last)
    prices.run("bronze")
    before = prices.version("silver/prices")

    silver_killed_at_the_merge(prices, monkeypatch)
    assert prices.version("silver/prices") == before  # the 6 unchanged batches: no commit
    done = delta.last_watermark(DeltaTable(str(prices.lake / "silver" / "prices")), "silver:prices")
    quarantined = DeltaTable(str(prices.lake / "_quarantine" / "prices"))
    pending = delta.last_watermark(quarantined, "silver:prices")
    assert pending["batch"] == done["batch"] + 7  # quarantined, 6 batches past the watermark

    prices.run("silver")
    expected = {**last, bad: first[bad]}  # the bad price quarantined, the last good one kept
    assert as_rows(silver(prices)) == expected
    assert prices.table("_quarantine/prices").height == 1  # not quarantined again
    assert prices.version("_quarantine/prices") == quarantined.version()  # no commit either
    finished = prices.version("silver/prices")
    prices.run("silver")  # nothing left to do
    assert prices.version("silver/prices") == finished


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        (
            {"vanished": "purge"},
            "snapshot.vanished: 'purge' is not one of keep, soft_delete, delete",
        ),
        ({"group": "(["}, "snapshot.group: "),
        ({"vanish": "keep"}, "snapshot: unknown key 'vanish'; did you mean 'vanished'?"),
    ],
)
def test_a_wrong_snapshot_declaration_names_the_setting(prices, snapshot, message):
    spec = json.loads(json.dumps(DECLARATION))
    spec["entities"]["prices"]["snapshot"] = snapshot
    (prices.project / "conf" / "datasets" / "prices.yml").write_text(yaml.safe_dump(spec))
    result = prices.cli("silver")
    assert result.returncode == 2
    assert message in result.stderr
    assert "conf/datasets/prices.yml" in result.stderr
