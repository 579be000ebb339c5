"""What a run writes to the console (stderr) at each log level.

FlowerPower configures loguru itself (``setup_logging``, called again by every run) with
its module, function and line on every line, and logs a banner per retry wrapper and a
line per finished pipeline at INFO. ``install`` puts this module's ``setup_logging`` in
its place: below ``DEBUG``, FlowerPower's own lines under WARNING are left out (the run's
summary says what they said) and lines read ``time | level | message``; at ``DEBUG``
everything is shown with where it came from. Warnings and errors always show.
"""

from __future__ import annotations

import importlib
import os
import sys

from loguru import logger

LIBRARIES = ("flowerpower",)  # whose INFO lines are chatter below DEBUG
SHORT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<level>{message}</level>"
)
FULL = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
)
# modules of FlowerPower 0.37 that import setup_logging by name
USERS = (
    "flowerpower.utils.logging",
    "flowerpower.flowerpower",
    "flowerpower.pipeline.manager",
    "flowerpower.pipeline.executor",
    "flowerpower.pipeline.runner",
    "flowerpower.cli.pipeline",
    "flowerpower.cli.utils",
)


def _not_chatter(record) -> bool:
    name = record["name"] or ""
    return record["level"].no >= logger.level("WARNING").no or not name.startswith(LIBRARIES)


def coloured(stream) -> bool:
    """Colours only on a terminal (``NO_COLOR`` and ``FORCE_COLOR`` respected): loguru's own
    guess also colours a redirected stream when CI variables are set, which puts escape
    codes into log files."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_installed: tuple | None = None  # (level, stream) of the sink this module last added


def setup_logging(level: str | None = None) -> None:
    """FlowerPower's ``setup_logging`` (same precedence: argument, ``FP_LOG_LEVEL``, its
    default), with the library chatter left for ``DEBUG``. FlowerPower calls it for every
    run (five times in one ``daily``): a call that would add the same sink again does
    nothing (adding a loguru sink costs ~5 ms)."""
    global _installed
    from flowerpower.settings import LOG_LEVEL

    effective = (level or os.getenv("FP_LOG_LEVEL") or LOG_LEVEL).upper()
    if _installed == (effective, sys.stderr):
        return
    logger.remove()
    _installed = None
    if effective == "CRITICAL":
        logger.disable("flowerpower")
        _installed = (effective, sys.stderr)
        return
    logger.enable("flowerpower")
    try:
        verbose = logger.level(effective).no <= logger.level("DEBUG").no
    except ValueError:  # a level loguru does not know: let it raise as FlowerPower's would
        verbose = False
    logger.add(
        sys.stderr,
        level=effective,
        format=FULL if verbose else SHORT,
        filter=None if verbose else _not_chatter,
        colorize=coloured(sys.stderr),
    )
    _installed = (effective, sys.stderr)


def install() -> None:
    """Replace FlowerPower's ``setup_logging`` wherever it was imported (idempotent). The
    runner calls it with the run's log level after importing the pipeline module (which
    calls ``integration.install``), so a process's first run gets it too."""
    for name in USERS:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a FlowerPower without this module
            continue
        if getattr(module, "setup_logging", None) not in (None, setup_logging):
            # by name, as read above: mypy's module type declares no setup_logging
            setattr(module, "setup_logging", setup_logging)  # noqa: B010
