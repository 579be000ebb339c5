"""The engine of the lakehouse pipelines: shared, importable building blocks that name no
dataset (see README, Layout). Importing it changes nothing in FlowerPower, Hamilton or the
interpreter: the integration is ``lakehouse.runtime.integration.install()``, which every
pipeline module calls."""
