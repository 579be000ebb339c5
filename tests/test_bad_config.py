"""Bad configuration fails before any data is touched, naming the file and the key."""

from __future__ import annotations

import pytest


def _tables(lakehouse) -> list[str]:
    return sorted(
        str(p.parent.relative_to(lakehouse.lake)) for p in lakehouse.lake.glob("*/*/_delta_log")
    )


@pytest.mark.parametrize(
    ("pipeline", "config", "message"),
    [
        (
            "silver",
            {"max_rows_per_bach": 10},
            r"conf/pipelines/silver.yml run.config: unknown key 'max_rows_per_bach'; did you mean 'max_rows_per_batch'\?",
        ),
        (
            "bronze",
            {"sources": {"orders": {"format": "xlsx"}}},
            r"run.config.sources.orders.format: 'xlsx' is not a known source \(known: csv, delta, duckdb, jsonl, parquet, postgres",
        ),
        (
            "bronze",
            {"landing_root": "/nonexistent/landing"},
            r"bronze.yml run.config.landing_root: /nonexistent/landing does not exist",
        ),
        (
            "gold",
            {"lake_root": ""},
            r"gold.yml run.config.lake_root is empty \(is the environment variable in it unset\?\)",
        ),
        (
            "silver",
            {"watermark": {"kind": "timestamp"}},
            r"watermark.kind: 'timestamp' is not one of version, column",
        ),
        (
            "bronze",
            {"watermark": {"kind": "version"}},
            r"bronze.yml run.config.watermark.kind: 'version' is not supported here \(use files\)",
        ),
        ("bronze", {"on_bad_file": "ignore"}, r"on_bad_file: 'ignore' is not skip or fail"),
        (
            "daily",
            {"layer": ["bronze"]},
            r"daily.yml run.config: unknown key 'layer'; did you mean 'layers'\?",
        ),
    ],
)
def test_bad_settings_fail_before_any_table_changes(lakehouse, pipeline, config, message):
    lakehouse.run("landing")
    lakehouse.configure(pipeline, **config)
    with pytest.raises(RuntimeError, match=message):
        lakehouse.run(pipeline)
    assert _tables(lakehouse) == []


def test_a_yaml_syntax_error_names_the_file_on_the_command_line(lakehouse):
    path = lakehouse.project / "conf" / "pipelines" / "gold.yml"
    path.write_text(path.read_text().replace("config:", "config: [unclosed", 1))
    done = lakehouse.cli("gold")
    assert done.returncode == 1
    assert "Failed to load configuration from conf/pipelines/gold.yml" in done.stderr
