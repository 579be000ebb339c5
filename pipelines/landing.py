"""Landing: the demo's upstream system drops the next days of TPC-H data as files.

Upstream: ``tpchgen-cli`` output at ``scale_factor`` (generated once, cached locally).
Outputs under ``landing_root``: ``orders/`` and ``lineitem/`` daily CSV drops, dimension
snapshots as Parquet, and ``_manifest/<day>.json`` naming every defect injected that day.
A run drops the ``days_per_run`` days after the last day with a manifest; a day's manifest
is written last, so a killed run is redone from that day with the same bytes.
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from loguru import logger

from demo import landing as drops
from demo import tpch
from lakehouse.core import settings
from lakehouse.core.storage import Location, write_bytes_once
from lakehouse.declare import catalog
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py

# Upstream exports split big snapshots into parts; so does the demo (SF1 partsupp: 4 files).
SNAPSHOT_ROWS_PER_FILE = 250_000


def landing(landing_root: str) -> Location:
    """The landing zone's root folder."""
    return settings.location("landing_root", landing_root, "landing")


def demo_enabled() -> bool:
    """Whether the TPC-H demo is switched on (``enabled`` in ``conf/datasets/tpch.yml``)."""
    declaration = catalog.DATASETS_DIR / "tpch.yml"
    return declaration.exists() and catalog.load_dataset(declaration).enabled


def tpch_dir(scale_factor: float, tpch_cache_dir: str, demo_enabled: bool) -> Path | None:
    """Folder of the generated TPC-H Parquet tables for this scale factor (None: demo off)."""
    if not demo_enabled:
        return None
    return tpch.generate(scale_factor, tpch_cache_dir)


def last_landed_day(landing: Location) -> date | None:
    """The newest day whose drop is complete (its manifest exists)."""
    manifests = landing.child("_manifest")
    if not manifests.exists():
        return None
    days = [
        p.rsplit("/", 1)[-1].removesuffix(".json")
        for p in manifests.fs.ls(manifests.uri, detail=False)
    ]
    return max(
        (date.fromisoformat(d) for d in days if d.endswith(tuple("0123456789"))), default=None
    )


def days_to_land(
    last_landed_day: date | None, start_date: str, days_per_run: int, tpch_dir: Path | None
) -> list[date]:
    """The days this run drops: the ``days_per_run`` days after the last landed one."""
    if tpch_dir is None:
        logger.info("landing: the TPC-H demo is off (conf/datasets/tpch.yml): nothing to drop")
        return []
    last_order_day = (
        pl.scan_parquet(tpch_dir / "orders.parquet")
        .select(pl.col("o_orderdate").max())
        .collect()
        .item()
    )
    first = (
        last_landed_day + timedelta(days=1) if last_landed_day else date.fromisoformat(start_date)
    )
    days = [first + timedelta(days=i) for i in range(days_per_run)]
    return [d for d in days if d <= last_order_day]


def _orders_and_lines(tpch_dir: Path, first: date, last: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    orders = (
        pl.scan_parquet(tpch_dir / "orders.parquet")
        .filter(pl.col("o_orderdate").is_between(first, last))
        .collect()
        .with_columns(pl.col(pl.String).cast(pl.String))
        .sort("o_orderkey")
    )
    lines = (
        pl.scan_parquet(tpch_dir / "lineitem.parquet")
        .join(
            orders.lazy().select("o_orderkey", "o_orderdate"),
            left_on="l_orderkey",
            right_on="o_orderkey",
        )
        .collect()
        .with_columns(pl.col(pl.String).cast(pl.String))
        .sort("l_orderkey", "l_linenumber")
    )
    return orders, lines


def landed_days(
    days_to_land: list[date],
    tpch_dir: Path | None,
    landing: Location,
    seed: int,
    defect_rate: float,
    extra_column_from: str | None,
    dimension_snapshot_days: int,
    start_date: str,
    plan: bool = False,
) -> list[dict]:
    """Write each day's drop (files first, manifest last); returns the manifests written.

    With ``plan`` (``--inputs '{"plan": true}'``) only log the days it would drop."""
    if plan:
        logger.info(f"PLAN landing: would drop {', '.join(map(str, days_to_land)) or 'nothing'}")
        return []
    if not days_to_land:
        logger.info("landing: nothing to drop, the TPC-H order dates are exhausted")
        return []
    orders, lines = _orders_and_lines(
        tpch_dir, days_to_land[0] - timedelta(days=drops.LATE_MAX_DAYS), days_to_land[-1]
    )
    channel_from = date.fromisoformat(extra_column_from) if extra_column_from else None
    manifests = []
    for day in days_to_land:
        late = _late_rows_arriving(lines, day, seed, defect_rate)
        drop = drops.day_drop(
            day,
            orders.filter(pl.col("o_orderdate") == day),
            lines.filter(pl.col("o_orderdate") == day).drop("o_orderdate"),
            late,
            seed,
            defect_rate,
            with_channel=channel_from is not None and day >= channel_from,
        )
        files = _write_drop(landing, drop)
        if (day - date.fromisoformat(start_date)).days % dimension_snapshot_days == 0:
            files += _write_dimensions(landing, tpch_dir, day)
        manifest = {
            "day": day.isoformat(),
            "files": files,
            "rows": {"orders": drop.orders.height, "lineitem": drop.lineitem.height},
            "defects": drop.defects,
            "held_back": drop.held_back,
        }
        write_bytes_once(
            landing.child("_manifest", f"{day}.json"), json.dumps(manifest, indent=1).encode()
        )
        logger.info(f"landing: dropped {day} ({len(files)} files, defects {drop.defects})")
        manifests.append(manifest)
    return manifests


def _late_rows_arriving(lines: pl.DataFrame, day: date, seed: int, rate: float) -> pl.DataFrame:
    columns = [c for c in lines.columns if c != "o_orderdate"]
    if rate <= 0:
        return lines.select(columns).clear()
    arriving = [
        drops.held_back_lines(
            lines.filter(pl.col("o_orderdate") == earlier).select(columns), seed, earlier, rate
        ).filter(pl.col("_deliver_on") == day)
        for earlier in (day - timedelta(days=k) for k in range(1, drops.LATE_MAX_DAYS + 1))
    ]
    return pl.concat(arriving).select(columns)


def _write_drop(landing: Location, drop: drops.DayDrop) -> list[str]:
    files = {
        f"orders/orders_{drop.day}.csv": drop.orders.write_csv(),
        f"lineitem/lineitem_{drop.day}.csv": drop.lineitem.write_csv(),
    }
    if drop.lineitem_resend is not None:
        files[f"lineitem/lineitem_{drop.day}_resend.csv"] = drop.lineitem_resend
    for relative, text in files.items():
        write_bytes_once(landing.child(relative), text.encode())
    return list(files)


def _write_dimensions(landing: Location, tpch_dir: Path, day: date) -> list[str]:
    """Full snapshots of the dimension tables, in files of at most ``SNAPSHOT_ROWS_PER_FILE``."""
    written = []
    for name in tpch.DIMENSIONS:
        frame = tpch.read_generated(tpch_dir, name)
        for part, offset in enumerate(range(0, frame.height, SNAPSHOT_ROWS_PER_FILE)):
            relative = f"{name}/{name}_{day}_part{part}.parquet"
            buffer = io.BytesIO()
            frame.slice(offset, SNAPSHOT_ROWS_PER_FILE).write_parquet(buffer)
            write_bytes_once(landing.child(relative), buffer.getvalue())
            written.append(relative)
    return written
