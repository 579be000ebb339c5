"""Audit: a mart's parts recomputed from silver and compared with what the mart holds.

Gold's ``audit`` mode (``--inputs '{"audit": true}'``, or ``{"audit": true, "sample": 20}``
for 20 parts drawn at random) recomputes every partition (or key) of each mart from silver
at the versions the mart's watermark says it reflects, in memory, and compares it with the
stored rows, matched on the mart's key: decimals, integers, text and dates exactly, floats
to 1e-9 relative. A mart that differs (a row missing, a row too many, a value changed) is
*drift*: it is reported per mart with example rows, in the run summary, the run ledger,
the report and an OpenLineage data-quality assertion, and the run exits non-zero
(``EXIT_DRIFT``). Nothing is written.
"""

from __future__ import annotations

import random

import polars as pl

EXIT_DRIFT = 4
EXAMPLES = 3  # example rows per kind of difference
FLOAT_TOLERANCE = 1e-9


class MartDrift(RuntimeError):
    """One or more marts differ from their rebuild; ``outputs`` holds every audit result."""

    exit_code = EXIT_DRIFT

    def __init__(self, message: str, outputs) -> None:
        super().__init__(message)
        self.outputs = outputs


def sample(values: tuple, size: int | None, seed: str) -> tuple:
    """``size`` of ``values`` drawn at random (all of them without a size), sorted."""
    if size is None or size >= len(values):
        return values
    return tuple(sorted(random.Random(seed).sample(list(values), size)))


def _rows(frame: pl.DataFrame) -> list[dict]:
    return [{k: str(v) for k, v in row.items()} for row in frame.head(EXAMPLES).to_dicts()]


def compare(stored: pl.DataFrame, fresh: pl.DataFrame, keys: list[str]) -> dict:
    """How ``stored`` differs from ``fresh`` (the rebuild), rows matched on ``keys``:
    counts of rows missing, extra and changed, with examples of each."""
    columns = [c for c in fresh.columns if c in stored.columns]
    stored, fresh = stored.select(columns), fresh.select(columns)
    stored = stored.cast({c: t for c, t in fresh.schema.items() if stored.schema[c] != t})
    missing = fresh.join(stored, on=keys, how="anti", nulls_equal=True)
    extra = stored.join(fresh, on=keys, how="anti", nulls_equal=True)
    both = fresh.join(stored, on=keys, how="inner", suffix="_stored", nulls_equal=True)
    values = [c for c in columns if c not in keys]
    unequal = pl.lit(False)
    for column in values:
        new, old = pl.col(column), pl.col(f"{column}_stored")
        if fresh.schema[column].is_float():
            differs = (new - old).abs() > FLOAT_TOLERANCE * pl.max_horizontal(new.abs(), old.abs())
        else:
            differs = new.ne_missing(old)
        unequal = unequal | differs.fill_null(True)
    changed = both.filter(unequal)
    return {
        "rows_checked": fresh.height,
        "missing": missing.height,
        "extra": extra.height,
        "changed": changed.height,
        "examples": {
            "missing": _rows(missing),
            "extra": _rows(extra),
            "changed": _rows(changed),
        },
    }


def drifted(drift: dict | None) -> bool:
    if not drift:
        return False
    return (drift["missing"] + drift["extra"] + drift["changed"]) > 0


def describe(mart: str, drift: dict) -> str:
    """One line: how a mart differs from its rebuild, with an example."""
    kinds = [k for k in ("missing", "extra", "changed") if drift[k]]
    counts = ", ".join(f"{drift[k]} {k}" for k in kinds)
    example = drift["examples"][kinds[0]][0] if kinds else {}
    return (
        f"gold/{mart} differs from its rebuild from silver in {counts} of "
        f"{drift['rows_checked']} rows (e.g. {kinds[0] if kinds else ''} {example})"
    )
