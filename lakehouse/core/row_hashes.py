"""Row hashes kept beside bronze's data files, so that silver need not read a snapshot row
that changes nothing.

A snapshot source repeats almost every row in each snapshot. Silver tells the rows that
change something by a hash of each row's declared columns (``of``). Bronze reads every
landing file whole anyway, to check it; as it stages a data file it also writes that file's
row hashes beside it (``<data file>.hashes`` in the table's ``_row_hashes/`` folder: a JSON
line saying what each hash covers, then 8 bytes a row for each snapshot entity reading the
source; ``write``). Silver then reads 8 bytes a row instead of the row (``read``); only a
batch with a changed row reads its rows.

A sidecar is used only when it says it hashed exactly the entity's columns, of the types
silver reads them as; otherwise, or when there is none (a table older than sidecars, a file
compaction rewrote), silver reads the rows and hashes them itself, as before. Either way the
hashes are the same function of the same values, so a sidecar changes what silver reads,
never what it writes. Delta's vacuum leaves a folder named ``_...`` alone; ``sweep`` removes
the sidecars of data files that are gone.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from lakehouse.core.storage import Location

FOLDER = "_row_hashes"
SUFFIX = ".hashes"
MAGIC = b"lakehouse row hashes 1\n"  # then a JSON line, then the hashes: int64, little-endian


def of(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """The hash of each row's ``columns``, as silver keeps it (``_row_hash``): stable within a
    Polars version. ``hash_rows`` hashes the columns where they lie, 5-10x faster than
    hashing them as a struct."""
    return frame.select(columns).hash_rows(seed=0).reinterpret(signed=True)


def signature(schema: pl.Schema, columns: list[str]) -> list[list[str]]:
    """What a hash covers: each column with its type."""
    return [[c, str(schema[c])] for c in columns]


def path_of(relative: str) -> str:
    """The sidecar of the data file at ``relative`` (to the table root)."""
    return f"{FOLDER}/{relative}{SUFFIX}"


def write(
    table: Location, relative: str, frame: pl.DataFrame, entities: dict[str, tuple[str, ...]]
) -> None:
    """Stage the row hashes of ``frame`` (the rows of the data file ``relative``, in its
    order) for each entity whose columns it holds (``entities``: name -> declared
    columns), if any. The file is the hashes as they lie in memory behind a JSON header
    (what each covers): writing it as Parquet cost 3x the hashing."""
    covered = {e: list(c) for e, c in entities.items() if set(c) <= set(frame.columns)}
    if not covered:
        return
    header = {
        "rows": frame.height,
        "covers": {e: signature(frame.schema, c) for e, c in covered.items()},
    }
    arrays = [
        of(frame, columns).to_numpy().astype("<i8", copy=False) for columns in covered.values()
    ]
    target = table.child(path_of(relative))
    table.fs.makedirs(target.uri.rsplit("/", 1)[0], exist_ok=True)
    with table.fs.open(target.uri, "wb") as out:
        out.write(MAGIC + json.dumps(header).encode() + b"\n")
        for array in arrays:
            out.write(array.tobytes())


def read(
    table: Location, relatives: list[str], entity: str, covers: list[list[str]]
) -> list[pl.Series] | None:
    """The row hashes of ``entity`` for each data file (``relatives``, to the table root),
    in the files' row order; None unless every file has a sidecar whose ``entity`` hashes
    cover exactly ``covers`` (``signature`` of the rows as silver would read them)."""
    found = []
    for relative in relatives:
        try:
            data = table.fs.cat_file(table.child(path_of(relative)).uri)
        except FileNotFoundError:
            return None
        if not data.startswith(MAGIC):
            return None
        end = data.index(b"\n", len(MAGIC))
        header = json.loads(data[len(MAGIC) : end])
        names = list(header["covers"])
        if header["covers"].get(entity) != covers:
            return None
        rows, at = header["rows"], end + 1 + 8 * header["rows"] * names.index(entity)
        hashes = np.frombuffer(data, dtype="<i8", count=rows, offset=at)
        found.append(pl.Series(entity, hashes, pl.Int64))
    return found


def sweep(table: Location) -> int:
    """Remove the sidecars whose data file is gone (vacuumed); the count removed. One
    listing of the table's folder."""
    root = _bare(table.uri) + "/"
    present = {_bare(p)[len(root) :] for p in table.fs.find(table.uri)}
    orphans = [
        relative
        for relative in present
        if relative.startswith(FOLDER + "/")
        and relative.removeprefix(FOLDER + "/").removesuffix(SUFFIX) not in present
    ]
    for relative in orphans:
        table.fs.rm(table.child(relative).uri)
    return len(orphans)


def _bare(uri: str) -> str:
    """A URI as fsspec lists it: without its protocol."""
    return uri.split("://", 1)[-1].rstrip("/")
