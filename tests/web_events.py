"""A second domain for the engine's tests: page views of a web site, its users, campaign budgets.

Nothing here resembles TPC-H: string keys, JSON lines with time-zoned timestamps, a day
partition, nullable columns, a date built from integer columns. The dataset's declaration
and mart live in ``tests/fixtures/web_events`` (``conf/`` and ``pipelines/``), copied into a
project whose TPC-H demo is switched off. Rows are generated here with what silver and gold
must hold, computed independently of the pipelines.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import yaml

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "web_events"
COUNTRIES = ("DE", "FR", "US", "JP")
PAGES = ("/", "/pricing", "/docs", "/checkout", "/blog/launch")
ZONES = ("Z", "+02:00", "-05:00", "+09:00")


def install(project: Path, remove_demo: bool = False) -> None:
    """Copy the web_events declaration and mart into ``project``; switch TPC-H off (or, with
    ``remove_demo``, delete its declaration and marts: the engine must not need them)."""
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    demo = project / "conf" / "datasets" / "tpch.yml"
    if remove_demo:
        demo.unlink()
        (project / "pipelines" / "tpch_marts.py").unlink()
    elif demo.exists():
        spec = yaml.safe_load(demo.read_text())
        spec["enabled"] = False
        demo.write_text(yaml.safe_dump(spec, sort_keys=False))


def users(count: int = 12) -> list[dict]:
    rng = random.Random("users")
    return [
        {
            "user_id": f"u-{i:04d}",
            "country": COUNTRIES[i % len(COUNTRIES)],
            "signed_up_on": (date(2023, 6, 1) + timedelta(days=rng.randrange(200))).isoformat(),
            "plan": rng.choice(["pro", "team", None]),
        }
        for i in range(1, count + 1)
    ]


def _stamp(moment: datetime, zone: str) -> str:
    """``moment`` (UTC) written in another zone, the way a client would send it."""
    if zone == "Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3])) * sign
    return (moment + offset).strftime("%Y-%m-%dT%H:%M:%S") + zone


def views(day: date, count: int, seed: str, user_count: int = 12) -> list[dict]:
    """Good page views of ``day`` (UTC), their times written in several zones."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(86_400)
        )
        rows.append(
            {
                "view_id": f"view-{seed}-{i:05d}",
                "user_id": f"u-{rng.randrange(1, user_count + 1):04d}",
                "page": rng.choice(PAGES),
                "viewed_at": _stamp(moment, rng.choice(ZONES)),
                "dwell_ms": rng.choice([None, rng.randrange(0, 90_000)]),
                "amount": rng.choice([None, None, f"{rng.randrange(100, 99_999) / 100:.2f}"]),
            }
        )
    return rows


def bad_views(day: date) -> list[tuple[dict, str]]:
    """One defective page view per rule, with the quarantine rule it must get."""
    at = f"{day.isoformat()}T12:00:00Z"
    good = {"user_id": "u-0001", "page": "/", "viewed_at": at, "dwell_ms": 10, "amount": None}
    return [
        ({**good, "view_id": None}, "null_key"),
        ({**good, "view_id": "v-1"}, "not_allowed"),  # shorter than 8
        ({**good, "view_id": "view-bad-page", "page": "home"}, "not_allowed"),
        ({**good, "view_id": "view-bad-dwell", "dwell_ms": -5}, "out_of_range"),
        ({**good, "view_id": "view-bad-time", "viewed_at": "yesterday noon"}, "unparseable_value"),
        ({**good, "view_id": "view-too-old", "viewed_at": "2019-05-01T10:00:00Z"}, "out_of_range"),
        ({**good, "view_id": "view-no-user", "user_id": None}, "missing_value"),
        ({**good, "view_id": "view-orphan-1", "user_id": "u-9999"}, "orphan"),
    ]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, infer_schema_length=None).write_csv(path)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def expected_views(rows: list[dict]) -> pl.DataFrame:
    """What silver/page_views must hold for these good rows (the last copy of an id wins)."""
    latest = {row["view_id"]: row for row in rows}
    return pl.DataFrame(
        [
            {
                "view_id": r["view_id"],
                "user_id": r["user_id"],
                "page": r["page"],
                "viewed_at": _utc(r["viewed_at"]),
                "dwell_ms": r["dwell_ms"],
                "amount": None if r["amount"] is None else Decimal(r["amount"]),
                "view_date": _utc(r["viewed_at"]).date(),
            }
            for r in latest.values()
        ],
        schema={
            "view_id": pl.String,
            "user_id": pl.String,
            "page": pl.String,
            "viewed_at": pl.Datetime("us", "UTC"),
            "dwell_ms": pl.Int64,
            "amount": pl.Decimal(10, 2),
            "view_date": pl.Date,
        },
    ).sort("view_id")


def expected_daily_stats(views_frame: pl.DataFrame, user_rows: list[dict]) -> pl.DataFrame:
    """The mart, computed in Polars from the expected silver rows."""
    countries = pl.DataFrame(user_rows).select("user_id", "country")
    return (
        views_frame.join(countries, on="user_id")
        .group_by("view_date", "country")
        .agg(
            views=pl.len().cast(pl.Int64),
            visitors=pl.col("user_id").n_unique().cast(pl.Int64),
            dwell_ms=pl.when(pl.col("dwell_ms").count() > 0).then(pl.col("dwell_ms").sum()),
            revenue=pl.col("amount").sum().cast(pl.Decimal(38, 2)),
        )
        .sort("view_date", "country")
    )
