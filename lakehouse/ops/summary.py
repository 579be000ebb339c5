"""The few lines a run prints at its end: what moved, what was held back, how long it took.

Printed on stdout by the outermost run (``daily``, or a layer run on its own) from what its
pipelines reported (``WriteResult``s), so it needs no ledger and no second read of the lake.
``daily`` gets one line per pipeline it ran, a single pipeline one line per table it wrote;
a failed run says first where it failed and why, in one line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from lakehouse.core.delta import WriteResult
from lakehouse.core.runs import Run

QUARANTINE = "_quarantine/"
BAD_FILES = "_quarantine/_files"  # bronze's record of unreadable landing files
COLUMNS = ("files", "rows in", "written", "quarantined", "bad files")


@dataclass
class Moved:
    """What one pipeline, or one table, moved."""

    files: int = 0
    rows_in: int = 0
    written: int = 0
    quarantined: int = 0
    bad_files: int = 0
    by_rule: Counter = field(default_factory=Counter)

    def add(self, result: WriteResult) -> None:
        if result.operation == "audit":
            return  # compared, not written: said on lines of their own
        if result.table == BAD_FILES:
            self.bad_files += result.rows
        elif result.table.startswith(QUARANTINE):
            self.quarantined += result.rows
            self.by_rule.update(result.by_rule or {})
        else:
            self.files += result.files or 0
            self.rows_in += result.rows_read or 0
            self.written += result.rows

    def cells(self) -> tuple[int, ...]:
        return (self.files, self.rows_in, self.written, self.quarantined, self.bad_files)


def moved(results: list[WriteResult]) -> Moved:
    total = Moved()
    for result in results:
        total.add(result)
    return total


def by_table(results: list[WriteResult]) -> dict[str, Moved]:
    """What each table took; a quarantine write counts for the table of the same entity
    (``_quarantine/<entity>`` for ``silver/<entity>``) when the run wrote one."""
    tables: dict[str, Moved] = {}
    entity_of = {r.table.rsplit("/", 1)[-1]: r.table for r in results if not _held_back(r)}
    for result in results:
        name = result.table
        if _held_back(result) and name != BAD_FILES:
            name = entity_of.get(name.rsplit("/", 1)[-1], name)
        tables.setdefault(name, Moved()).add(result)
    return tables


def _held_back(result: WriteResult) -> bool:
    return result.table.startswith(QUARANTINE)


def render(run: Run) -> str:
    """The run's summary, a few lines of plain text."""
    lines = [_headline(run)]
    if run.children:
        rows = {c.pipeline: (moved(c.results()), c.seconds, c.status) for c in run.children}
        lines += _table("pipeline", rows)
        total = moved([r for child in run.children for r in child.results()])
    else:
        results = [r for r in run.results() if r.operation != "audit"]
        if not results and not run.results():  # a pipeline that writes no table: its headline
            return lines[0]
        if results:
            tables = by_table(results)
            lines += _table("table", {name: (m, None, None) for name, m in tables.items()})
        total = moved(results)
    if total.by_rule:
        rules = ", ".join(f"{rule} {count:,}" for rule, count in total.by_rule.most_common())
        lines.append(f"  quarantined by rule: {rules}")
    lines += [_audit_line(r) for r in run.results() if r.operation == "audit"]
    return "\n".join(lines)


def _audit_line(result: WriteResult) -> str:
    from lakehouse.layers.gold import audit

    if result.drift is not None and audit.drifted(result.drift):
        return "  audit " + _one_line(audit.describe(result.table.rsplit("/", 1)[-1], result.drift))
    drift = result.drift or {}
    return (
        f"  audit {result.table}: equal to its rebuild ({result.rows:,} rows of "
        f"{drift.get('parts', '?')} parts recomputed in {drift.get('seconds', 0):.2f} s)"
    )


def _headline(run: Run) -> str:
    took = f"{run.seconds:.1f} s" if run.seconds is not None else "?"
    if run.status == "succeeded":
        return f"{run.pipeline} {run.run_id}: succeeded in {took}"
    failed = next((c for c in run.children if c.status == "failed"), None)
    where = f" at {failed.pipeline}" if failed is not None else ""
    cause = failed or run
    return (
        f"{run.pipeline} {run.run_id}: FAILED{where} after {took}: "
        f"{cause.error_type}: {_one_line(cause.error_message)}"
    )


def _one_line(message: str | None, limit: int = 300) -> str:
    text = " ".join((message or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(kind: str, rows: Mapping[str, tuple[Moved, float | None, str | None]]) -> list[str]:
    timed = any(seconds is not None for _, seconds, _ in rows.values())
    outcomes = any(status not in (None, "succeeded") for _, _, status in rows.values())
    header = [kind, *COLUMNS] + (["seconds"] if timed else []) + (["outcome"] if outcomes else [])
    body = []
    for name, (m, seconds, status) in rows.items():
        cells = [f"{value:,}" for value in m.cells()]
        if timed:
            cells.append("-" if seconds is None else f"{seconds:.1f}")
        if outcomes:
            cells.append(status or "-")
        body.append([name, *cells])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  " + "  ".join(cells)

    return [line(header), *(line(row) for row in body)]
