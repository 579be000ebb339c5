"""The environment of a project run into a scratch folder: every path the project's YAML
takes from the environment (landing zone, lake, marts file, lock files) under ``work``,
FlowerPower quiet and Hamilton's extension autoload off. For the bench scripts."""

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
        "HAMILTON_AUTOLOAD_EXTENSIONS": "0",
        "FP_LOG_LEVEL": "WARNING",
        **extra,
    }
