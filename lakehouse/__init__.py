"""Shared building blocks of the lakehouse pipelines (see README, Layout)."""

from lakehouse import executors as _executors

_executors.install()
