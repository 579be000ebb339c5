"""Every pipeline YAML builds a Hamilton DAG whose inputs its config satisfies."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from hamilton import driver

from lakehouse.core import settings

PIPELINES = sorted(
    p.stem for p in (Path(__file__).parent.parent / "conf" / "pipelines").glob("*.yml")
)

RUN_INPUTS = {"infer": {"path": "landing/events/sample.csv"}}  # given on the command line


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_config_satisfies_its_dag(name):
    spec = yaml.safe_load(
        (Path(__file__).parent.parent / "conf" / "pipelines" / f"{name}.yml").read_text()
    )
    module = importlib.import_module(f"pipelines.{name}")
    inputs = {**(spec["run"].get("inputs") or {}), **RUN_INPUTS.get(name, {})}
    where = f"conf/pipelines/{name}.yml"
    config = settings.check_config(where, [module], spec["run"]["config"], inputs)  # as a run does
    dr = (
        driver.Builder()
        .with_modules(module)
        .with_config(config)
        .enable_dynamic_execution(allow_experimental_mode=True)
        .build()
    )
    final_vars = spec["run"]["final_vars"]
    dr.validate_execution(final_vars=final_vars, inputs=inputs)
    assert set(final_vars) <= {v.name for v in dr.list_available_variables()}
