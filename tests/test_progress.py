"""Task progress: a live line on a terminal, plain timestamped log lines otherwise."""

from __future__ import annotations

import io

from hamilton.execution.grouping import NodeGroupPurpose
from loguru import logger

from lakehouse.runtime import progress


def _run(meter: progress.TaskProgress, tasks: int) -> None:
    meter.run_after_task_expansion(
        run_id="r", task_id="t", parameters={str(i): i for i in range(tasks)}
    )
    for _ in range(tasks):
        meter.run_after_task_return(purpose=NodeGroupPurpose.EXECUTE_BLOCK, success=True)
    meter.run_after_task_return(
        purpose=NodeGroupPurpose.EXECUTE_SINGLE, success=True
    )  # not counted


def test_a_terminal_gets_one_line_rewritten_in_place(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr("sys.stderr", screen)
    _run(progress.TaskProgress("bronze", terminal=True), 4)
    text = screen.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n")
    assert "\rbronze: 4/4 tasks done (100%" in text


def test_a_log_gets_plain_lines_at_most_every_ten_seconds_and_the_last(monkeypatch):
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), format="{message}")
    clock = iter([0.0, 1.0, 2.0, 12.0, 13.0, 14.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    try:
        _run(progress.TaskProgress("gold", terminal=False), 5)
    finally:
        logger.remove(sink)
    done = [line for line in lines if "tasks done" in line]
    assert lines[0] == "gold: 5 tasks to run"
    assert [d.split(" (")[0] for d in done] == ["gold: 3/5 tasks done", "gold: 5/5 tasks done"]
    assert not any("\r" in line for line in lines)
