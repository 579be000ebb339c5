"""The demo upstream system: TPC-H cut into daily drops, with defects injected on purpose.

Everything here is a pure function of (generated TPC-H data, seed, day), so a rerun of any
day writes the same bytes. Defects are always *extra* rows or files, never edits of the
original rows: after quarantine and deduplication, silver must equal the original rows.

Row defects, each drawn at ``defect_rate`` per original row and day:
  orders   duplicate, null_key, impossible_date
  lineitem duplicate, null_key, negative_quantity, impossible_date, orphan, late
File defects: a truncated re-send of the day's original lineitem rows (cut mid-row, before
the last field) and, from ``extra_column_from`` on, an extra ``o_channel`` column in orders.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

ORPHAN_KEY_BASE = 9_000_000_000_000  # far above any TPC-H order key at any scale factor
LATE_MAX_DAYS = 3
CHANNELS = ("web", "phone", "partner")


@dataclass
class DayDrop:
    """The files of one landing day, as frames of strings (CSV) ready to write."""

    day: date
    orders: pl.DataFrame
    lineitem: pl.DataFrame
    lineitem_resend: str | None
    defects: dict[str, dict[str, int]] = field(default_factory=dict)
    held_back: list[dict] = field(default_factory=list)


def _rng(seed: int, day: date, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{day.isoformat()}:{purpose}")


def defect_count(rng: random.Random, rate: float, rows: int) -> int:
    """How many defects of one kind a day of ``rows`` rows gets: ``rate * rows`` on average."""
    expected = rate * rows
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def _pick(rng: random.Random, frame: pl.DataFrame, count: int) -> pl.DataFrame:
    if frame.height == 0 or count == 0:
        return frame.clear()
    rows = [rng.randrange(frame.height) for _ in range(count)]
    return frame[rows]


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text, the way an OLTP export writes CSV."""
    return frame.select(pl.all().cast(pl.String))


def held_back_lines(lines_of_day: pl.DataFrame, seed: int, day: date, rate: float) -> pl.DataFrame:
    """The line items of ``day`` held back by the upstream, with the day each will arrive."""
    lines_of_day = lines_of_day.sort("l_orderkey", "l_linenumber")
    rng = _rng(seed, day, "late")
    count = defect_count(rng, rate, lines_of_day.height)
    rows = sorted(rng.sample(range(lines_of_day.height), min(count, lines_of_day.height)))
    delays = [rng.randint(1, LATE_MAX_DAYS) for _ in rows]
    return lines_of_day[rows].with_columns(
        _deliver_on=pl.Series([day + timedelta(days=d) for d in delays], dtype=pl.Date)
    )


def _with_defects(
    text: pl.DataFrame, seed: int, day: date, rate: float, edits: dict[str, dict]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Append defective copies of random rows: one kind per entry of ``edits`` (column -> value)."""
    extra, counts = [], {}
    for kind, changes in edits.items():
        rng = _rng(seed, day, kind)
        picked = _pick(rng, text, defect_count(rng, rate, text.height))
        if kind == "orphan":
            first = ORPHAN_KEY_BASE + day.toordinal() * 1000
            changes = {"l_orderkey": [str(first + i) for i in range(picked.height)]}
        picked = picked.with_columns(
            **{
                c: pl.Series(c, v if isinstance(v, list) else [v] * picked.height, pl.String)
                for c, v in changes.items()
            }
        )
        if kind == "negative_quantity":
            picked = picked.with_columns(
                l_quantity=pl.concat_str(pl.lit("-"), pl.col("l_quantity"))
            )
        counts[kind] = picked.height
        extra.append(picked)
    return pl.concat([text, *extra]), counts


def _impossible_date(day: date) -> str:
    return f"{day.year}-02-30"


def truncated_resend(lines_csv: str, seed: int, day: date) -> str:
    """A copy of a real CSV drop cut off inside a row, before that row's last field."""
    rows = lines_csv.splitlines(keepends=True)
    if len(rows) < 3:
        return lines_csv[: max(1, len(rows[0]) if rows else 0)]
    rng = _rng(seed, day, "truncate")
    cut_row = rng.randrange(2, len(rows))
    fields = rows[cut_row].split(",")
    keep = ",".join(fields[: max(5, len(fields) // 2)])  # keys survive, later fields are lost
    return "".join(rows[:cut_row]) + keep


def day_drop(
    day: date,
    orders_of_day: pl.DataFrame,
    lines_of_day: pl.DataFrame,
    arriving_late: pl.DataFrame,
    seed: int,
    rate: float,
    with_channel: bool,
) -> DayDrop:
    """Build one day's drop from the original rows of that day plus late rows arriving today."""
    held = held_back_lines(lines_of_day, seed, day, rate)
    held_keys = held.select("l_orderkey", "l_linenumber")
    on_time = lines_of_day.join(held_keys, on=["l_orderkey", "l_linenumber"], how="anti")
    lines = pl.concat([on_time, arriving_late.select(on_time.columns)])

    orders_text, lines_text = as_text(orders_of_day), as_text(lines)
    original_lines_csv = lines_text.write_csv()
    defects: dict[str, dict[str, int]] = {}
    if rate > 0:
        impossible = _impossible_date(day)
        orders_text, defects["orders"] = _with_defects(
            orders_text,
            seed,
            day,
            rate,
            {
                "duplicate": {},
                "null_key": {"o_orderkey": None},
                "impossible_date": {"o_orderdate": impossible},
            },
        )
        lines_text, defects["lineitem"] = _with_defects(
            lines_text,
            seed,
            day,
            rate,
            {
                "duplicate": {},
                "null_key": {"l_orderkey": None},
                "negative_quantity": {},
                "impossible_date": {"l_shipdate": impossible},
                "orphan": {},
            },
        )
        defects["lineitem"]["late"] = held.height
        defects["lineitem"]["late_arrived"] = arriving_late.height
    if with_channel:
        rng = _rng(seed, day, "channel")
        orders_text = orders_text.with_columns(
            o_channel=pl.Series([rng.choice(CHANNELS) for _ in range(orders_text.height)])
        )

    resend = None
    if rate > 0 and _rng(seed, day, "resend").random() < min(1.0, rate * 10):
        resend = truncated_resend(original_lines_csv, seed, day)
        defects.setdefault("files", {})["truncated_resend"] = 1

    return DayDrop(
        day=day,
        orders=orders_text,
        lineitem=lines_text,
        lineitem_resend=resend,
        defects=defects,
        held_back=[
            {"l_orderkey": k, "l_linenumber": n, "deliver_on": d.isoformat()}
            for k, n, d in held.select("l_orderkey", "l_linenumber", "_deliver_on").iter_rows()
        ],
    )
