# The few commands people type. Everything installs into ./.venv from the committed lock
# (uv.lock): the same versions on every machine, no resolver at install time.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# uv installs into $(VENV), keeps what it does not manage (itself), and fails if uv.lock no
# longer matches pyproject.toml (update it with `make lock`, in a commit of its own). It
# compiles the bytecode as it installs: where PYTHONDONTWRITEBYTECODE=1 is set (many
# container images) nothing else would, and every run would compile FlowerPower, Hamilton,
# pandas and the rest from source (status with nothing to do: 2.1 s instead of 0.8 s).
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --locked --inexact --quiet --compile-bytecode
# ...then lakehouse-startup.pth: the `flowerpower` command stops reading every file under the
# project on each run (FlowerPower 0.37 "syncs" the project folder into itself; see
# lakehouse_startup.py). 3-5 s of every run, growing with the lake under data/.
STARTUP := $(BIN)/python -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], 'lakehouse-startup.pth').write_text('import lakehouse_startup\n')"
# FlowerPower's default level (CRITICAL) hides even a broken YAML: show errors and progress.
export FP_LOG_LEVEL ?= INFO

.PHONY: run test test-slow system-deps dags docs install install-dev lock bench lint clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

install: $(BIN)/uv  ## install the project (runtime dependencies only)
	$(SYNC)
	$(STARTUP)

install-dev: $(BIN)/uv  ## install the project with test, lint and docs tools and both cluster executors
	$(SYNC) --extra dev --extra docs --extra dask --extra ray
	$(STARTUP)

lock: $(BIN)/uv  ## re-resolve uv.lock after a change to pyproject.toml's dependencies
	$(BIN)/uv lock

run: install  ## land the next days of demo data and carry them to gold (data/)
	$(BIN)/flowerpower pipeline run daily

# Debian packages the tests use, as tool:package: systemd-analyze (unit files), cron (a real
# cron daemon), graphviz (DAG pictures), PostgreSQL, chromium (renders the HTML report
# headless), node and npm (the YAML language server editors run, tests/editor). Only the
# packages of missing tools are installed (as root), so a Node.js from elsewhere (NodeSource's
# nodejs brings its own npm, which Debian's npm package conflicts with) is kept; else named.
SYSTEM_TOOLS := systemd-analyze:systemd cron:cron dot:graphviz chromium:chromium node:nodejs npm:npm
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing Debian packages:$$missing (install them as root)"; exit 1; fi; \
	fi

# The YAML language server of tests/test_editor.py, from its npm lock (tests/editor).
tests/editor/node_modules: tests/editor/package-lock.json | system-deps
	cd tests/editor && npm ci --no-audit --no-fund --silent

# The default suite on every core (pytest-xdist), a test file per worker at a time: a
# module's fixtures (an end-to-end lake) are built once, not once per worker.
test: install-dev system-deps tests/editor/node_modules  ## the default test suite (under 10 minutes)
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist loadfile --durations=15

test-slow: install-dev system-deps  ## the slow suites (Ray, a real cron daemon); CI runs them too
	$(BIN)/python -m pytest -q -m slow --durations=15

lint: install-dev  ## ruff (rules and format) and mypy on the whole engine (pyproject.toml)
	$(BIN)/ruff check lakehouse pipelines tests bench hooks demo
	$(BIN)/ruff format --check lakehouse pipelines tests bench hooks demo
	$(BIN)/mypy

# mkdocs-material 9.8 prints its end-of-life notice (May 2027; Zensical succeeds it, and
# reads the same mkdocs.yml) on every build: said once here instead.
docs: install-dev  ## build the documentation site into site/ (broken links fail); serve with mkdocs serve
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: install-dev  ## the project against its peers, the daily flow at SF1, the executors (~20 minutes)
	$(BIN)/python bench/bench_peers.py --scale-factor 0.3 --days 365 --rounds 3
	$(BIN)/python bench/bench_snapshots.py --rows 800000 --changed 0.01 --rounds 3
	$(BIN)/python bench/bench_daily.py --scale-factor 1 --days 365
	$(BIN)/python bench/bench_executors.py --scale-factor 0.1
	$(BIN)/python bench/bench_plugins.py --rows 2000000

dags: install system-deps  ## pictures of every pipeline's DAG, and of the data, into docs/dag/
	for name in $$(ls conf/pipelines | sed 's/\.yml$$//'); do \
	  $(BIN)/flowerpower pipeline save-dag $$name --format png --output-path docs/dag/$$name.png || exit 1; \
	done
	CATALOG_DAG=docs/dag/data.png $(BIN)/flowerpower pipeline run catalog > /dev/null

clean:  ## remove the demo lake and landing zone
	rm -rf data
