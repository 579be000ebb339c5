"""Daily: the whole flow for the next day(s), landing -> bronze -> silver -> gold.

Each layer runs as its own FlowerPower pipeline with its own YAML (so a layer's settings
live in one place), in the order given by ``layers``; the first failure stops the chain,
and since every layer is idempotent, rerunning ``daily`` finishes the work.
"""

from __future__ import annotations

import os

from flowerpower import FlowerPowerProject
from loguru import logger


def layer_outputs(project_dir: str, layers: list[str]) -> dict[str, dict]:
    """Run each layer pipeline of the project in ``project_dir``, in order; their outputs."""
    project = FlowerPowerProject.load(base_dir=os.path.abspath(project_dir))
    outputs = {}
    for layer in layers:
        logger.info(f"daily: running {layer}")
        outputs[layer] = project.run(layer)
    return outputs
