"""A landing folder's files, listed without holding the store's description of each.

fsspec's ``ls`` answers with a dict per file (eleven keys on a local disk, more on S3), and
s3fs keeps the whole answer in its directory cache for the life of the process: 200,000
files cost about 200 MB before bronze looked at one. Here each entry is cut down, as it
arrives, to what bronze uses (``Listed``): a local folder is read with ``os.scandir``, an S3
prefix page by page (1,000 keys a request); other stores, and globs, through fsspec, each
answer reduced at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

import fsspec
from fsspec.asyn import sync
from fsspec.core import split_protocol

from lakehouse.core.storage import is_local

S3_PROTOCOLS = ("s3", "s3a")


class Listed(NamedTuple):
    """One file of a listing: its URI, its name below the folder listed, and its size,
    version (what says it changed: an object store's ETag, else the modification time) and
    modification time in seconds since the epoch."""

    uri: str
    name: str
    size: int
    version: object
    modified: float | None


class Entry(NamedTuple):
    """A file as the store lists it: its path (without protocol on a remote store)."""

    path: str
    size: int
    version: object
    modified: float | None


def version_of(info: dict) -> object:
    """An fsspec listing's or ``info``'s version of a file: ETag, else mtime."""
    return info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")


def modified_at(info: dict) -> float | None:
    """An fsspec entry's modification time in seconds since the epoch (local disks give
    ``mtime``, object stores ``LastModified``)."""
    moment = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if isinstance(moment, datetime):
        return moment.timestamp()
    return float(moment) if isinstance(moment, int | float) else None


def entry(info: dict) -> Entry:
    return Entry(info["name"], info["size"], version_of(info), modified_at(info))


def files_in(fs: fsspec.AbstractFileSystem, uri: str) -> Iterator[Entry]:
    """The files directly in folder ``uri``, one at a time."""
    if is_local(uri):
        with os.scandir(split_protocol(uri)[1]) as found:
            for item in found:
                if item.is_file(follow_symlinks=False):  # as fsspec's ls: links are not files
                    stat = item.stat(follow_symlinks=False)
                    yield Entry(item.path, stat.st_size, stat.st_mtime, stat.st_mtime)
        return
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if set(protocols) & set(S3_PROTOCOLS) and hasattr(fs, "_iterdir"):
        yield from sync(fs.loop, _s3_files, fs, uri)
        return
    yield from (entry(info) for info in fs.ls(uri, detail=True) if info["type"] == "file")


async def _s3_files(fs, uri: str) -> list[Entry]:
    """The files under an S3 prefix, page by page, each reduced to an ``Entry`` as it comes
    (s3fs's own listing keeps every page's dicts in its cache)."""
    bucket, key, _ = fs.split_path(uri)
    prefix = f"{key.rstrip('/')}/" if key else ""
    found = []
    async for info in fs._iterdir(bucket, prefix=prefix):
        if info["type"] == "file":
            found.append(entry(info))
    return found
