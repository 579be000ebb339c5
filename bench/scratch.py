"""The environment of a project run into a scratch folder: every path the project's YAML
takes from the environment (landing zone, lake, marts file, lock files) under ``work``,
FlowerPower quiet. For the bench scripts (the ``flowerpower`` command turns Hamilton's
extension autoloading off itself: ``lakehouse_startup.py``)."""

from __future__ import annotations

import os
from pathlib import Path


def environment(work: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LANDING_ROOT": str(work / "landing"),
        "LAKE_ROOT": str(work / "lake"),
        "MARTS_DUCKDB": str(work / "marts.duckdb"),
        "LOCK_DIR": str(work / "locks"),
        "FP_LOG_LEVEL": "WARNING",
        **extra,
    }
