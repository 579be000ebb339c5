"""Shared building blocks of the lakehouse pipelines (see README, Layout)."""

from lakehouse.runtime import console as _console
from lakehouse.runtime import executors as _executors
from lakehouse.runtime import exit_status as _exit_status
from lakehouse.runtime import hooks as _hooks

_console.install()
_executors.install()
_exit_status.install()
_hooks.install()
