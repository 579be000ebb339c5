"""A flowerpower process exits with the status it chose, even if shutdown would abort."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, os, sys
sys.argv[0] = "/usr/bin/flowerpower"
atexit.register(os.abort)      # stands for the native abort at shutdown (delta-rs #2184)
from lakehouse.runtime import integration
integration.install()  # what every pipeline module does
print("committed", flush=True)
sys.exit({code})
"""


@pytest.mark.parametrize("code", [0, 1, 3])
def test_the_recorded_status_wins_over_an_abort_at_shutdown(code):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(code=code)], capture_output=True, text=True
    )
    assert done.returncode == code
    assert done.stdout == "committed\n"


def test_outside_the_flowerpower_command_nothing_changes():
    script = SCRIPT.replace('sys.argv[0] = "/usr/bin/flowerpower"', "").format(code=0)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -6  # SIGABRT: the guard is only for the CLI
