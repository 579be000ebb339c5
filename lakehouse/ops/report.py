"""The run report: one self-contained HTML file (inline SVG, no network) drawn from the run
ledger and the tables' Delta logs: freshness per table against its limit, runs over time
(duration and rows written per pipeline), quarantined rows over time by table and rule, bad
files, and the last failures with their causes.

Pure functions from frames to text; ``pipelines/report.py`` reads the lake and writes the
file. Each chart is an ``<svg class="chart" data-chart="...">`` whose data marks have the
class ``mark`` and a ``<title>`` with their numbers; a small script fills
``#render-check`` with the count of marks the browser laid out, per chart (the tests read
it from headless Chromium).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from html import escape

import polars as pl

WIDTH, ROW, PAD = 880, 22, 170  # chart width, bar height, left margin for labels
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]  # fmt: skip
STALE, FRESH, LIMIT = "#e15759", "#59a14f", "#333"

CHECK = """<script>
document.addEventListener("DOMContentLoaded", () => {
  const laidOut = {};
  for (const chart of document.querySelectorAll("svg.chart")) {
    const marks = [...chart.querySelectorAll(".mark")];
    laidOut[chart.dataset.chart] = marks.filter(m => {
      const box = m.getBBox(); return box.width > 0 || box.height > 0;
    }).length;
  }
  document.getElementById("render-check").textContent = JSON.stringify(laidOut);
});
</script>"""


def _color(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def _svg(kind: str, height: int, body: list[str]) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="sans-serif" font-size="12">{"".join(body)}</svg>'
    )


def _legend(colors: dict[str, str], y: int) -> tuple[list[str], int]:
    """Colour keys from ``y`` down, wrapped to the chart's width; and the height they take."""
    items, x = [], PAD
    for name, color in colors.items():
        width = 24 + 7 * len(name)
        if x + width > WIDTH and x > PAD:
            x, y = PAD, y + 16
        items.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{y + 9}">{escape(name)}</text>'
        )
        x += width
    return items, y + 16


def _number(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if unit == "s" else f"{value:,.0f} {unit}"


def freshness_chart(status: pl.DataFrame, limits: dict[str, timedelta]) -> str:
    """A bar per table: hours since its last commit; its limit as a tick; stale in red."""
    status = status.filter(~pl.col("table").str.starts_with("_"))  # the layers' tables
    if status.is_empty():
        return "<p>No tables yet.</p>"
    hours = {name: td.total_seconds() / 3600 for name, td in limits.items()}
    top = max([*status["age_hours"].to_list(), *hours.values(), 1.0])
    scale = (WIDTH - PAD - 60) / top
    body = []
    for i, row in enumerate(status.sort("table").iter_rows(named=True)):
        y, limit = 10 + i * ROW, hours.get(row["table"])
        stale = limit is not None and row["age_hours"] > limit
        width = max(row["age_hours"] * scale, 1)
        shown = f"{row['age_hours']:g} h" + (f" (limit {limit:g} h)" if limit else "")
        body.append(
            f'<text x="{PAD - 6}" y="{y + 14}" text-anchor="end">{escape(row["table"])}</text>'
            f'<rect class="mark" x="{PAD}" y="{y + 3}" width="{width:.1f}" height="{ROW - 6}" '
            f'fill="{STALE if stale else FRESH}"><title>{escape(row["table"])}: {shown}</title>'
            f'</rect><text x="{PAD + width + 4:.1f}" y="{y + 14}">{shown}</text>'
        )
        if limit is not None:
            x = PAD + limit * scale
            body.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 1}" y2="{y + ROW - 1}" '
                f'stroke="{LIMIT}" stroke-width="2"/>'
            )
    return _svg("freshness", 20 + status.height * ROW, body)


def _largest(values: pl.Series) -> float:
    """The largest of ``values`` (numbers; none: 0), at least 1: the top of a chart's scale."""
    top = values.max()
    if not isinstance(top, int | float | None):
        raise TypeError(f"{values.name}: {top!r} is not a number")
    return max(top or 0, 1)


def _time_axis(first: datetime, last: datetime):
    span = max((last - first).total_seconds(), 1.0)
    return lambda moment: PAD + (moment - first).total_seconds() / span * (WIDTH - PAD - 20)


def runs_chart(runs: pl.DataFrame, value: str, unit: str, kind: str) -> str:
    """A point per finished run at its start time: ``value`` (seconds, rows written), one
    colour per pipeline."""
    done = runs.filter(pl.col("ended_at").is_not_null() & pl.col(value).is_not_null())
    if done.is_empty():
        return "<p>No finished runs yet.</p>"
    plot = 190
    first, last = done["started_at"].min(), done["started_at"].max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        raise TypeError(f"runs: started_at holds {first!r}, not a time")
    x = _time_axis(first, last)
    top = _largest(done[value])
    colors = _color(done["pipeline"].to_list())
    body = [
        f'<text x="{PAD - 6}" y="16" text-anchor="end">{_number(top, unit)}</text>',
        f'<text x="{PAD - 6}" y="{plot + 10}" text-anchor="end">0</text>',
        f'<line x1="{PAD}" x2="{WIDTH - 10}" y1="{plot + 6}" y2="{plot + 6}" stroke="#999"/>',
    ]
    for row in done.sort("started_at").iter_rows(named=True):
        cx, cy = x(row["started_at"]), plot + 6 - row[value] / top * (plot - 10)
        failed = row["status"] != "succeeded"
        title = (
            f"{row['pipeline']} {row['run_id']} ({row['status']}): {_number(row[value], unit)}, "
            f"started {row['started_at']:%Y-%m-%d %H:%M:%S}"
        )
        body.append(
            f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="{5 if failed else 4}" '
            f'fill="{colors[row["pipeline"]]}" stroke="{STALE if failed else "none"}" '
            f'stroke-width="2"><title>{escape(title)}</title></circle>'
        )
    body.append(f'<text x="{PAD}" y="{plot + 22}">{first:%Y-%m-%d %H:%M}</text>')
    body.append(
        f'<text x="{WIDTH - 10}" y="{plot + 22}" text-anchor="end">{last:%Y-%m-%d %H:%M}</text>'
    )
    keys, height = _legend(colors, plot + 36)
    return _svg(kind, height, body + keys)


def stacked_chart(
    counts: pl.DataFrame, group: str, kind: str, empty: str, unit: str = "rows"
) -> str:
    """A column per day, stacked by ``group`` (``count`` ``unit`` each)."""
    if counts.is_empty():
        return f"<p>{empty}</p>"
    days = sorted(counts["day"].unique().to_list())
    totals = counts.group_by("day").agg(pl.col("count").sum())
    top = _largest(totals["count"])
    colors = _color(counts[group].to_list())
    plot = 200
    step = (WIDTH - PAD - 20) / len(days)
    width = max(min(step * 0.7, 40), 2)
    body = [
        f'<text x="{PAD - 6}" y="16" text-anchor="end">{top:,} {unit}</text>',
        f'<line x1="{PAD}" x2="{WIDTH - 10}" y1="{plot + 6}" y2="{plot + 6}" stroke="#999"/>',
    ]
    for i, day in enumerate(days):
        x, base = PAD + i * step + (step - width) / 2, plot + 6
        for row in counts.filter(pl.col("day") == day).sort(group).iter_rows(named=True):
            h = row["count"] / top * (plot - 10)
            base -= h
            body.append(
                f'<rect class="mark" x="{x:.1f}" y="{base:.1f}" width="{width:.1f}" '
                f'height="{max(h, 1):.1f}" fill="{colors[row[group]]}"><title>{day}: '
                f"{escape(row[group])}: {row['count']:,}</title></rect>"
            )
    body.append(f'<text x="{PAD}" y="{plot + 22}">{days[0]}</text>')
    body.append(f'<text x="{WIDTH - 10}" y="{plot + 22}" text-anchor="end">{days[-1]}</text>')
    keys, height = _legend(colors, plot + 36)
    return _svg(kind, height, body + keys)


def _table(frame: pl.DataFrame, empty: str) -> str:
    if frame.is_empty():
        return f"<p>{empty}</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def audits(runs: pl.DataFrame) -> pl.DataFrame:
    """The last audit of each mart (gold's audit mode): when, rows compared, how many rows
    differed from the rebuild, and an example."""
    found = []
    for row in runs.filter(pl.col("tables").str.contains('"audit"')).iter_rows(named=True):
        for write in json.loads(row["tables"] or "[]"):
            drift = write.get("drift")
            if write.get("operation") != "audit" or not drift:
                continue
            kinds = [k for k in ("missing", "extra", "changed") if drift.get(k)]
            example = drift["examples"][kinds[0]][0] if kinds else ""
            found.append(
                {
                    "started_at": row["started_at"],
                    "mart": write["table"],
                    "rows_compared": drift.get("rows_checked"),
                    "missing": drift.get("missing"),
                    "extra": drift.get("extra"),
                    "changed": drift.get("changed"),
                    "example": f"{kinds[0]}: {example}" if kinds else "",
                }
            )
    if not found:
        return pl.DataFrame()
    return (
        pl.DataFrame(found)
        .sort("started_at", descending=True)
        .unique("mart", keep="first")
        .sort("mart")
    )


def render(
    lake: str,
    now: datetime,
    status: pl.DataFrame,
    limits: dict[str, timedelta],
    runs: pl.DataFrame,
    quarantined: pl.DataFrame,
    bad_files: pl.DataFrame,
    data_dag: str = "",
) -> str:
    """The report's HTML. ``quarantined``: day, table, rule, count; ``bad_files``: the rows
    of ``_quarantine/_files``; ``runs``: the ledger; ``data_dag``: the data DAG as SVG."""
    failures = (
        runs.filter(pl.col("status").is_in(["failed", "abandoned"]))
        .sort("started_at", descending=True)
        .head(10)
        .select("started_at", "pipeline", "run_id", "status", "error_type", "error_message")
    )
    by_rule = quarantined.with_columns(group=pl.col("table") + ": " + pl.col("rule"))
    bad_by_day = bad_files.group_by(day=pl.col("recorded_at").dt.date(), group="source").agg(
        count=pl.len()
    )
    finished = runs.filter(pl.col("ended_at").is_not_null())
    last = finished.sort("started_at").tail(1)
    headline = "no runs yet"
    if not last.is_empty():
        row = last.row(0, named=True)
        when = f"{row['started_at']:%Y-%m-%d %H:%M} UTC"
        headline = f"last finished run: {row['pipeline']} {row['status']}, started {when}"
    sections = [
        ("Freshness", "Hours since each table's last commit; the tick is its limit "
         "(conf/pipelines/status.yml), red when over it.", freshness_chart(status, limits)),
        ("Run durations", "Seconds per run, one colour per pipeline; a red ring marks a failed "
         "run.", runs_chart(finished, "seconds", "s", "durations")),
        ("Rows written", "Rows each run wrote to its tables (the run ledger).",
         runs_chart(finished, "rows_written", "rows", "rows")),
        ("Quarantined rows", "Rows silver held back per day, by table and rule.",
         stacked_chart(by_rule.select("day", "group", "count"), "group", "quarantine",
                       "No row quarantined.")),
        ("Bad files", "Unreadable landing files recorded per day, by source (left in place).",
         stacked_chart(bad_by_day, "group", "bad_files", "No bad file.", "files")
         + _table(bad_files.select("recorded_at", "source", "file", "error", "message"),
                  "")),
        ("Audits", "Each mart's last audit (gold --inputs '{\"audit\": true}'): its parts "
         "recomputed from silver and compared, row by row.",
         _table(audits(runs), "No audit yet.")),
        ("Last failures", "The ten most recent failed or abandoned runs and their causes.",
         _table(failures, "No failed run.")),
        ("The data", "Bronze sources, silver entities and the gold marts that read them "
         "(flowerpower pipeline run catalog).", f"<div class='dag'>{data_dag}</div>"),
    ]  # fmt: skip
    body = "".join(
        f"<section><h2>{title}</h2><p class='note'>{note}</p>{content}</section>"
        for title, note, content in sections
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lakehouse report</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 960px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.note {{ color: #555; margin: 4px 0 8px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }}
#render-check {{ display: none; }}
.dag svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>lakehouse report</h1>
<p>{escape(lake)} &middot; generated {now:%Y-%m-%d %H:%M} UTC &middot; {len(runs):,} runs in
the ledger, {len(finished):,} finished &middot; {escape(headline)}</p>
{body}
<pre id="render-check"></pre>
{CHECK}
</body></html>
"""
