"""Daily: the whole flow for the next day(s), landing -> bronze -> silver -> gold.

Each layer runs as its own FlowerPower pipeline with its own YAML (so a layer's settings
live in one place), in the order given by ``layers``; the first failure stops the chain,
and since every layer is idempotent, rerunning ``daily`` finishes the work.
"""

from __future__ import annotations

import contextlib
import os

from flowerpower import FlowerPowerProject
from flowerpower.cfg.pipeline.run import RunConfig
from loguru import logger

from lakehouse.declare import catalog
from lakehouse.runtime import executors, integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py

REBUILDING_LAYERS = ("silver", "gold", "publish")


def layer_inputs(
    plan: bool = False,
    from_date: str | None = None,
    to_date: str | None = None,
    full_refresh: bool = False,
) -> dict:
    """The ``--inputs`` given to ``daily``, passed on to the layers (validated by them)."""
    given = {"plan": plan, "from_date": from_date, "to_date": to_date, "full_refresh": full_refresh}
    return {key: value for key, value in given.items() if value}


def layer_executor(executor: dict | str | None = None) -> executors.ExecutorSpec | None:
    """The executor every layer runs on, from ``--inputs '{"executor": ...}'`` (the same keys
    as ``run.executor``); by default each layer uses the one in its own YAML."""
    if executor is None:
        return None
    return executors.ExecutorSpec.parse(executor, "daily --inputs executor")


def layer_outputs(
    project_dir: str,
    layers: list[str],
    layer_inputs: dict,
    layer_executor: executors.ExecutorSpec | None,
) -> dict[str, dict]:
    """Run each layer pipeline of the project in ``project_dir``, in order; their outputs.

    A backfill or full refresh runs only the layers that rebuild (silver, gold, publish);
    a plan runs every layer in plan mode."""
    catalog.load()  # every declaration, marts included, checked before any layer moves data
    rebuild = any(key in layer_inputs for key in ("from_date", "to_date", "full_refresh"))
    project = FlowerPowerProject.load(base_dir=os.path.abspath(project_dir))
    outputs = {}
    for layer in layers:
        if rebuild and layer not in REBUILDING_LAYERS:
            continue
        logger.debug(f"daily: running {layer}")
        with executors.override(layer_executor) if layer_executor else contextlib.nullcontext():
            # the manager, not project.run: that one logs a failure again before re-raising it
            run_config = RunConfig(inputs=layer_inputs) if layer_inputs else RunConfig()
            outputs[layer] = project.pipeline_manager.run(name=layer, run_config=run_config)
    return outputs
