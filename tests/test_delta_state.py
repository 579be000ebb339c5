"""State read back from the Delta log (app transactions, across a checkpoint), and the
silver batches planned from bronze commit sizes."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import CommitProperties, Transaction

from lakehouse.core import delta, delta_log
from lakehouse.core.storage import Location
from lakehouse.layers.silver import plan


def test_app_transactions_match_delta_rs_across_a_checkpoint(tmp_path):
    location = Location.from_uri(str(tmp_path / "table"))
    rows = pa.table({"a": pa.array([1], pa.int64())})

    def commit(*transactions):
        properties = CommitProperties(app_transactions=[Transaction(a, v) for a, v in transactions])
        write_deltalake(location.uri, rows, mode="append", commit_properties=properties)

    commit(("file:a", 1), ("batch", 1))
    commit(("file:b", 7), ("batch", 2))
    DeltaTable(location.uri).create_checkpoint()
    commit(("file:a", 5), ("batch", 3))  # file a rewritten, after the checkpoint
    commit(("file:c", 9))
    table = DeltaTable(location.uri)
    found = delta_log.app_transactions(location)
    assert found == {"file:a": 5, "file:b": 7, "file:c": 9, "batch": 3}
    assert all(table.transaction_version(app) == version for app, version in found.items())
    assert delta_log.app_transactions(Location.from_uri(str(tmp_path / "none"))) == {}


def test_app_transactions_kept_up_to_date_commit_by_commit_equal_a_full_read(tmp_path):
    """Bronze's driver reads a table's transactions once, then each later commit (its own
    and another writer's, across a checkpoint): the same as reading them all again."""
    location = Location.from_uri(str(tmp_path / "table"))
    rows = pa.table({"a": pa.array([1], pa.int64())})

    def commit(*transactions):
        properties = CommitProperties(app_transactions=[Transaction(a, v) for a, v in transactions])
        write_deltalake(location.uri, rows, mode="append", commit_properties=properties)

    commit(("file:a", 1))
    known = delta_log.known_transactions(location)
    assert (known.ids, known.through) == ({"file:a": 1}, 0)
    for version in range(1, 6):
        commit((f"file:{version}", version), ("file:a", 10 + version))
        if version == 3:
            DeltaTable(location.uri).create_checkpoint()
        known = delta_log.known_transactions(location, known)
        assert known.through == version
        assert known.ids == delta_log.app_transactions(location)
    assert known.ids["file:a"] == 15
    assert delta_log.known_transactions(location, known).through == 5  # nothing new


def test_the_watermark_is_found_behind_many_other_commits(tmp_path):
    location = Location.from_uri(str(tmp_path / "table"))
    rows = pa.table({"a": pa.array([1], pa.int64())})
    mark = delta.commit_properties("silver:x", 1, {"bronze_through": 7}, "run-1")
    write_deltalake(location.uri, rows, commit_properties=mark)
    for _ in range(6):
        write_deltalake(location.uri, rows, mode="append")  # e.g. maintenance, other writers
    table = DeltaTable(location.uri)
    assert delta.last_watermark(table, "silver:x", depth=3)["bronze_through"] == 7
    assert delta.last_watermark(table, "gold:y", depth=3) is None


def test_a_batch_takes_a_bronze_remainder_along_but_stays_within_an_eighth_over():
    plain = SimpleNamespace(snapshot=None)  # an entity that is no snapshot source
    cut = partial(plan._through, max_rows=8_000, entity=plain)  # bronze's 7,900 + remainders
    assert cut([(3, 7_900, []), (4, 900, []), (5, 7_900, [])]) == 4
    assert cut([(3, 7_500, []), (4, 900, []), (5, 900, [])]) == 4  # 9,300 would be too far
    assert cut([(3, 4_100, []), (4, 4_100, [])]) == 3  # not a remainder: over is over
    assert cut([(3, 9_000, []), (4, 100, [])]) == 3  # one commit alone may exceed the bound


def test_bronze_rows_are_read_from_the_appended_files_or_else_from_the_change_feed(tmp_path):
    location = Location.from_uri(str(tmp_path / "bronze"))
    appended = [
        pa.table({"id": ["a", "b"], "_ingested_at": pa.array([1, 1], pa.timestamp("us", "UTC"))}),
        pa.table({"id": ["c"], "_ingested_at": pa.array([2], pa.timestamp("us", "UTC"))}),
        pa.table(  # a column bronze gained later
            {
                "id": ["d"],
                "_ingested_at": pa.array([3], pa.timestamp("us", "UTC")),
                "extra": ["x"],
            }
        ),
    ]
    for rows in appended:
        write_deltalake(location.uri, rows, mode="append", schema_mode="merge")
    table = DeltaTable(location.uri)
    files = delta_log.appended_files(location, table, 0, 2)
    assert [version for version, _, _ in files] == [1, 2]
    batch = plan.Batch(1, 0, 2, False)
    rows = plan.bronze_rows(location, batch, table).sort("id")
    assert rows.select("id", "_commit_version", "extra").rows() == [("c", 1, None), ("d", 2, "x")]

    table.optimize.compact()  # removes and re-adds files: the log is no longer plain appends
    table = DeltaTable(location.uri)
    assert delta_log.appended_files(location, table, 0, 3) is None
    from_feed = plan.bronze_rows(location, plan.Batch(1, 0, 3, False), table).sort("id")
    assert (
        from_feed.select("id", "_commit_version", "extra").rows()
        == rows.select("id", "_commit_version", "extra").rows()
    )
