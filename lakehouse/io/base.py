"""What every I/O plugin is: ``Source``, ``Sink``, their registry, ``Change``, ``Moved``, and
how secrets are kept out of messages (see the package's docstring)."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from lakehouse.core.shapes import did_you_mean

BATCH_ROWS = 100_000  # rows per Arrow record batch a plugin streams


class PluginError(ValueError):
    """A source or sink the YAML names that cannot be built: unknown format, bad key, unset
    environment variable. Raised before any data moves."""


@dataclass
class Moved:
    """Rows and bytes a plugin read or wrote (Arrow bytes in memory), for the ledger."""

    rows: int = 0
    bytes: int = 0

    def count(self, data: pa.Table | pa.RecordBatch) -> None:
        self.rows += data.num_rows
        self.bytes += data.nbytes


@dataclass(frozen=True)
class Change:
    """What a sink makes true: the rows of ``table`` where ``column`` is one of ``values``
    (every row when ``column`` is None) are exactly ``batches``, as of gold ``version``.

    ``keys`` is the table's grain (its unique columns), ``partition`` its partition column
    (None for a keyed table), ``schema`` its Arrow schema."""

    table: str
    version: int
    column: str | None
    values: tuple
    keys: tuple[str, ...]
    partition: str | None
    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]

    @property
    def whole(self) -> bool:
        return self.column is None


class Plugin:
    """Common to sources and sinks: a name, the YAML spec, and where it came from."""

    format: ClassVar[str]
    keys: ClassVar[tuple[str, ...]] = ()  # YAML keys this plugin accepts besides `format`
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, spec: dict, where: str):
        self.name, self.spec, self.where = name, dict(spec), where
        self.moved = Moved()
        allowed = {"format", *self.keys}
        for key in self.spec:
            if key not in allowed:
                raise PluginError(
                    f"{where}: {self.format} does not take {key!r}{did_you_mean(key, allowed)} "
                    f"(keys: {', '.join(sorted(allowed))})"
                )
        for key in self.required:
            if self.spec.get(key) in (None, ""):
                raise PluginError(f"{where}.{key}: {self.format} needs it")
        for key in self.spec:
            if key.endswith("_env"):
                self.env(key)  # an unset variable fails now, before any data moves

    def env(self, key: str) -> str:
        """The secret in the environment variable named by the YAML key ``key`` (``url_env``)."""
        variable = self.spec.get(key)
        if not variable:
            raise PluginError(f"{self.where}.{key}: name the environment variable")
        value = os.environ.get(variable, "")
        if not value:
            raise PluginError(
                f"{self.where}.{key}: environment variable {variable} is unset or empty"
            )
        return value


class Source(Plugin):
    """``kind = "files"``: see ``files.FileSource`` (``list_files``, ``parse``).
    ``kind = "table"``: ``batches`` streams the rows with ``column >= since`` (all rows
    when ``since`` is None)."""

    kind: ClassVar[str]

    def batches(self, column: str | None, since) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.format


class Sink(Plugin):
    def published_version(self, table: str) -> int | None:
        raise NotImplementedError

    def write(self, change: Change) -> Moved:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} ({self.format})"

    def target(self, table: str) -> str:
        """A URI naming where ``table`` is published (for lineage; never a credential)."""
        return f"{self.format}://{self.name}/{table}"


SOURCES: dict[str, type[Source]] = {}
SINKS: dict[str, type[Sink]] = {}


def register(cls):
    """Class decorator: make a plugin known by its ``format``."""
    registry = SOURCES if issubclass(cls, Source) else SINKS
    registry[cls.format] = cls
    return cls


def _lookup(registry: dict, kind: str, spec: dict, where: str):
    fmt = (spec or {}).get("format")
    if isinstance(fmt, str) and ":" in fmt:
        module, _, attribute = fmt.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise PluginError(f"{where}.format: cannot import {fmt!r}: {error}") from None
    if fmt not in registry:
        raise PluginError(
            f"{where}.format: {fmt!r} is not a known {kind} "
            f"(known: {', '.join(sorted(registry))}; or package.module:Class)"
        )
    return registry[fmt]


def source(name: str, spec: dict, where: str) -> Source:
    """The source plugin for ``spec`` (``{"format": ..., ...}``), checked, nothing read yet."""
    return _lookup(SOURCES, "source", spec, where)(name, spec, where)


def sink(name: str, spec: dict, where: str) -> Sink:
    """The sink plugin for ``spec``, checked, nothing written yet."""
    return _lookup(SINKS, "sink", spec, where)(name, spec, where)


_URL_PASSWORD = re.compile(r"(://[^:/@]+):[^@]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with any password of a connection string in it replaced by ``***``."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", str(text)))


def plain(data: pa.Table | pa.RecordBatch):
    """Arrow data with extension columns (e.g. PostgreSQL's opaque numeric) as their storage
    type, so Delta, Parquet and DuckDB can store them."""
    if not any(isinstance(f.type, pa.BaseExtensionType) for f in data.schema):
        return data
    columns = [_storage(c) if isinstance(c.type, pa.BaseExtensionType) else c for c in data.columns]
    kind = pa.RecordBatch if isinstance(data, pa.RecordBatch) else pa.Table
    return kind.from_arrays(columns, names=data.schema.names)


def _storage(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
    return column.storage
