# The few commands people type. Everything installs into ./.venv from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# FlowerPower's default level (CRITICAL) hides even a broken YAML: show errors and progress.
export FP_LOG_LEVEL ?= INFO

.PHONY: run test test-slow install install-dev bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python  ## install the project (runtime dependencies only)
	$(BIN)/python -m pip install --quiet -e .

install-dev: $(BIN)/python  ## install the project with test and lint tools and both cluster executors
	$(BIN)/python -m pip install --quiet -e '.[dev,dask,ray]'

run: install  ## land the next days of demo data and carry them to gold (data/)
	$(BIN)/flowerpower pipeline run daily

test: install-dev  ## the default test suite (under 10 minutes)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install-dev  ## the slow suites (Ray); CI runs them after the default suite
	$(BIN)/python -m pytest -q -m slow

lint: install-dev
	$(BIN)/ruff check lakehouse pipelines tests bench

bench: install-dev  ## TPC-H SF1 benchmark of the daily flow, then the executors (several minutes)
	$(BIN)/python bench/bench_daily.py --scale-factor 1 --days 365
	$(BIN)/python bench/bench_executors.py --scale-factor 0.1

clean:  ## remove the demo lake and landing zone
	rm -rf data
