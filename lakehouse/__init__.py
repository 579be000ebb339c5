"""Shared building blocks of the lakehouse pipelines (see README, Layout)."""

from lakehouse import console as _console
from lakehouse import executors as _executors
from lakehouse import exit_status as _exit_status
from lakehouse import hooks as _hooks

_console.install()
_executors.install()
_exit_status.install()
_hooks.install()
