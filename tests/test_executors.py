"""Every executor from YAML or the command line: the same tables, servers on loopback only,
and a misconfigured executor stopped before anything is written."""

from __future__ import annotations

import socket
import sys
import threading
import time

import polars as pl
import psutil
import pytest
import yaml
from conftest import sandbox
from deltalake import DeltaTable

from lakehouse.runtime import clusters, executors

TABLES = [
    "bronze/orders",
    "bronze/lineitem",
    "bronze/customer",
    "silver/orders",
    "silver/lineitem",
    "silver/customer",
    "_quarantine/orders",
    "_quarantine/lineitem",
    "gold/daily_revenue",
    "gold/pricing_summary",
    "gold/customer_value",
]
# Columns that differ between two lakes by design: run ids and times, and the quarantine
# row key (a hash that includes the landing file's path).
PER_RUN = ("_ingested_at", "_run_id", "run_id", "quarantined_at", "row_key")
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _rows(lakehouse) -> dict[str, list[tuple]]:
    """Every table's rows without per-run columns, in a stable order."""
    rows = {}
    for name in TABLES:
        frame = lakehouse.table(name).drop(*PER_RUN, strict=False)
        files = [c for c in frame.columns if "source_file" in c]  # each lake's own landing
        landing = f"{lakehouse.landing}/"
        frame = frame.with_columns(pl.col(files).str.replace(landing, "", literal=True))
        frame = frame.select(sorted(frame.columns))
        rows[name] = frame.sort(frame.columns, nulls_last=True).rows()
    return rows


def _versions(lakehouse) -> dict[str, int]:
    """Every data table's version (the run ledger, ``_runs``, records failed runs too)."""
    return {
        path.parent.parent.relative_to(lakehouse.lake).as_posix(): DeltaTable(
            str(path.parent.parent)
        ).version()
        for path in lakehouse.lake.glob("*/*/_delta_log/00000000000000000000.json")
    }


class ListeningSockets:
    """Every listening socket of this process and its children, sampled while a block runs."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()
        self._stop = threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        pids = {me.pid} | {child.pid for child in me.children(recursive=True)}
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
                try:
                    name = psutil.Process(conn.pid).name()
                except psutil.Error:
                    name = "?"
                self.seen.add((name, conn.laddr.ip, conn.laddr.port))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.2)

    def __enter__(self) -> ListeningSockets:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def not_loopback(self) -> list[tuple[str, str, int]]:
        return sorted(s for s in self.seen if s[1] not in LOOPBACK)


def _daily_twice(lakehouse, executor) -> None:
    inputs = {} if executor is None else {"executor": executor}
    for _ in range(2):
        lakehouse.run("daily", inputs=inputs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tpch_cache):
    """Two daily runs with every task inline in the driver."""
    with sandbox(tmp_path_factory.mktemp("reference"), tpch_cache) as house:
        house.configure("landing", defect_rate=0.05)
        _daily_twice(house, "synchronous")
        return _rows(house)


EXECUTORS = [
    pytest.param(None, id="each-layer-yaml", marks=pytest.mark.slow),
    pytest.param({"type": "threadpool", "max_workers": 3}, id="threadpool", marks=pytest.mark.slow),
    pytest.param(
        {"type": "processpool", "max_workers": 2}, id="processpool", marks=pytest.mark.slow
    ),
    pytest.param({"type": "dask", "max_workers": 2}, id="dask", marks=pytest.mark.slow),
    pytest.param({"type": "ray", "num_cpus": 2}, id="ray", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_daily_gives_the_same_tables_on_every_executor(lakehouse, reference, executor, monkeypatch):
    lakehouse.configure("landing", defect_rate=0.05)
    lakehouse.configure("gold", partitions_per_task=2, keys_per_task=10)  # many gold tasks
    started = []  # the executors FlowerPower's runner got from lakehouse.runtime.executors
    real_start = executors.start
    monkeypatch.setattr(
        executors,
        "start",
        lambda spec, modules: started.append(spec.type) or real_start(spec, modules),
    )
    with ListeningSockets() as sockets:
        _daily_twice(lakehouse, executor)
    assert _rows(lakehouse) == reference
    expected = _yaml_executor_types(lakehouse) if executor is None else {executor["type"]}
    # only the layers with tasks to distribute start an executor: bronze, silver, gold, twice
    assert len(started) == 3 * 2
    assert set(started) == expected
    if executor and executor["type"] in ("dask", "ray"):
        assert sockets.seen, "no server of the cluster was seen listening"
        assert sockets.not_loopback() == []


def _yaml_executor_types(lakehouse) -> set[str]:
    folder = lakehouse.project / "conf" / "pipelines"
    return {
        yaml.safe_load((folder / f"{layer}.yml").read_text())["run"]["executor"]["type"]
        for layer in ("bronze", "silver", "gold")
    }


@pytest.mark.slow
def test_the_command_line_executor_is_the_one_that_runs(lakehouse):
    """``--executor`` reaches the runner built here (not FlowerPower's fallback); the YAML's
    keys for another type are reported as unused, not silently dropped."""
    assert lakehouse.cli("landing").returncode == 0
    done = lakehouse.cli("bronze", "--executor", "dask", "--executor-max-workers", "3")
    assert done.returncode == 0, done.stderr
    assert "bronze: tasks run on dask(max_workers=3)" in done.stderr
    assert "dask: 3 workers at tcp://127.0.0.1:" in done.stderr
    assert "max_workers belong to 'threadpool', not used with --executor dask" in done.stderr
    assert lakehouse.table("bronze/orders").height > 0


def test_the_command_line_executor_given_to_daily_reaches_every_layer(lakehouse):
    lakehouse.configure("daily", layers=["landing", "bronze"])
    done = lakehouse.cli("daily", "--executor", "threadpool", "--executor-max-workers", "1")
    assert done.returncode == 0, done.stderr
    assert (
        "daily: the pipelines it runs use threadpool(max_workers=1) (command line)" in done.stderr
    )
    runs = lakehouse.table("_runs")
    executors = dict(zip(runs["pipeline"], runs["executor"], strict=True))
    assert executors["bronze"] == "threadpool(max_workers=1)"  # its YAML says 2
    assert lakehouse.table("bronze/orders").height > 0


def _bad_executor(lakehouse, executor: dict) -> None:
    path = lakehouse.project / "conf" / "pipelines" / "bronze.yml"
    spec = yaml.safe_load(path.read_text())
    spec["run"]["executor"] = executor
    path.write_text(yaml.safe_dump(spec))


@pytest.fixture
def landed(lakehouse):
    """Bronze has ingested a day; the next days wait in landing, so a run would write."""
    lakehouse.run("landing")
    lakehouse.run("bronze")
    lakehouse.run("landing")
    return lakehouse


def _error_before_any_write(lakehouse, pipeline: str, **kwargs) -> Exception:
    """Run ``pipeline``, expect it to fail, check no table changed; the original error."""
    before = _versions(lakehouse)
    with pytest.raises(Exception) as failure:
        lakehouse.run(pipeline, **kwargs)
    assert _versions(lakehouse) == before
    return failure.value.__cause__ or failure.value


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MISCONFIGURED = [
    pytest.param(
        {"type": "sparky"},
        "bronze.yml run.executor.type: 'sparky' is not an executor type "
        "(known: synchronous, threadpool, processpool, dask, ray)",
        id="unknown-type",
    ),
    pytest.param(
        {"type": "dask", "adress": "tcp://127.0.0.1:8786"},
        "bronze.yml run.executor.adress: unknown executor key; did you mean 'address'?",
        id="misspelled-key",
    ),
    pytest.param(
        {"type": "threadpool", "max_workers": 2, "address": "tcp://127.0.0.1:8786"},
        "bronze.yml run.executor.address: not used by the threadpool executor (only by dask, ray)",
        id="key-of-another-type",
    ),
    pytest.param(
        {"type": "processpool", "max_workers": 0},
        "bronze.yml run.executor.max_workers: 0 is not a positive integer",
        id="zero-workers",
    ),
    pytest.param(
        {"type": "dask", "address": "tcp://127.0.0.1:{port}"},
        "bronze.yml run.executor: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}",
        id="unreachable-dask",
    ),
    pytest.param(
        {"type": "ray", "address": "127.0.0.1:{port}"},
        "bronze.yml run.executor: cannot reach the ray cluster at 127.0.0.1:{port}",
        id="unreachable-ray",
    ),
]


@pytest.mark.parametrize("executor, message", MISCONFIGURED)
def test_a_misconfigured_executor_fails_before_any_write(landed, monkeypatch, executor, message):
    monkeypatch.setattr(clusters, "CONNECT_TIMEOUT_SECONDS", 2)
    port = _closed_port()
    executor = {k: v.format(port=port) if isinstance(v, str) else v for k, v in executor.items()}
    _bad_executor(landed, executor)
    error = _error_before_any_write(landed, "bronze")
    assert isinstance(error, executors.ExecutorError)
    assert message.format(port=port) in str(error)


def test_a_missing_executor_package_is_named_not_replaced(landed, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    _bad_executor(landed, {"type": "ray"})
    error = _error_before_any_write(landed, "bronze")
    assert "the ray executor needs the 'ray' package, which is not installed" in str(error)
    assert "pip install -e '.[ray]'" in str(error)


def test_an_unknown_executor_on_the_command_line_writes_nothing(landed):
    before = _versions(landed)
    done = landed.cli("bronze", "--executor", "sparky")
    assert done.returncode != 0
    assert "sparky" in done.stderr
    assert _versions(landed) == before


def test_daily_rejects_a_bad_executor_input_before_running_a_layer(landed):
    executor = {"type": "dask", "num_cpus": 2}
    error = _error_before_any_write(landed, "daily", inputs={"executor": executor})
    expected = "daily --inputs executor.num_cpus: not used by the dask executor (only by ray)"
    assert expected in str(error)
