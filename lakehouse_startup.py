"""Run at interpreter start by ``lakehouse-startup.pth`` (``make install`` writes it into the
virtual environment): keeps the ``flowerpower`` command from reading the whole project.

FlowerPower 0.37's CLI always passes storage options when it loads a project, and with
storage options it wraps the project folder in a cache filesystem whose cache folder is the
project folder itself (``~/.flowerpower/cache`` joined with an absolute path is that path),
then "syncs" it before importing the pipelines: it lists and opens every file under the
project, ``.venv`` and the lake under ``data/`` included. That cost 3-5 s of every run and
grew with the lake. Syncing a local folder into itself copies nothing, so for that case the
sync is skipped; a project on remote storage is synced as before.

It also turns off Hamilton's extension autoloading, lets Polars' allocator keep freed
memory a few seconds, takes an empty ``FP_LOG_LEVEL`` (an env file's ``FP_LOG_LEVEL=``)
for an unset one, the default level, where FlowerPower would fail every run on it, and
silences Hamilton's warning that ``disable_telemetry`` (which FlowerPower calls) will be
deprecated.

Only the ``flowerpower`` command is touched (other interpreters return at once), and the
module it imports is one the command imports anyway.
"""

from __future__ import annotations

import logging
import os
import sys


def _syncs_into_itself(cache_fs) -> bool:
    source = getattr(cache_fs.fs, "path", None)  # a DirFileSystem over the project folder
    storage = cache_fs.storage[-1] if cache_fs.storage else None
    protocol = cache_fs.fs.fs.protocol if hasattr(cache_fs.fs, "fs") else cache_fs.fs.protocol
    local = "file" in (protocol if isinstance(protocol, tuple) else (protocol,))
    same = source and storage and os.path.realpath(source) == os.path.realpath(storage)
    return bool(local and same)


def install() -> None:
    command = os.path.basename(sys.argv[0]) if sys.argv else ""
    if command != "flowerpower":
        return
    if "FP_LOG_LEVEL" in os.environ and not os.environ["FP_LOG_LEVEL"].strip():
        # an env file's "FP_LOG_LEVEL=" means "not set": FlowerPower would fail every run
        # with "Level '' does not exist" before reading any pipeline
        del os.environ["FP_LOG_LEVEL"]
    # FlowerPower calls Hamilton's disable_telemetry() on import, a no-op that warns on every
    # run that it "will be deprecated": nothing a user of this project can act on
    logging.getLogger("hamilton.dev_utils.deprecation").setLevel(logging.ERROR)
    # Hamilton imports an extension for every library it finds installed (Dask's imports
    # dask.dataframe: 0.3 s of every run) for decorators on dataframes this project does not
    # use; the pipelines' tests run with the same setting (tests/conftest.py)
    os.environ.setdefault("HAMILTON_AUTOLOAD_EXTENSIONS", "0")
    # Polars has its allocator (jemalloc) give freed pages back after 0.5 s; bronze and silver
    # free and take batch-sized buffers over and over, and each page given back costs a fault
    # when taken again. 5 s instead: at SF 10 silver spent 22-24 s in the kernel, 12 s with
    # it, for 100-170 MB more at its peak (docs/configuration.md). Polars appends what is set
    # here to its own settings, so the last wins; a user's own value is left alone.
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000")
    try:
        from fsspeckit.core.filesystem.cache import MonitoredSimpleCacheFileSystem
    except ImportError:  # not the FlowerPower this project pins: leave it alone
        return
    sync = MonitoredSimpleCacheFileSystem.sync_cache

    def sync_cache(self, reload: bool = False) -> None:
        if _syncs_into_itself(self):
            return
        sync(self, reload)

    MonitoredSimpleCacheFileSystem.sync_cache = sync_cache


install()
