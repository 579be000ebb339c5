"""What the driver holds between an entity's batches gives the answers a fresh read gives.

A catch-up commits an entity's batches one after another. Two lookups against silver run
at every batch: the batch's row hashes against a snapshot entity's state, and the batch's
keys against the keys of the partitions it falls in (rows of new keys are appended, the
others merged). Both read only what changed since the batch before (``held``, by data
file), and the hashes are held sorted and probed in order (``frames.SortedSet``), so that a
catch-up does not cost batches x table. Here on parcels keyed on (depot, parcel number),
partitioned by the day they were sent: not the demo's shape.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

import polars as pl
import pytest
import yaml

from lakehouse.core import delta
from lakehouse.core.frames import SortedSet, is_in_large
from lakehouse.core.storage import Location
from lakehouse.declare import catalog
from lakehouse.layers.silver import merge

PARCELS = {
    "sources": {"parcels": {"format": "csv"}},
    "entities": {
        "parcels": {
            "key": ["depot", "parcel_no"],
            "partition": {"column": "sent_day", "from": "sent_at", "by": "day"},
            "columns": {
                "depot": {"type": "string"},
                "parcel_no": {"type": "int32"},
                "sent_at": {"type": "timestamp"},
                "weight_g": {"type": "int64"},
            },
        }
    },
}


@pytest.mark.parametrize("seed", range(4))
def test_is_in_large_is_is_in(seed):
    """Against plain ``is_in``, on numbers and text, with nulls on both sides."""
    rng = random.Random(seed)
    for make in (
        lambda: rng.choice([None, *range(50)]),
        lambda: rng.choice([None, "a", "b", "cc"]),
    ):
        values = pl.Series([make() for _ in range(rng.randint(0, 40))])
        large = pl.Series([make() for _ in range(rng.randint(0, 400))])
        if values.dtype != large.dtype:  # an all-null side: give both the same type
            values, large = values.cast(pl.String), large.cast(pl.String)
        assert is_in_large(values, large).to_list() == values.is_in(large.implode()).to_list()


@pytest.mark.parametrize("seed", range(4))
def test_sorted_set_is_is_in(seed):
    """Silver's row hashes sorted once and probed by batch: ``is_in`` again (and whether all
    of a batch is in), on 64-bit values at both ends of the range and repeated, with nulls
    on both sides and empty sets."""
    rng = random.Random(seed)
    pool = [-(2**63), 2**63 - 1, 0, *(rng.randint(-(2**63), 2**63 - 1) for _ in range(60))]
    for size in (0, 1, 300):
        large = pl.Series([rng.choice([None, *pool]) for _ in range(size)], dtype=pl.Int64)
        known = SortedSet(large)
        for _ in range(5):
            values = pl.Series(
                [rng.choice([None, *pool]) for _ in range(rng.randint(0, 50))], dtype=pl.Int64
            )
            expected = values.is_in(large.drop_nulls().implode()).fill_null(False)
            assert known.contains(values).to_list() == expected.to_list()
            assert known.contains_all(values) == expected.all()  # repeats on both sides
            present = values.filter(expected)  # the values found: all of them contained
            assert known.contains_all(present)


@pytest.fixture
def parcels(tmp_path):
    path = tmp_path / "parcels.yml"
    path.write_text(yaml.safe_dump(PARCELS))
    return catalog.load_dataset(path).entities["parcels"]


def _batch(rng: random.Random, days: list[date], numbers: range) -> pl.DataFrame:
    rows = [
        {
            "depot": rng.choice(["NORTH", "SOUTH", "HARBOUR"]),
            "parcel_no": rng.choice(numbers),
            "sent_at": datetime.combine(rng.choice(days), time(rng.randint(0, 23))),
            "weight_g": rng.randint(1, 30_000),
        }
        for _ in range(300)
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "depot": pl.String,
            "parcel_no": pl.Int32,
            "sent_at": pl.Datetime("us"),
            "weight_g": pl.Int64,
        },
    )
    frame = frame.unique(["depot", "parcel_no"], keep="first", maintain_order=True)
    return frame.with_columns(sent_day=pl.col("sent_at").dt.date())


def test_held_keys_split_a_catch_up_as_a_fresh_read_does(tmp_path, parcels):
    """Twelve batches over a sliding window of days, some keys coming back: with the keys held
    from batch to batch (files of other days let go, files rewritten read again), every
    batch splits into new and known rows exactly as a fresh read of silver splits it."""
    rng = random.Random(7)
    target = Location.from_uri(str(tmp_path / "silver" / "parcels"))
    both = 0  # batches with new and known rows
    held: dict[str, pl.DataFrame] = {}
    start = date(2031, 3, 1)
    for number in range(12):
        days = [start + timedelta(days=number + d) for d in range(3)]
        rows = _batch(rng, days, range(number * 40, number * 40 + 150))  # keys come back
        fresh, known = merge.split_new(target, parcels, rows)
        held_fresh, held_known = merge.split_new(target, parcels, rows, held=held)
        assert held_fresh.sort("depot", "parcel_no").equals(fresh.sort("depot", "parcel_no"))
        assert held_known.sort("depot", "parcel_no").equals(known.sort("depot", "parcel_no"))
        both += bool(fresh.height and known.height)
        properties = delta.commit_properties("test", number + 1, {}, "run")
        if fresh.height:
            merge.append_new(target, parcels, fresh, properties, "run")
        merge.merge(target, parcels, known, properties)  # rewrites files: held reads them again
        held_days = {path.split("sent_day=")[1][:10] for path in held}
        assert held_days <= {d.isoformat() for d in days}  # other days' files let go
    assert both >= 8  # the split was put to the test: most batches had rows of either kind
