"""crontab.example and deploy/systemd: every line parses and runs in a sandbox copy of the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

PROJECT_DIR = Path(__file__).resolve().parent.parent
FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]  # minute hour day month weekday
JOB = re.compile(r"^#?\s*([\d*/,-]+(?:\s+[\d*/,-]+){4})\s+(cd .*)$")
VARIABLE = re.compile(r"^([A-Z_]+)=(.*)$")


def _field_ok(text: str, low: int, high: int) -> bool:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        first, _, last = base.partition("-")
        numbers = [first, last] if last else [first]
        if not all(n.isdigit() and low <= int(n) <= high for n in numbers):
            return False
        if last and int(first) > int(last):
            return False
    return True


def crontab() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The variables and the (schedule, command) jobs of crontab.example, commented ones too."""
    variables, jobs = {}, []
    for line in (PROJECT_DIR / "crontab.example").read_text().splitlines():
        if match := VARIABLE.match(line):
            variables[match.group(1)] = match.group(2)
        elif match := JOB.match(line):
            jobs.append((match.group(1), match.group(2)))
    return variables, jobs


def test_every_schedule_parses():
    variables, jobs = crontab()
    assert {"SHELL", "MAILTO", "LAKEHOUSE_HOME", "LAKEHOUSE_ENV", "LAKEHOUSE_LOGS"} <= set(
        variables
    )
    assert len(jobs) == 7
    for schedule, command in jobs:
        fields = schedule.split()
        assert all(_field_ok(f, *FIELDS[i]) for i, f in enumerate(fields)), schedule
        assert "flock -n" in command and '. "$LAKEHOUSE_ENV"' in command
        assert '>> "$LAKEHOUSE_LOGS/' in command and "exit $code" in command


def _sandbox(lakehouse) -> dict[str, str]:
    """The crontab's variables pointing into the test's sandbox project."""
    variables, _ = crontab()
    (lakehouse.project / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env_file = lakehouse.root / "lakehouse.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in lakehouse.env().items()))
    logs = lakehouse.root / "logs"
    logs.mkdir()
    return {
        **variables,
        "LAKEHOUSE_HOME": str(lakehouse.project),
        "LAKEHOUSE_ENV": str(env_file),
        "LAKEHOUSE_LOGS": str(logs),
    }


def _in_sandbox(command: str, lakehouse) -> str:
    return command.replace("/tmp/lakehouse-", f"{lakehouse.root}/flock-")


@pytest.mark.slow  # every crontab line as its own process: half a minute
def test_every_crontab_line_runs_in_a_sandbox(lakehouse):
    sandbox = _sandbox(lakehouse)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **sandbox}
    _, jobs = crontab()
    for _, command in jobs:
        done = subprocess.run(
            ["bash", "-c", _in_sandbox(command, lakehouse)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert done.stdout == ""  # cron would mail any output: a run that worked prints nothing
    logs = Path(sandbox["LAKEHOUSE_LOGS"])
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        f"{n}.log" for n in ("daily", "bronze", "silver", "gold", "maintenance", "audit", "status")
    )
    daily = (logs / "daily.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| INFO", daily, re.MULTILINE)
    assert "\x1b[" not in daily  # plain lines, no terminal colours, in a log file
    assert re.search(r"\| \[bronze-\d{8}T\d{6}Z-[0-9a-f]{8}\] bronze: \d+/\d+ tasks done", daily)
    assert re.search(r"^daily daily-\S+: succeeded in ", daily, re.MULTILINE)  # the summary
    runs = pl.from_arrow(DeltaTable(str(lakehouse.lake / "_runs")).to_pyarrow_table())
    assert set(runs["status"]) == {"succeeded"}
    assert "equal to its rebuild" in (logs / "audit.log").read_text()  # the weekly audit

    # A failing job exits non-zero and prints one line for cron to mail.
    env_file = Path(sandbox["LAKEHOUSE_ENV"])
    env_file.write_text(env_file.read_text() + "LAKE_ROOT=/proc/no-lake-can-be-written-here\n")
    daily_job = next(c for _, c in jobs if "run daily" in c)
    done = subprocess.run(
        ["bash", "-c", _in_sandbox(daily_job, lakehouse)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stdout.startswith("lakehouse daily failed (exit 1): see ")


def test_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: .ci/run installs the systemd package")
    units = sorted((PROJECT_DIR / "deploy" / "systemd").glob("lakehouse-*"))
    services = [u for u in units if u.suffix == ".service"]
    assert len(services) == 3 and len(units) == 6
    for unit in units:  # the paths of this checkout, so that ExecStart exists
        text = unit.read_text().replace(
            "/opt/lakehouse/.venv", str(Path(sys.executable).parents[1])
        )
        (tmp_path / unit.name).write_text(text.replace("/opt/lakehouse", str(PROJECT_DIR)))
    for timer in (u for u in units if u.suffix == ".timer"):
        assert "Persistent=true" in timer.read_text()
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(p.name for p in tmp_path.iterdir())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""  # unknown keys only warn: no output at all


@pytest.mark.slow
def test_a_real_cron_daemon_runs_the_job_and_the_ledger_records_it(lakehouse):
    if shutil.which("cron") is None:
        pytest.fail("cron is missing: .ci/run installs Debian's cron package")
    sandbox = _sandbox(lakehouse)
    _, jobs = crontab()
    job = _in_sandbox(next(c for _, c in jobs if "run daily" in c), lakehouse)
    variables = "".join(f"{k}={v}\n" for k, v in sandbox.items())
    entry = Path("/etc/cron.d") / f"lakehouse-test-{os.getpid()}"
    entry.write_text(f"{variables}* * * * * root {job}\n")
    entry.chmod(0o644)
    daemon = subprocess.Popen(["cron", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ledger = lakehouse.lake / "_runs"
        deadline = time.time() + 200
        while time.time() < deadline:
            if ledger.exists():
                runs = pl.from_arrow(DeltaTable(str(ledger)).to_pyarrow_table())
                if (runs["pipeline"] == "daily").any() and (runs["status"] != "running").all():
                    break
            time.sleep(2)
        else:
            pytest.fail("cron did not run the daily job within 200 s")
    finally:
        entry.unlink()
        daemon.terminate()
        daemon.wait()
    assert set(runs["status"]) == {"succeeded"}
    log = (Path(sandbox["LAKEHOUSE_LOGS"]) / "daily.log").read_text()
    assert re.search(r"^daily daily-\S+: succeeded in ", log, re.MULTILINE)  # the run summary


def test_every_pipeline_has_its_dag_picture_and_save_dag_draws_one(lakehouse):
    names = sorted(p.stem for p in (PROJECT_DIR / "conf" / "pipelines").glob("*.yml"))
    page = (PROJECT_DIR / "docs" / "pipelines.md").read_text()
    for name in names:
        assert (PROJECT_DIR / "docs" / "dag" / f"{name}.png").exists(), f"make dags: {name}"
        assert f"(dag/{name}.png)" in page  # shown on the Pipelines page, "The DAGs"
    picture = lakehouse.root / "gold.png"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "save-dag", "gold"]
        + ["--format", "png", "--output-path", str(picture)],
        cwd=lakehouse.project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
