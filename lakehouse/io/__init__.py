"""I/O plugins: every source and sink a pipeline's YAML can name with ``format``.

A plugin is one class with a ``format`` name, the YAML ``keys`` it accepts, and either

- ``Source``: files or a table to read. A *file* source (``kind = "files"``) lists the
  files under a folder or glob and reads one file to Arrow; a *table* source
  (``kind = "table"``) streams Arrow record batches of the rows whose watermark column is at
  or after a value (all rows when there is none);
- ``Sink``: a destination the gold marts are published to. ``write(change)`` makes the rows
  of a scope (some partitions, some keys, or the whole mart) equal to the change's rows and
  records the gold version they come from, in one atomic step; ``published_version`` reads
  that version back, so a version is published exactly once.

Both count the rows and bytes they move (``Moved``), for the run ledger. Plugins are found
by ``format`` in ``SOURCES`` / ``SINKS``, or, for one of your own, by an import path
``package.module:Class``. Secrets never sit in YAML: a plugin that needs a connection string
reads it from the environment variable the YAML names (``url_env``) and logs only
``redact(url)``.
"""

from lakehouse.io import delta_io, duckdb_io, files, postgres  # noqa: F401  (they register)
from lakehouse.io.base import (  # noqa: F401  (the package's API)
    BATCH_ROWS,
    SINKS,
    SOURCES,
    Change,
    Moved,
    Plugin,
    PluginError,
    Sink,
    Source,
    plain,
    redact,
    register,
    sink,
    source,
)
