"""The deduplicate stage of a silver batch: one row per business key, the latest arrival.

Pure functions on Polars frames; no I/O.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from lakehouse.declare.declaration import Entity

ORDER_OF_ARRIVAL = ("_commit_version", "_ingested_at", "_source_file")


def latest_arrivals(narrow: pl.DataFrame, subset: list[str], height: int) -> pl.Series | None:
    """Mask of a frame of ``height`` rows: the rows of ``narrow`` (the frame's ``subset`` and
    arrival-order columns with its row numbers, ``__row``; all its rows or some) that arrived
    last for their ``subset`` values. None: every row of the frame (no values repeat, most
    batches: one pass finds it). Only the rows whose values repeat are sorted."""
    key = pl.col(subset[0]) if len(subset) == 1 else pl.struct(subset)
    repeated = narrow.select(key.is_duplicated()).to_series()
    if narrow.height == height and not repeated.any():
        return None
    mask = np.zeros(height, dtype=bool)
    mask[narrow["__row"].to_numpy()] = ~repeated.to_numpy()
    order = [c for c in ORDER_OF_ARRIVAL if c in narrow.columns]
    latest = narrow.filter(repeated).sort([*order, "__row"]).unique(subset=subset, keep="last")
    mask[latest["__row"].to_numpy()] = True
    return pl.Series(mask)


def deduplicated(valid: pl.DataFrame, entity: Entity) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per business key, the duplicates). The latest arrival wins.

    A copy superseded by a later copy in its own drop (one landing file as one bronze commit
    took it) is a duplicate, for quarantine. A copy superseded by a later drop (a corrected
    or rewritten file) is an earlier version of the row and is dropped quietly, as a run per
    drop would have merged it and then updated it: a batch of many drops, a full refresh
    among them, quarantines what runs of one drop each quarantine, no more."""
    keys = list(entity.keys)
    # a drop: a file as one bronze commit took it (a full refresh reads no commit versions:
    # the ingestion time of its run tells two takes of one file apart)
    taken = next((c for c in ("_commit_version", "_ingested_at") if c in valid.columns), None)
    drop = [c for c in (taken, "_source_file") if c in valid.columns]
    order = [c for c in ORDER_OF_ARRIVAL if c in valid.columns]
    narrow = valid.select(*dict.fromkeys([*keys, *order, *drop])).with_row_index("__row")
    is_latest = latest_arrivals(narrow, keys, valid.height)
    named = ", ".join(keys)
    reason = pl.lit(f"another row with the same {named} arrived later in the same drop")
    if is_latest is None:  # no key repeats, so neither does a key within a drop
        return valid, valid.clear().with_columns(_rule=pl.lit("duplicate"), _reason=reason)
    last_in_drop = latest_arrivals(narrow, [*keys, *drop], valid.height) if drop else is_latest
    duplicate = pl.lit(False) if last_in_drop is None else ~last_in_drop
    duplicates = valid.filter(duplicate).with_columns(_rule=pl.lit("duplicate"), _reason=reason)
    return valid.filter(is_latest), duplicates
