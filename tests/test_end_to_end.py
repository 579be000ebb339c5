"""The daily flow on a temp lake, checked against tpchgen-cli's own rows and aggregates."""

from __future__ import annotations

from collections import Counter
from datetime import date

import duckdb
import polars as pl
import pytest
import truth
from conftest import sandbox
from polars.testing import assert_frame_equal
from truth import ENTITIES

TABLES = [
    "bronze/orders",
    "bronze/lineitem",
    "silver/orders",
    "silver/lineitem",
    "silver/customer",
    "silver/nation",
    "_quarantine/orders",
    "_quarantine/lineitem",
    "gold/daily_revenue",
    "gold/pricing_summary",
    "gold/customer_value",
]
RULE_OF_DEFECT = {  # landing's defect kind -> the quarantine rule that must catch it
    "null_key": "null_key",
    "impossible_date": "unparseable_value",
    "negative_quantity": "out_of_range",
    "orphan": "orphan",
}


def _sorted(frame: pl.DataFrame, keys) -> pl.DataFrame:
    return frame.sort(list(keys))


def _silver(lakehouse, entity: str) -> pl.DataFrame:
    columns = list(ENTITIES[entity].columns)
    return _sorted(lakehouse.table(f"silver/{entity}").select(columns), ENTITIES[entity].keys)


def _snapshot(lakehouse) -> dict[str, pl.DataFrame]:
    """Every table's rows, in a stable order, without per-run columns."""
    snapshot = {}
    for name in TABLES:
        frame = lakehouse.table(name).drop(
            "_ingested_at", "_run_id", "run_id", "quarantined_at", strict=False
        )
        snapshot[name] = frame.sort(frame.columns)
    return snapshot


def _ingest(house):
    """Nine days landed (three daily runs) with defects on at a high rate."""
    house.configure("landing", defect_rate=0.05, extra_column_from="1992-01-04")
    for _ in range(3):
        house.run("daily")
    return house


@pytest.fixture
def ingested(lakehouse):
    """The nine days, for a test that runs pipelines on them again."""
    return _ingest(lakehouse)


@pytest.fixture(scope="module")
def ingested_once(tmp_path_factory, tpch_cache):
    """The nine days, ingested once for the tests that only read the lake."""
    with sandbox(tmp_path_factory.mktemp("ingested"), tpch_cache) as house:
        yield _ingest(house)


def test_silver_equals_the_original_rows_delivered(ingested_once):
    first, last = date(1992, 1, 1), ingested_once.last_day()
    assert last == date(1992, 1, 9)
    con = truth.delivered(ingested_once.generated(), ingested_once.manifests(), first, last)
    for entity in ("orders", "lineitem", "customer", "nation"):
        expected = truth.entity_rows(con, entity)
        assert expected.height > 0
        assert_frame_equal(_silver(ingested_once, entity), expected, check_dtypes=True)


def test_every_injected_defect_is_quarantined_and_counted(ingested_once):
    injected = Counter()
    for manifest in ingested_once.manifests():
        for table, kinds in manifest["defects"].items():
            for kind, count in kinds.items():
                injected[(table, kind)] += count
    assert injected[("lineitem", "late")] > 0 and injected[("files", "truncated_resend")] > 0
    for table in ("orders", "lineitem"):
        caught = Counter(ingested_once.table(f"_quarantine/{table}")["rule"].to_list())
        for kind, rule in RULE_OF_DEFECT.items():
            if (table, kind) in injected:
                assert caught[rule] == injected[(table, kind)], (table, kind, caught)
        assert caught["duplicate"] >= injected[(table, "duplicate")]
    lineitem_rules = Counter(ingested_once.table("_quarantine/lineitem")["rule"].to_list())
    assert lineitem_rules["missing_value"] == injected[("files", "truncated_resend")]


def _assert_marts_equal_truth(lakehouse, scale_factor: float = 0.01) -> None:
    con = truth.delivered(
        lakehouse.generated(scale_factor),
        lakehouse.manifests(),
        date(1992, 1, 1),
        lakehouse.last_day(),
    )
    daily = lakehouse.table("gold/daily_revenue").drop("order_month")
    assert_frame_equal(
        _sorted(daily, daily.columns[:3]), truth.daily_revenue(con), check_dtypes=False
    )
    pricing = lakehouse.table("gold/pricing_summary")
    expected = truth.pricing_summary(con)
    exact = [c for c in expected.columns if not c.startswith("avg_")]
    actual = _sorted(pricing.select(expected.columns), expected.columns[:3])
    assert_frame_equal(actual.select(exact), expected.select(exact), check_dtypes=False)
    assert_frame_equal(actual.drop(exact), expected.drop(exact), rel_tol=1e-9)
    value = lakehouse.table("gold/customer_value")
    assert_frame_equal(_sorted(value, ["c_custkey"]), truth.customer_value(con), check_dtypes=False)


def test_gold_marts_equal_duckdb_over_tpchgen_output(ingested_once):
    _assert_marts_equal_truth(ingested_once)


@pytest.mark.slow
def test_at_scale_factor_0_1_the_marts_equal_duckdb_over_tpchgen_output(lakehouse):
    lakehouse.configure("landing", scale_factor=0.1, days_per_run=15, defect_rate=0.02)
    for _ in range(2):
        lakehouse.run("daily")
    assert lakehouse.last_day() == date(1992, 1, 30)
    assert lakehouse.table("gold/customer_value").height > 1000
    _assert_marts_equal_truth(lakehouse, scale_factor=0.1)


def test_daily_publishes_every_mart_to_the_duckdb_file_as_gold_holds_it(ingested_once):
    con = duckdb.connect(str(ingested_once.root / "marts.duckdb"), read_only=True)
    versions = dict(con.execute("SELECT mart, gold_version FROM _lakehouse_published").fetchall())
    for mart in ("daily_revenue", "pricing_summary", "customer_value"):
        published = pl.from_arrow(con.sql(f"SELECT * FROM {mart}").to_arrow_table())
        gold = ingested_once.table(f"gold/{mart}")
        assert_frame_equal(
            published.sort(published.columns),
            gold.select(published.columns).sort(published.columns),
        )
        assert versions[mart] == ingested_once.version(f"gold/{mart}")
    con.close()


def test_money_is_exact_to_the_cent(ingested_once):
    revenue = ingested_once.table("gold/daily_revenue")["revenue"]
    assert revenue.dtype == pl.Decimal(38, 4)


def test_rerunning_changes_no_table(ingested):
    before = _snapshot(ingested)
    bronze_versions = {t: ingested.version(t) for t in TABLES if t.startswith("bronze/")}
    for layer in ("bronze", "silver", "gold"):
        ingested.run(layer)
    assert {t: ingested.version(t) for t in bronze_versions} == bronze_versions
    after = _snapshot(ingested)
    for name in TABLES:
        assert_frame_equal(after[name], before[name])


def test_a_failed_run_then_a_rerun_equals_an_uninterrupted_run(
    lakehouse, tmp_path_factory, monkeypatch
):
    from lakehouse.layers.gold import gold

    lakehouse.run("landing")
    lakehouse.run("bronze")
    lakehouse.run("silver")

    def broken_write(*args, **kwargs):
        raise OSError("disk full while writing gold/customer_value")

    monkeypatch.setattr(gold, "overwrite", broken_write)  # a first build writes marts whole
    with pytest.raises(RuntimeError, match="disk full"):
        lakehouse.run("gold")
    monkeypatch.undo()
    for name, value in lakehouse.env().items():
        monkeypatch.setenv(name, value)
    lakehouse.run("gold")
    lakehouse.run("gold")
    con = truth.delivered(
        lakehouse.generated(), lakehouse.manifests(), date(1992, 1, 1), lakehouse.last_day()
    )
    value = lakehouse.table("gold/customer_value")
    assert_frame_equal(_sorted(value, ["c_custkey"]), truth.customer_value(con), check_dtypes=False)
    daily = lakehouse.table("gold/daily_revenue").drop("order_month")
    assert_frame_equal(
        _sorted(daily, daily.columns[:3]), truth.daily_revenue(con), check_dtypes=False
    )


@pytest.mark.slow
def test_small_commits_and_batches_give_the_same_lake(lakehouse):
    """Bronze split into many small commits, silver into many small batches: same result."""
    lakehouse.configure("landing", defect_rate=0.05)
    lakehouse.configure("bronze", max_rows_per_commit=30)
    lakehouse.configure("silver", max_cells_per_batch=40 * 16)  # 40 line items
    lakehouse.run("daily")
    lakehouse.run("daily")
    assert lakehouse.version("bronze/lineitem") > 4  # many commits, not one per run
    silver_batches = lakehouse.table("_quarantine/lineitem")["bronze_version"].n_unique()
    assert silver_batches > 2
    con = truth.delivered(
        lakehouse.generated(), lakehouse.manifests(), date(1992, 1, 1), lakehouse.last_day()
    )
    for entity in ("orders", "lineitem"):
        assert_frame_equal(_silver(lakehouse, entity), truth.entity_rows(con, entity))
    daily = lakehouse.table("gold/daily_revenue").drop("order_month")
    assert_frame_equal(
        _sorted(daily, daily.columns[:3]), truth.daily_revenue(con), check_dtypes=False
    )


@pytest.mark.parametrize("policy", ["quarantine", "warn"])
def test_silver_equals_the_originals_under_each_policy_that_finishes(lakehouse, policy):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.configure(
        "silver", on_invalid=policy, max_invalid_fraction=0.05 if policy == "warn" else 0.5
    )
    lakehouse.run("daily")
    con = truth.delivered(
        lakehouse.generated(), lakehouse.manifests(), date(1992, 1, 1), lakehouse.last_day()
    )
    for entity in ("orders", "lineitem"):
        assert_frame_equal(_silver(lakehouse, entity), truth.entity_rows(con, entity))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"on_invalid": "fail"},
            r"silver/orders: \d+ of \d+ rows invalid; on_invalid is fail: nothing committed",
        ),
        ({"on_invalid": "drop"}, r"on_invalid: 'drop' is not quarantine, warn or fail"),
    ],
)
def test_invalid_rows_beyond_the_policy_fail_the_batch_and_commit_nothing(
    lakehouse, settings, message
):
    lakehouse.configure("landing", defect_rate=0.05, days_per_run=4)
    lakehouse.configure("silver", **settings)
    lakehouse.run("landing")
    lakehouse.run("bronze")
    with pytest.raises(RuntimeError, match=message):
        lakehouse.run("silver")
    assert not (lakehouse.lake / "silver" / "orders").exists()
    assert not (lakehouse.lake / "_quarantine" / "orders").exists()


def test_a_whole_rebuild_spreads_partitions_over_tasks_and_reads_a_keyed_mart_once(ingested, capfd):
    """A full refresh cuts each partitioned mart into tasks of ``partitions_per_task`` months;
    a mart without a partition (``customer_value``) is one task: a task of some of its keys
    would read every order and line item, the keys lying in any file."""
    ingested.configure("gold", partitions_per_task=1, keys_per_task=5)
    capfd.readouterr()
    ingested.run("gold", inputs={"full_refresh": True})
    logged = capfd.readouterr().err
    months = ingested.table("gold/daily_revenue")["order_month"].n_unique()
    ship_months = ingested.table("gold/pricing_summary")["ship_month"].n_unique()
    assert ingested.table("gold/customer_value").height > 5 * 10  # else one task anyway
    assert f"gold: {months + ship_months + 1} tasks to run" in logged
    _assert_marts_equal_truth(ingested)
