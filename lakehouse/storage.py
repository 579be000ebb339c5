"""Locations: every place the lakehouse reads or writes is a URI plus storage options.

A local path (``data/lake``) and an object-store URI (``s3://bucket/lake``) go through the
same code: fsspec for plain files, deltalake for tables. Credentials are never part of the
configuration: they come from the process environment when a filesystem is opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import fsspec
from fsspec.core import split_protocol


def join_uri(root: str, *parts: str) -> str:
    """Join path segments onto a URI with '/', whatever the protocol."""
    joined = root.rstrip("/")
    for part in parts:
        joined = f"{joined}/{part.strip('/')}"
    return joined


def is_local(uri: str) -> bool:
    protocol, _ = split_protocol(uri)
    return protocol in (None, "file", "local")


def absolute_uri(uri: str) -> str:
    """Local paths become absolute (cron and tests run from other folders); URIs stay."""
    if is_local(uri):
        _, path = split_protocol(uri)
        return os.path.abspath(os.path.expanduser(path))
    return uri.rstrip("/")


def delta_storage_options(uri: str) -> dict[str, str]:
    """Options deltalake needs for ``uri``, read from the environment (empty when local)."""
    if is_local(uri):
        return {}
    names = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ALLOW_HTTP",
    )
    return {name: os.environ[name] for name in names if os.environ.get(name)}


@dataclass(frozen=True)
class Location:
    """A folder of the lake or of the landing zone: a URI plus how to reach it."""

    uri: str
    fsspec_options: dict = field(default_factory=dict)

    @classmethod
    def from_uri(cls, uri: str) -> Location:
        return cls(absolute_uri(uri))

    def child(self, *parts: str) -> Location:
        return Location(join_uri(self.uri, *parts), self.fsspec_options)

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        protocol, _ = split_protocol(self.uri)
        return fsspec.filesystem(protocol or "file", **self.fsspec_options)

    @property
    def delta_options(self) -> dict[str, str]:
        return delta_storage_options(self.uri)

    @property
    def name(self) -> str:
        """The last two path segments, e.g. ``silver/orders``: how logs name a table."""
        return "/".join(self.uri.rstrip("/").rsplit("/", 2)[-2:])

    def exists(self) -> bool:
        return self.fs.exists(self.uri)

    def __str__(self) -> str:
        return self.uri


def write_bytes_once(location: Location, data: bytes) -> bool:
    """Write ``data`` to ``location`` unless a file is already there; readers never see half.

    Local files are written under a hidden temporary name and renamed into place; object
    stores make a PUT visible only once complete. Returns False when the file existed.
    """
    fs, uri = location.fs, location.uri
    if fs.exists(uri):
        return False
    parent, name = uri.rsplit("/", 1)
    fs.makedirs(parent, exist_ok=True)
    if not is_local(uri):
        fs.pipe_file(uri, data)
        return True
    temporary = f"{parent}/.{name}.tmp"
    fs.pipe_file(temporary, data)
    fs.mv(temporary, uri)
    return True
