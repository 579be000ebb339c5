"""Polars helpers the layers share."""

from __future__ import annotations

import polars as pl


def is_in_large(values: pl.Series, large: pl.Series) -> pl.Series:
    """``values.is_in(large)`` where ``large`` is silver's state or a parent's keys (millions)
    and ``values`` a batch's: ``large`` probes a hash set of ``values``, and only the values
    found make the second set. ``values.is_in(large)`` builds a hash set of ``large`` at every
    batch, which made a catch-up of many batches cost batches x state (SF 10: 0.04 s for
    750,000 values against 8 million, instead of 0.38 s)."""
    found = large.filter(large.is_in(values.implode()))
    return values.is_in(found.implode())
