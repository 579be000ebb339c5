"""The landing files a bronze task has read for its next staged Parquet file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from lakehouse.layers.bronze.landing_files import LandingFile


class Pending:
    """The files read for the next staged Parquet file: their row counts, and their rows,
    gathered every ``GATHER`` files into one contiguous frame with the lineage columns
    (one query per group, not per file: small files cost their per-query overhead)."""

    GATHER = 512

    def __init__(self, run: list[pl.Expr]) -> None:
        self.run = run
        self.files: list[tuple[LandingFile, int]] = []
        self.rows = 0
        self.gathered: list[pl.DataFrame] = []
        self.tail: list[pl.DataFrame] = []

    def add(self, file: LandingFile, rows: pl.DataFrame) -> None:
        self.files.append((file, rows.height))
        self.rows += rows.height
        self.tail.append(rows)
        if len(self.tail) >= self.GATHER:
            self._gather()

    def _gather(self) -> None:
        files = self.files[len(self.files) - len(self.tail) :]
        data = pl.concat(self.tail, how="diagonal_relaxed", rechunk=True)
        names = pl.Series("_source_file", [file.relative for file, _ in files], pl.String)
        # each file's name gathered by row (NumPy's repeat of strings: 6 s for SF 10's line items)
        source_file = names.gather(np.repeat(np.arange(len(files)), [rows for _, rows in files]))
        self.gathered.append(data.with_columns(source_file, *self.run))
        self.tail = []

    def frames(self) -> list[pl.DataFrame]:
        if self.tail:
            self._gather()
        return self.gathered
