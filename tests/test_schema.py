"""The JSON Schema editors read for conf/datasets/*.yml: generated from the declaration models,
committed up to date, named by each dataset file, and in agreement with the models."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema.exceptions import best_match

from lakehouse.declare import models, schema
from lakehouse.declare.declaration import DeclarationError

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATASET_FILES = sorted(
    [*PROJECT_DIR.glob("conf/datasets/*.yml"), PROJECT_DIR / "demo" / "tpch.yml"]
    + [p for p in (PROJECT_DIR / "tests" / "fixtures").rglob("*.yml") if "datasets" in p.parts]
)


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(schema.json_schema())


def test_the_committed_schema_and_reference_are_the_models_own(monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)
    assert schema.main(["--check"]) == 0, "run: python -m lakehouse.declare.schema"
    jsonschema.Draft202012Validator.check_schema(schema.json_schema())


@pytest.mark.parametrize("path", DATASET_FILES, ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_every_dataset_file_names_the_schema_and_passes_it(path, validator):
    first_line = path.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first_line)
    assert match, f"{path}: first line names no schema"
    assert (path.parent / match[1]).resolve() == PROJECT_DIR / schema.SCHEMA_FILE
    data = yaml.safe_load(path.read_text())
    assert list(validator.iter_errors(_as_json(data))) == []
    models.parsed(data, path)  # and the models agree


GOOD = """
    sources:
      readings: {format: csv}
      meters: {format: postgres, url_env: METERS_DB, table: meters}
    entities:
      readings:
        key: [meter_id, read_at]
        snapshot: true
        partition: {column: read_day, from: read_at, by: day}
        columns:
          meter_id: int32
          read_at: {type: "timestamp[ms, Europe/Oslo]"}
          kwh: {type: "decimal(9,3)", rules: {between: [0, 1e6]}}
    marts:
      daily_kwh:
        key: read_day
        sql: marts/daily_kwh.sql
        columns: {read_day: date, kwh: "decimal(18,3)"}
"""


@pytest.mark.parametrize(
    ("change", "path", "model_message"),
    [
        (("nullable", "nullable"), None, None),  # the declaration as it is: both accept it
        (("by: day", "by: week"), "entities.readings.partition.by", "'week' is not one of"),
        (
            ("snapshot: true", "snapshot: {vanishd: delete}"),
            "entities.readings.snapshot",
            "unknown key 'vanishd'",
        ),
        (
            ("key: read_day", "keys: read_day"),
            "marts.daily_kwh",
            "unknown key 'keys'; did you mean 'key'?",
        ),
        (
            ("rules: {between: [0, 1e6]}", "rules: {between: [0]}"),
            "entities.readings.columns.kwh.rules.between",
            "expected [low, high]",
        ),
        (("url_env: METERS_DB, ", ""), "sources.meters", None),  # postgres needs url_env
        (("format: csv", "format: cvs"), "sources.readings.format", None),
    ],
)
def test_the_schema_flags_what_the_models_refuse_at_the_same_key(
    validator, change, path, model_message
):
    """What an editor underlines is what the run refuses, at the same key path (source
    plugins check their own keys when built: the schema flags those too)."""
    data = yaml.safe_load(textwrap.dedent(GOOD).replace(*change))
    flagged = best_match(validator.iter_errors(_as_json(data)))  # as an editor shows it
    if path is None:
        assert flagged is None
        models.parsed(data, Path("mine.yml"))
        return
    assert flagged is not None, f"the schema accepts {change}"
    assert ".".join(map(str, flagged.absolute_path)).startswith(path), flagged
    if model_message:
        with pytest.raises(DeclarationError) as refused:
            models.parsed(data, Path("mine.yml"))
        assert str(refused.value).startswith(f"mine.yml {path}")
        assert model_message in str(refused.value)


def test_a_bare_type_and_a_single_key_are_short_forms(validator):
    data = yaml.safe_load(textwrap.dedent(GOOD))
    entity = models.parsed(data, Path("mine.yml")).entities["readings"]
    assert entity.columns["meter_id"].type == "int32" and entity.snapshot == models.Snapshot()
    assert models.parsed(data, Path("m.yml")).marts["daily_kwh"].key == ["read_day"]


def _as_json(data):
    """YAML's dates as the text an editor's JSON view of the file holds."""
    if isinstance(data, dict):
        return {k: _as_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_as_json(v) for v in data]
    return data.isoformat() if hasattr(data, "isoformat") else data
