"""A project's own conf/ never changes a test result: the tests declare their own datasets.

The proof runs the end-to-end suites against a copy of the project as a user would have
made it their own: the demo switched off in conf/datasets/tpch.yml and a dataset of their
own declared beside it (with a mart, and no data anywhere). The tests' lakes are built from
demo/tpch.yml and their fixtures, so every test still passes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from conftest import REPOSITORY

USER_DATASET = """
description: A help desk's tickets (the user's own dataset; no file of it ever lands here).
sources:
  orders: {format: csv}          # names that the demo uses too
entities:
  orders:
    grain: One row per ticket.
    key: ticket_id
    partition: {column: opened_month, from: opened_on, by: month}
    columns:
      ticket_id: {type: string}
      opened_on: {type: date}
      minutes: {type: int64, rules: {ge: 0}}
marts:
  ticket_months:
    sql: marts/ticket_months.sql
    grain: One row per month.
    key: opened_month
    partition: opened_month
    columns:
      opened_month: {type: date}
      tickets: {type: int64}
"""


def test_the_end_to_end_suites_pass_whatever_the_project_declares(tmp_path):
    user = tmp_path / "user_project"
    for folder in ("conf", "pipelines", "hooks"):
        shutil.copytree(
            REPOSITORY / folder, user / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    demo = user / "conf" / "datasets" / "tpch.yml"
    demo.write_text(re.sub(r"(?m)^enabled: .*$", "enabled: false", demo.read_text()))
    # the user's orders replace the demo's: a test reading conf/ would find no line item
    (user / "conf" / "datasets" / "tpch.yml").rename(user / "conf" / "datasets" / "tpch.yml.off")
    (user / "conf" / "datasets" / "helpdesk.yml").write_text(USER_DATASET)
    (user / "marts").mkdir()
    (user / "marts" / "ticket_months.sql").write_text(
        "SELECT opened_month, count(*) AS tickets FROM orders GROUP BY ALL"
    )
    suites = [
        "tests/test_end_to_end.py",
        "tests/test_second_domain.py",
        "tests/test_landing.py",
        "tests/test_walkthrough.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *suites],
        cwd=REPOSITORY,
        env={**os.environ, "LAKEHOUSE_TEST_PROJECT": str(user)},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert re.search(r"\d+ passed", done.stdout) and "failed" not in done.stdout
