"""A landing folder's listing, cut down to what bronze uses, says what fsspec's says.

``lakehouse.io.listing`` reads a local folder with ``os.scandir`` (and an S3 prefix page by
page, ``tests/test_s3.py``) instead of fsspec's ``ls``, which makes a dict per file. The
files listed, and each file's fingerprint, must be the ones fsspec gave: the fingerprints
are bronze's record of what it took, so a lake made before would otherwise take every file
again. Here on a folder of sensor exports: files of several sizes and ages, a folder named
like a file, links (to a file, dangling, to itself) and a hidden file.
"""

from __future__ import annotations

import os

import fsspec

from lakehouse.io.listing import files_in
from lakehouse.layers.bronze.landing_files import fingerprint, fingerprint_of


def test_a_local_listing_is_fsspecs_cut_down(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    for number in range(25):
        path = folder / f"sensor_{number:03d}.jsonl"
        path.write_text('{"sensor": 1}\n' * number)
        os.utime(path, (1_800_000_000 + number * 0.25, 1_800_000_000 + number * 0.25))
    (folder / ".partial.jsonl").write_text("{}")
    (folder / "nested.jsonl").mkdir()
    (folder / "nested.jsonl" / "inner.jsonl").write_text("{}")
    (folder / "link.jsonl").symlink_to(folder / "sensor_003.jsonl")
    (folder / "dangling.jsonl").symlink_to(folder / "gone.jsonl")
    (folder / "loop.jsonl").symlink_to(folder / "loop.jsonl")

    fs = fsspec.filesystem("file")
    expected = {
        info["name"]: info for info in fs.ls(str(folder), detail=True) if info["type"] == "file"
    }
    listed = {entry.path: entry for entry in files_in(fs, str(folder))}
    assert sorted(listed) == sorted(expected)
    assert len(listed) == 26  # the 25 exports and the hidden file; no folder, no link
    for path, entry in listed.items():
        assert entry.size == expected[path]["size"]
        assert entry.modified == expected[path]["mtime"]
        assert fingerprint_of(entry.size, entry.version) == fingerprint(expected[path])
    assert listed[str(folder / "sensor_007.jsonl")].modified == 1_800_000_001.75
