"""Bad configuration fails before any data is touched, naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def _tables(lakehouse) -> list[str]:
    return sorted(
        str(p.parent.relative_to(lakehouse.lake)) for p in lakehouse.lake.glob("*/*/_delta_log")
    )


@pytest.mark.parametrize(
    ("pipeline", "config", "message"),
    [
        (
            "silver",
            {"max_cells_per_bach": 10},
            r"conf/pipelines/silver.yml run.config: unknown key 'max_cells_per_bach'; did you mean 'max_cells_per_batch'\?",
        ),
        (
            "silver",
            {"max_rows_per_batch": 250000},
            r"unknown key 'max_rows_per_batch': it is now max_cells_per_batch, rows times the entity's columns \(250,000 rows of a 16-column table is 4000000\)",
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
        (
            "silver",
            {"max_cells_per_batch": 0},
            r"silver.yml run.config.max_cells_per_batch: expected a whole number of at least 1, got 0",
        ),
        (
            "gold",
            {"memory_per_task": "lots"},
            r"gold.yml run.config.memory_per_task: 'lots' is not a memory size such as 500MB",
        ),
        (
            "silver",
            {"max_invalid_fraction": "lots"},
            r"silver.yml run.config.max_invalid_fraction: expected float, got 'lots' \(str\)",
        ),
        (
            "silver",
            {"watermark": {"kind": "column", "column": "_ingested_at", "lookback_days": -2}},
            r"watermark.lookback_days: expected a whole number of days >= 0: .*; got -2",
        ),
        (
            "silver",
            {"watermark": {"kind": "column"}},
            r"silver.yml run.config.watermark: kind column needs a 'column' \(e.g. _ingested_at\)",
        ),
        (
            "silver",
            {"watermark": {"kind": "colum"}},
            r"watermark.kind: 'colum' is not one of version, column; did you mean 'column'\?",
        ),
        (
            "silver",
            {"watermark": {"kind": "column", "colum": "_ingested_at"}},
            r"silver.yml run.config.watermark: unknown key 'colum'; did you mean 'column'\?",
        ),
        (
            "gold",
            {"partitions_per_task": -1},
            r"gold.yml run.config.partitions_per_task: expected a whole number of at least 1",
        ),
        (
            "bronze",
            {"settle_seconds": -1},
            r"bronze.yml run.config.settle_seconds: expected a number of seconds >= 0, got -1",
        ),
        (
            "publish",
            {"sinkz": {}},
            r"publish.yml run.config: unknown key 'sinkz'; did you mean 'sinks'\?",
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


PIPELINES = sorted(
    path.stem
    for path in (Path(__file__).parent.parent / "conf" / "pipelines").glob("*.yml")
    if yaml.safe_load(path.read_text())["run"]["config"]  # infer takes only --inputs
)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_pipeline_refuses_a_misspelled_key_naming_its_file(lakehouse, pipeline):
    path = lakehouse.project / "conf" / "pipelines" / f"{pipeline}.yml"
    spec = yaml.safe_load(path.read_text())
    key = next(iter(spec["run"]["config"]))
    spec["run"]["config"][key[:-1] + "x"] = spec["run"]["config"].pop(key)
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        Exception,
        match=rf"conf/pipelines/{pipeline}.yml run.config: unknown key '{key[:-1]}x'; did you mean '{key}'\?",
    ):
        lakehouse.run(pipeline)


def test_a_missing_key_and_a_misspelled_section_are_named(lakehouse):
    path = lakehouse.project / "conf" / "pipelines" / "silver.yml"
    spec = yaml.safe_load(path.read_text())
    del spec["run"]["config"]["lake_root"]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(Exception, match=r"silver.yml run.config: 'lake_root' is missing \(str\)"):
        lakehouse.run("silver")
    spec["run"]["finl_vars"] = spec["run"].pop("final_vars")  # would compute every node
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        Exception, match=r"silver.yml run: unknown key 'finl_vars'; did you mean 'final_vars'\?"
    ):
        lakehouse.run("silver")


def test_an_int_is_a_float_where_a_float_is_asked(lakehouse):
    lakehouse.configure("silver", max_invalid_fraction=1)  # a float in the DAG
    lakehouse.run("silver")  # nothing in bronze yet: nothing to do, and no type error


@pytest.mark.parametrize(
    ("file", "typo", "message"),
    [
        ("hooks.yml", ("  dir:", "  dri:"), "conf/hooks.yml lock: unknown setting 'dri'; did you mean 'dir'?"),
        ("project.yml", ("hooks_dir:", "hook_dir:"), "conf/project.yml: unknown key 'hook_dir'; did you mean 'hooks_dir'?"),
    ],
)  # fmt: skip
def test_a_hook_setting_and_a_project_key_are_checked(lakehouse, file, typo, message):
    path = lakehouse.project / "conf" / file
    path.write_text(path.read_text().replace(*typo))
    done = lakehouse.cli("status")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_a_hook_taken_out_of_the_list_keeps_its_settings_but_a_stray_block_is_refused(lakehouse):
    path = lakehouse.project / "conf" / "hooks.yml"
    config = yaml.safe_load(path.read_text())
    config["hooks"] = [name for name in config["hooks"] if name != "lineage"]
    path.write_text(yaml.safe_dump(config))
    done = lakehouse.cli("status")  # exit 3: every table is missing, but it ran
    assert done.returncode == 3, done.stderr  # the lineage block stays, unused

    config["lineag"] = {"transport": "console"}
    path.write_text(yaml.safe_dump(config))
    done = lakehouse.cli("status")
    assert done.returncode == 2, done.stderr
    assert "conf/hooks.yml: lineag names no hook in hooks/" in done.stderr


def test_a_config_error_is_one_line_and_exit_2_on_the_command_line(lakehouse):
    lakehouse.configure("silver", max_cells_per_bach=10)
    done = lakehouse.cli("silver")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "did you mean 'max_cells_per_batch'?" in errors[0]
    for noise in ("Traceback", "Oh no an error", "Invalid configuration for pipeline"):
        assert noise not in done.stderr + done.stdout
    debug = lakehouse.cli("silver", "--log-level", "debug")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr  # the traceback is there for whoever asks


def test_a_failure_inside_daily_is_reported_once(lakehouse):
    lakehouse.configure("landing", defect_rate=0.05)
    lakehouse.configure("silver", on_invalid="fail")  # the demo's defects now fail silver
    done = lakehouse.cli("daily")
    assert done.returncode == 1
    cause = "on_invalid is fail: nothing committed"
    assert done.stderr.count(cause) == 1, done.stderr
    assert "silver failed (above)" in done.stderr
    assert "Traceback" not in done.stderr
