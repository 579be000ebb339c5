"""The ``flowerpower`` command does not read every file under the project on each run.

FlowerPower 0.37's CLI wraps the project folder in a cache filesystem whose cache folder is
the project folder itself and "syncs" it (lists and opens every file: ``.venv``, the lake
under ``data/``) before each run. ``lakehouse_startup`` (run by ``lakehouse-startup.pth``,
which ``make install`` writes) makes that sync a no-op when the cache is the folder itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from fsspeckit.core.filesystem import filesystem
from fsspeckit.core.filesystem.cache import MonitoredSimpleCacheFileSystem

import lakehouse_startup


def _project(root, files: int):
    for i in range(files):
        folder = root / "data" / f"table{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part-{i}.parquet").write_bytes(b"x" * 10)
    return root


def _opened_by_sync(fs, monkeypatch) -> int:
    """How many files ``fs.sync_cache()`` opens."""
    opened = []
    original = MonitoredSimpleCacheFileSystem.open

    def counting(self, path, *args, **kwargs):
        opened.append(path)
        return original(self, path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(MonitoredSimpleCacheFileSystem, "open", counting)
        fs.sync_cache()
    return len(opened)


def test_the_project_folder_is_not_synced_into_itself(tmp_path, monkeypatch):
    project = _project(tmp_path / "project", 60)
    as_the_cli_builds_it = filesystem(
        str(project), storage_options={}, cached=True, cache_storage=str(project)
    )
    assert _opened_by_sync(as_the_cli_builds_it, monkeypatch) >= 60  # FlowerPower alone

    monkeypatch.setattr(sys, "argv", ["/srv/lakehouse/.venv/bin/flowerpower", "pipeline"])
    monkeypatch.setattr(
        MonitoredSimpleCacheFileSystem, "sync_cache", MonitoredSimpleCacheFileSystem.sync_cache
    )
    lakehouse_startup.install()
    assert _opened_by_sync(as_the_cli_builds_it, monkeypatch) == 0

    elsewhere = filesystem(
        str(project), storage_options={}, cached=True, cache_storage=str(tmp_path / "cache")
    )
    assert not lakehouse_startup._syncs_into_itself(elsewhere)  # a real cache is still filled


def test_only_the_flowerpower_command_is_patched(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest"])
    before = MonitoredSimpleCacheFileSystem.sync_cache
    lakehouse_startup.install()
    assert MonitoredSimpleCacheFileSystem.sync_cache is before


def test_the_installed_environment_patches_the_flowerpower_command(tmp_path):
    """``make install`` wrote lakehouse-startup.pth: any program named ``flowerpower`` run
    by this environment's interpreter starts with the patch in place, with Hamilton's
    extension autoloading off (Dask's would import dask.dataframe) and Polars' allocator
    keeping freed pages 5 s, unless the environment says otherwise."""
    program = tmp_path / "flowerpower"
    program.write_text(
        textwrap.dedent(
            """
            import os, sys
            allocator = os.environ["_RJEM_MALLOC_CONF"]  # Polars' defaults, then what it was given
            from fsspeckit.core.filesystem.cache import MonitoredSimpleCacheFileSystem
            import hamilton.function_modifiers
            print(MonitoredSimpleCacheFileSystem.sync_cache.__module__)
            print("dask.dataframe" in sys.modules)
            print(allocator)
            """
        )
    )
    ours = ("HAMILTON_AUTOLOAD_EXTENSIONS", "_RJEM_MALLOC_CONF")
    env = {k: v for k, v in os.environ.items() if k not in ours}
    shown = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert shown[:2] == ["lakehouse_startup", "False"]
    assert shown[2].endswith(",dirty_decay_ms:5000")  # the last setting of a key wins
    env.update(HAMILTON_AUTOLOAD_EXTENSIONS="1", _RJEM_MALLOC_CONF="dirty_decay_ms:0")
    shown = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert shown[:2] == ["lakehouse_startup", "True"]  # Dask is installed: its extension loads
    assert shown[2].endswith(",dirty_decay_ms:0")


def test_pipelines_that_need_no_duckdb_do_not_import_it():
    """DuckDB takes 0.1 s to import; bronze, silver and status never use it (unless a table
    source or sink of that kind is declared), nor does gold when silver has not moved."""
    probe = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "pipelines")
        import bronze, silver, status, gold, publish
        from lakehouse.layers.gold import gold as engine
        print(sorted(m for m in ("duckdb",) if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_install_compiled_the_bytecode_every_run_imports():
    """``make install`` compiles bytecode as it installs (``uv sync --compile-bytecode``):
    where ``PYTHONDONTWRITEBYTECODE=1`` is set nothing else would, and each ``flowerpower``
    command would compile FlowerPower, Hamilton, pandas and the rest from source. Every
    module a run with nothing to do imports from the environment has its ``.pyc``, current."""
    import importlib.util
    import sysconfig
    from pathlib import Path

    script = (
        "import sys; sys.argv = ['flowerpower', 'pipeline', 'run', 'status', '--help'];"
        "from flowerpower.cli import app; import lakehouse.ops.status;"
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values())"
        " if getattr(m, '__file__', None)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONDONTWRITEBYTECODE": "1", "HAMILTON_AUTOLOAD_EXTENSIONS": "0", "PATH": ""},
    ).stdout.split()
    site = Path(sysconfig.get_paths()["purelib"])
    installed = [Path(f) for f in loaded if f.endswith(".py") and Path(f).is_relative_to(site)]
    assert len(installed) > 500  # FlowerPower, Hamilton, pandas, pyarrow, polars, ...
    missing = [f for f in installed if not Path(importlib.util.cache_from_source(str(f))).exists()]
    assert missing == [], f"{len(missing)} modules without bytecode, e.g. {missing[:3]}"
