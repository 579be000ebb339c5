"""The HTML report of a lake holding another dataset than the demo (web page views), rendered
in headless Chromium (Debian's package, installed by ``make system-deps``): every chart has
the data marks the ledger and the tables say it should, laid out by the browser; the last
failure and its cause are on the page; the page needs no network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import web_events
from test_second_domain import DAY_3, _land_first_drop

from lakehouse.core.storage import Location
from lakehouse.ops import status


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is missing: make system-deps installs Debian's chromium")
    return found


def render(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """Chromium, headless, offline, on the file (``--dump-dom`` or ``--screenshot``)."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--proxy-server=127.0.0.1:9",
         "--virtual-time-budget=5000", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip  # the proxy goes nowhere: a page that fetched anything would show it


@pytest.fixture
def lake_with_history(lakehouse):
    """Two days of page views through every layer, a bad file, quarantined rows, and one
    failed silver run between two good ones."""
    web = lakehouse
    web_events.install(web.project)
    web.configure("daily", layers=["bronze", "silver", "gold", "publish"])
    _land_first_drop(web)
    (web.landing / "page_views" / "truncated.jsonl").write_bytes(b"")  # a bad file
    assert web.cli("daily").returncode == 0
    web.configure("silver", on_invalid="fail")
    late = [row for row, _ in web_events.bad_views(DAY_3)]
    web_events.write_jsonl(web.landing / "page_views" / "views_3.jsonl", late)
    failed = web.cli("daily")
    assert failed.returncode != 0
    web.configure("silver", on_invalid="quarantine")
    assert web.cli("daily").returncode == 0
    return web


def test_the_report_shows_in_a_browser_what_the_ledger_and_tables_hold(lake_with_history, tmp_path):
    web = lake_with_history
    page = tmp_path / "out" / "report.html"
    done = web.cli("report", env={"REPORT_FILE": str(page)})
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing to fetch

    shown = render(page, tmp_path, "--dump-dom")
    assert shown.returncode == 0, shown.stderr[-2000:]
    laid_out = json.loads(re.search(r'id="render-check">(.*?)</pre>', shown.stdout).group(1))

    runs = web.table("_runs").filter(  # the report's own run was not over as it drew
        pl.col("ended_at").is_not_null() & (pl.col("pipeline") != "report")
    )
    quarantined = pl.concat(
        web.table(name).select("table", "rule", day=pl.col("quarantined_at").dt.date())
        for name in ("_quarantine/page_views", "_quarantine/users")
        if (web.lake / name).exists()
    )
    bad = web.table("_quarantine/_files")
    assert laid_out == {
        "freshness": len(  # the layers' tables (quarantine is charted on its own)
            [t for t in status.tables(Location.from_uri(str(web.lake))) if not t.startswith("_")]
        ),
        "durations": runs.height,
        "rows": runs.height,
        "quarantine": quarantined.unique().height,
        "bad_files": bad.select("source", pl.col("recorded_at").dt.date()).unique().height,
    }
    assert all(count > 0 for count in laid_out.values())
    failure = web.table("_runs").filter(pl.col("status") == "failed").sort("started_at")
    cause = failure["error_message"][-1]
    assert "on_invalid is fail" in cause
    text = re.sub(r"<[^>]+>", "", shown.stdout)
    assert cause.split(";")[0] in text  # the last failures, with their causes
    assert "truncated.jsonl" in text  # the bad file, by name
    data = shown.stdout.split("<h2>The data</h2>")[1]  # the data DAG, drawn inline
    for node in ("bronze_page_views", "page_views", "users", "daily_page_stats"):
        assert f">{node}</" in data, node

    shot = tmp_path / "report.png"
    taken = render(page, tmp_path, f"--screenshot={shot}", "--window-size=1000,1800")
    assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
