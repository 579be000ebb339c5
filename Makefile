# The few commands people type. Everything installs into ./.venv from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# FlowerPower's default level (CRITICAL) hides even a broken YAML: show errors and progress.
export FP_LOG_LEVEL ?= INFO

.PHONY: run test test-all install install-dev bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python  ## install the project (runtime dependencies only)
	$(BIN)/python -m pip install --quiet -e .

install-dev: $(BIN)/python  ## install the project with test and lint tools
	$(BIN)/python -m pip install --quiet -e '.[dev]'

run: install  ## land the next days of demo data and carry them to gold (data/)
	$(BIN)/flowerpower pipeline run daily

test: install-dev  ## the default test suite (what CI runs)
	$(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check lakehouse pipelines tests bench

bench: install  ## TPC-H SF1 benchmark of the daily flow (several minutes)
	$(BIN)/python bench/bench_daily.py --scale-factor 1 --days 365

clean:  ## remove the demo lake and landing zone
	rm -rf data
