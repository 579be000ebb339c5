"""Retries: only transient errors, by importable class path, and never a duplicated row."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from deltalake.exceptions import CommitFailedError

from lakehouse.layers.bronze import commit

CONF = Path(__file__).resolve().parent.parent / "conf" / "pipelines"


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yml")), ids=lambda p: p.stem)
def test_retry_exceptions_are_importable_transient_classes(path):
    retry = yaml.safe_load(path.read_text())["run"]["retry"]
    for name in retry.get("retry_exceptions", []):
        module, _, attribute = name.rpartition(".")
        assert module, f"{path.name}: {name!r} must be a dotted path (module.Class)"
        error = getattr(importlib.import_module(module), attribute)
        assert issubclass(error, BaseException) and error is not Exception, name


def test_a_commit_whose_success_was_not_heard_is_retried_without_duplicates(lakehouse, monkeypatch):
    lakehouse.run("landing")
    real_commit, calls = commit.commit_staged, []

    def commit_then_lose_the_answer(*args, **kwargs):
        result = real_commit(*args, **kwargs)
        calls.append(result)
        if len(calls) == 1:
            raise CommitFailedError("connection reset after the commit was written")
        return result

    monkeypatch.setattr(commit, "commit_staged", commit_then_lose_the_answer)
    lakehouse.run("bronze", retry={"max_retries": 2, "retry_delay": 0.1})
    files = lakehouse.table("bronze/lineitem")["_source_file"]
    rows_per_file = lakehouse.table("bronze/lineitem").group_by("_source_file").len()
    assert files.n_unique() == len(list((lakehouse.landing / "lineitem").glob("*.csv")))
    expected = {
        p.name: sum(1 for _ in p.open()) - 1 for p in (lakehouse.landing / "lineitem").glob("*.csv")
    }
    got = {Path(f).name: n for f, n in rows_per_file.iter_rows()}
    assert got == expected  # every file once, with all its rows


def test_a_permanent_error_is_not_retried(lakehouse, monkeypatch):
    lakehouse.run("landing")
    attempts = []

    def broken(*args, **kwargs):
        attempts.append(1)
        raise ValueError("a bug, not a glitch")

    monkeypatch.setattr(commit, "commit_staged", broken)
    with pytest.raises(RuntimeError, match="a bug, not a glitch"):
        lakehouse.run("bronze")
    assert len(attempts) == 1
