"""Daily: the whole flow for the next day(s), landing -> bronze -> silver -> gold.

Each layer runs as its own FlowerPower pipeline with its own YAML (so a layer's settings
live in one place), in the order given by ``layers``; the first failure stops the chain,
and since every layer is idempotent, rerunning ``daily`` finishes the work.
"""

from __future__ import annotations

from pathlib import Path

from flowerpower import FlowerPowerProject
from loguru import logger


def project_dir() -> str:
    """The project folder (the one holding ``conf/`` and ``pipelines/``)."""
    return str(Path(__file__).resolve().parent.parent)


def layer_outputs(project_dir: str, layers: list[str]) -> dict[str, dict]:
    """Run each layer pipeline in order; what each returned, by layer name."""
    project = FlowerPowerProject.load(base_dir=project_dir)
    outputs = {}
    for layer in layers:
        logger.info(f"daily: running {layer}")
        outputs[layer] = project.run(layer)
    return outputs
