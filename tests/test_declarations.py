"""Dataset declarations: every mistake names the file, the table and the field, before data moves."""

from __future__ import annotations

import re
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import web_events

from lakehouse.declare import catalog, contracts
from lakehouse.declare.declaration import DeclarationError

GOOD = """
    entities:
      events:
        key: event_id
        partition: {column: event_day, from: happened_at, by: day}
        columns:
          event_id: {type: string}
          happened_at: {type: "timestamp[ms, Europe/Paris]"}
          price: {type: "decimal(12, 3)", rules: {between: [0, 99.5]}}
          kind: {type: string, nullable: true, rules: {isin: [a, b]}}
"""


def _write(folder: Path, text: str, name: str = "mine.yml") -> Path:
    datasets = folder / "conf" / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    (datasets / name).write_text(textwrap.dedent(text))
    return datasets


def test_a_declaration_builds_the_types_and_the_checks(tmp_path):
    entity = catalog.load(_write(tmp_path, GOOD)).entities["events"]
    assert entity.columns == {
        "event_id": pl.String(),
        "happened_at": pl.Datetime("us", "UTC"),  # as Delta stores it
        "price": pl.Decimal(12, 3),
        "kind": pl.String(),
    }
    assert entity.zones == {"happened_at": "Europe/Paris"}  # text without an offset
    assert entity.rules["price"] == {"between": (Decimal("0"), Decimal("99.5"))}
    assert entity.nullable == {"kind"} and entity.source == "events"
    assert entity.schema.names()[-1] == "event_day"
    schema = contracts.row_schema(entity)
    assert schema.columns["kind"].nullable and not schema.columns["price"].nullable
    assert contracts.table_schema(entity).unique == ["event_id"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("decimal(12, 3)", "decimel(12,3)"),
            "mine.yml entities.events.columns.price.type: 'decimel(12,3)' is not a type",
        ),
        (
            GOOD.replace("key: event_id", "key: [event_id, evnt_kind]"),
            "entities.events.key: 'evnt_kind' is not a declared column",
        ),
        (
            GOOD.replace("from: happened_at", "from: happend_at"),
            "entities.events.partition.from: 'happend_at' is not a declared column; did you mean 'happened_at'?",
        ),
        (
            GOOD.replace("from: happened_at", "from: kind"),
            "entities.events.partition.from: kind is String, not a date",
        ),
        (
            GOOD.replace("nullable: true, rules", "nulable: true, rules"),
            "entities.events.columns.kind: unknown key 'nulable'; did you mean 'nullable'?",
        ),
        (
            GOOD.replace("isin: [a, b]", "regx: '^a'"),
            "entities.events.columns.kind.rules: unknown key 'regx'; did you mean 'regex'?",
        ),
        (
            GOOD.replace("between: [0, 99.5]", "between: [0, lots]"),
            "entities.events.columns.price.rules.between: 'lots' is not a Decimal",
        ),
        (
            GOOD.replace("{type: string}", "{type: string, nullable: true}", 1),
            "entities.events: key column(s) event_id cannot be nullable",
        ),
        (
            GOOD.replace(
                "key: event_id\n",
                "parent: {column: kind, entity: kinds, key: id}\n        key: event_id\n",
            ),
            "entities.events.parent.entity: no entity 'kinds'",
        ),
        (
            GOOD.replace("        key: event_id\n", ""),
            "entities.events.key: missing: the business key",
        ),
        (  # the misspelling is named, not the key it leaves missing
            GOOD.replace("columns:", "colums:"),
            "entities.events: unknown key 'colums'; did you mean 'columns'?",
        ),
        (
            GOOD.replace("by: day", "by: week"),
            "entities.events.partition.by: 'week' is not one of day, month, year",
        ),
        (
            GOOD.replace("key: event_id", "snapshot: {vanished: delet}\n        key: event_id"),
            "entities.events.snapshot.vanished: 'delet' is not one of keep, soft_delete, delete; did you mean 'delete'?",
        ),
        (
            GOOD.replace("between: [0, 99.5]", "between: [0]"),
            "entities.events.columns.price.rules.between: expected [low, high], both included; got [0]",
        ),
        (
            GOOD.replace("nullable: true", "nullable: maybe"),
            "columns.kind.nullable: expected true or false, got 'maybe'",
        ),
        (GOOD + "    mart: {}\n", "mine.yml: unknown key 'mart'; did you mean 'marts'?"),
    ],
)
def test_a_mistake_names_the_file_the_table_and_the_field(tmp_path, text, message):
    with pytest.raises(DeclarationError) as error:
        catalog.load(_write(tmp_path, text))
    assert message in str(error.value)
    assert "mine.yml" in str(error.value)


def test_a_mart_reading_an_undeclared_table_or_without_a_contract_is_refused(tmp_path):
    project = tmp_path / "project"
    web_events.install(project)
    datasets = project / "conf" / "datasets"
    spec = (datasets / "web_events.yml").read_text()
    (datasets / "web_events.yml").write_text(
        spec.replace("  users:\n    grain", "  people:\n    grain").replace(
            "entity: users", "entity: people"
        )
    )
    with pytest.raises(
        DeclarationError,
        match="daily_page_stats.sql: mart 'daily_page_stats' reads 'users', which no enabled "
        "dataset declares as an entity",
    ):
        catalog.load(datasets)
    (datasets / "web_events.yml").write_text(spec.replace("marts/daily_page_stats.sql", "x.sql"))
    with pytest.raises(DeclarationError, match=r"marts.daily_page_stats.sql: no file .*x\.sql"):
        catalog.load(datasets)


def test_a_declaration_with_a_mistake_stops_the_run_before_any_table_changes(lakehouse):
    web_events.install(lakehouse.project)
    path = lakehouse.project / "conf" / "datasets" / "web_events.yml"
    path.write_text(
        path.read_text().replace(
            "{type: int64, nullable: true, rules: {ge: 0}",
            "{type: int46, nullable: true, rules: {ge: 0}",
        )
    )
    web_events.write_jsonl(
        lakehouse.landing / "page_views" / "v.jsonl", web_events.views(date(2024, 3, 1), 5, "x")
    )
    result = lakehouse.cli("bronze")
    assert result.returncode != 0
    assert (
        "web_events.yml entities.page_views.columns.dwell_ms.type: 'int46' is not a type"
        in result.stderr
    )
    assert not (lakehouse.lake / "bronze").exists()


def test_a_mart_mistake_stops_daily_before_any_layer_moves_data(lakehouse):
    web_events.install(lakehouse.project)
    query = lakehouse.project / "marts" / "daily_page_stats.sql"
    query.write_text(query.read_text().replace("u.country,", "u.countyr,"))
    web_events.write_jsonl(
        lakehouse.landing / "page_views" / "v.jsonl", web_events.views(date(2024, 3, 1), 5, "x")
    )
    result = lakehouse.cli("daily")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "daily_page_stats.sql" in line]
    assert lines and "mart 'daily_page_stats'" in lines[0] and "countyr" in lines[0], result.stderr
    assert not (lakehouse.lake / "bronze").exists()


def test_the_engine_names_no_dataset():
    """The demo's names, keys and dates live in conf/ and pipelines/, never in lakehouse/."""
    demo_words = re.compile(r"tpch|orders|lineitem|custkey|orderkey|1992|1998", re.IGNORECASE)
    engine = Path(catalog.__file__).parent.parent  # lakehouse/
    found = [
        f"{path.relative_to(engine)}:{number}: {line.strip()}"
        for path in sorted(engine.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if demo_words.search(line)
    ]
    assert len(list(engine.rglob("*.py"))) > 20  # the package itself, not an empty folder
    assert found == []
