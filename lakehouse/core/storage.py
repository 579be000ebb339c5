"""Locations: every place the lakehouse reads or writes is a URI plus storage options.

A local path (``data/lake``) and an object-store URI (``s3://bucket/lake``) go through the
same code: fsspec for plain files, deltalake for tables. Credentials are never part of the
configuration: they come from the process environment when a filesystem is opened.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from functools import cached_property

import fsspec
from fsspec.core import split_protocol

from lakehouse.core import fence


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


# deltalake (object_store) retries a failed request with backoff for up to this long, so a
# store that goes away for seconds costs a wait, not a failed run.
STORE_RETRIES = {
    "max_retries": "10",
    "retry_timeout": "120s",
    "backoff_config.init_backoff": "200ms",
    "backoff_config.max_backoff": "10s",
    "backoff_config.base": "2",
}
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
)


def delta_storage_options(uri: str) -> dict[str, str]:
    """Options deltalake needs for ``uri``, read from the environment (empty when local).
    Other stores (``gs://``, ``az://``) read their own variables (``GOOGLE_*``, ``AZURE_*``)."""
    if is_local(uri):
        return {}
    found = {name: os.environ[name] for name in AWS_VARIABLES if os.environ.get(name)}
    return {**STORE_RETRIES, **found}


class StoreUnavailable(ConnectionError):
    """The object store could not be reached (after the client's own retries)."""


class StoreUnsafe(RuntimeError):
    """The object store would let concurrent Delta writers overwrite each other's commits."""


TRANSIENT_MARKS = (
    "Generic S3 error",
    "error sending request",
    "Connection refused",
    "connection reset",
    "Connection reset",
    "Could not connect",
    "timed out",
    "Error performing",
)
TRANSIENT_TYPES = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError")


def is_transient(error: BaseException) -> bool:
    """An error of reaching the store (worth retrying the run), not of the data or settings."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if type(error).__name__ in TRANSIENT_TYPES:
        return True
    if isinstance(error, FileNotFoundError | PermissionError | FileExistsError):
        return False
    return isinstance(error, OSError) and any(mark in str(error) for mark in TRANSIENT_MARKS)


_checked_stores: set[str] = set()


def check_conditional_put(location: Location) -> None:
    """Refuse an S3 store that ignores ``If-None-Match``: delta-rs relies on it so that of two
    writers committing the same version one fails; a store that ignores it lets the second
    overwrite the first's commit (seen: 12 of 45 commits lost, every writer told success).
    Two conditional PUTs of one new key: the second must fail. Once per store per process."""
    protocol, path = split_protocol(location.uri)
    if protocol not in ("s3", "s3a") or location.uri in _checked_stores:
        return
    bucket, _, prefix = path.partition("/")
    key = f"{prefix.strip('/')}/_lakehouse/conditional-put-check/{uuid.uuid4().hex}".lstrip("/")
    fs = location.fs
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
        try:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
        except FileExistsError:
            _checked_stores.add(location.uri)
            return
        raise StoreUnsafe(
            f"{location.uri}: the store accepted a second conditional PUT (If-None-Match: *) of "
            "the same key; concurrent Delta writers would overwrite each other's commits "
            "without an error. Use a store with conditional writes (AWS S3, MinIO, Ceph RGW, "
            "R2, ...); nothing was written."
        )
    finally:
        try:
            fs.call_s3("delete_object", Bucket=bucket, Key=key)
        except Exception:  # the check's own key; a leftover is harmless
            pass


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
        """The last two path segments, e.g. ``silver/page_views``: how logs name a table."""
        return "/".join(self.uri.rstrip("/").rsplit("/", 2)[-2:])

    def exists(self) -> bool:
        return self.fs.exists(self.uri)

    def folders(self) -> list[str]:
        """The names of the folders directly below (none when this folder does not exist)."""
        if not self.exists():
            return []
        listing = self.fs.ls(self.uri, detail=True)
        return sorted(
            info["name"].rstrip("/").rsplit("/", 1)[-1]
            for info in listing
            if info["type"] == "directory"
        )

    def __str__(self) -> str:
        return self.uri


def write_bytes_once(location: Location, data: bytes) -> bool:
    """Write ``data`` to ``location`` unless a file is already there; readers never see half.
    Returns False when the file existed."""
    if location.fs.exists(location.uri):
        return False
    replace_file(location, data)
    return True


def replace_file(location: Location, data: bytes) -> None:
    """Write ``data`` to ``location``, replacing any file there; readers see old or new.

    Local files are written under a hidden temporary name and renamed into place; object
    stores make a PUT visible only once complete.
    """
    fence.check()  # a run that lost its lease writes no file
    fs, uri = location.fs, location.uri
    parent, name = uri.rsplit("/", 1)
    fs.makedirs(parent, exist_ok=True)
    if not is_local(uri):
        fs.pipe_file(uri, data)
        return
    temporary = f"{parent}/.{name}.tmp"
    fs.pipe_file(temporary, data)
    os.replace(temporary, uri)
