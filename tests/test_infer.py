"""A dataset's first declaration, drafted from a sample landing file."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import web_events

from lakehouse.declare import catalog, infer


def test_the_draft_infers_types_and_nullability_from_text(tmp_path):
    sample = tmp_path / "landing" / "payments" / "payments_1.csv"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "payment_id,paid_at,amount,note,refunded,booked_on,local_time\n"
        "p1,2024-05-01T10:00:00Z,12.50,,true,2024-05-01,2024-05-01 10:00\n"
        "p2,2024-05-01T11:30:00+02:00,1250,hi,false,2024-05-02,2024-05-01 11:00:05\n"
    )
    text = infer.draft(str(sample))
    assert "  payments:" in text and "{format: csv}" in text
    declared = {
        line.split(":")[0].strip(): line.split("type: ")[1].split("}")[0]
        for line in text.splitlines()
        if "{type:" in line
    }
    assert declared == {
        "payment_id": '"string"',
        "paid_at": '"timestamp[us, UTC]"',
        "amount": '"decimal(18,2)"',
        "note": '"string", nullable: true',
        "refunded": '"bool"',
        "booked_on": '"date"',
        "local_time": '"timestamp[us]"',
    }
    assert "# partition: {column: paid_at_month, from: paid_at, by: month}" in text


def test_infer_from_the_command_line_then_the_draft_carries_data_to_silver(lakehouse):
    web_events.install(lakehouse.project)
    rows = web_events.views(date(2024, 3, 1), 25, "sample")
    sample = lakehouse.landing / "clicks" / "clicks_1.jsonl"
    web_events.write_jsonl(sample, rows)
    result = lakehouse.cli("infer", "--inputs", json.dumps({"path": str(sample), "write": True}))
    assert result.returncode == 0, result.stderr
    assert "  clicks:" in result.stdout and "key: []" in result.stdout
    path = lakehouse.project / "conf" / "datasets" / "clicks.yml"
    assert path.read_text().splitlines()[0].startswith("# Drafted from")

    again = lakehouse.cli("infer", "--inputs", json.dumps({"path": str(sample), "write": True}))
    assert again.returncode != 0 and "clicks.yml exists: not overwritten" in again.stderr

    path.write_text(path.read_text().replace("key: []", "key: view_id"))
    entity = catalog.load(lakehouse.project / "conf" / "datasets").entities["clicks"]
    assert entity.columns["viewed_at"] == pl.Datetime("us", "UTC")
    assert entity.columns["dwell_ms"] == pl.Int64 and "dwell_ms" in entity.nullable
    lakehouse.run("bronze")
    lakehouse.run("silver")
    assert lakehouse.table("silver/clicks").height == 25
