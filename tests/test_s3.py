"""The whole lake on S3: a real S3-compatible server (moto) on 127.0.0.1, reached directly or
through a proxy that the tests stop, start, or make drop the If-None-Match header."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import s3fs
import yaml
from conftest import Lakehouse, sandbox
from deltalake import DeltaTable, write_deltalake
from tcp_proxy import TcpProxy
from test_executors import _rows

from lakehouse.core import storage

SECRET = f"s3cr3t-{uuid.uuid4().hex}"  # moto accepts any key: this one must never be printed
LAYERS = json.dumps({"layers": ["bronze", "silver", "gold"], "project_dir": "."})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's S3 server in a process of its own (delta-rs holds the GIL while it waits for a
    reply, so a server thread inside the test process could never answer it)."""

    def __init__(self) -> None:
        self.port = _free_port()
        command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    yield server
    server.stop()


class S3Lakehouse(Lakehouse):
    """A sandbox project whose landing zone and lake are in a bucket of the moto server."""

    def __init__(self, root: Path, tpch_cache: Path, endpoint: str):
        super().__init__(root, tpch_cache)
        self.bucket = f"lake-{uuid.uuid4().hex[:12]}"
        self.endpoint = endpoint
        self.landing = f"s3://{self.bucket}/landing"
        self.lake_uri = f"s3://{self.bucket}/lake"

    def aws(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "lakehouse-test",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def env(self) -> dict[str, str]:
        return {
            "LANDING_ROOT": self.landing,
            "LAKE_ROOT": self.lake_uri,
            "TPCH_CACHE_DIR": str(self.tpch_cache),
            **self.aws(),
        }

    def table(self, name: str) -> pl.DataFrame:
        uri = f"{self.lake_uri}/{name}"
        return pl.from_arrow(
            DeltaTable(uri, storage_options=storage.delta_storage_options(uri)).to_pyarrow_table()
        )


@pytest.fixture
def s3_lakehouse(tmp_path, tpch_cache, moto, monkeypatch):
    house = S3Lakehouse(tmp_path, tpch_cache, f"http://127.0.0.1:{moto.port}")
    for name, value in house.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(house.project)
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(house.bucket)
    yield house
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, tpch_cache):
    """The same days on the local disk: landing once, then bronze, silver, gold (twice)."""
    with sandbox(tmp_path_factory.mktemp("local"), tpch_cache) as house:
        house.run("landing")
        house.run("daily", config=json.loads(LAYERS))
        house.run("daily", config=json.loads(LAYERS))
        return _rows(house)


@pytest.mark.slow
def test_daily_on_s3_gives_the_tables_of_a_local_run(s3_lakehouse, local_reference):
    s3_lakehouse.run("landing")
    done = s3_lakehouse.cli("daily", "--config", LAYERS)
    assert done.returncode == 0, done.stderr
    s3_lakehouse.run("daily", config=json.loads(LAYERS))  # nothing new: nothing changes
    assert _rows(s3_lakehouse) == local_reference
    runs = s3_lakehouse.table("_runs")
    assert set(runs["status"]) == {"succeeded"} and runs.height == 1 + 8  # landing, 2x(daily+3)
    assert s3_lakehouse.table("_quarantine/lineitem").height > 0
    status = s3_lakehouse.cli("status")
    assert status.returncode == 0, status.stderr
    assert "gold/daily_revenue" in status.stdout
    maintained = s3_lakehouse.cli("maintenance")
    assert maintained.returncode == 0, maintained.stderr
    assert "bronze/orders" in maintained.stdout
    assert _rows(s3_lakehouse) == local_reference  # compaction and vacuum change no row
    output = [done, status, maintained]
    assert SECRET not in "".join(d.stdout + d.stderr for d in output)


WRITER = """
import sys, pyarrow as pa
from deltalake import write_deltalake
from lakehouse.core import storage
uri, name = sys.argv[1], sys.argv[2]
for i in range(15):
    table = pa.table({"writer": [name], "i": [i]})
    write_deltalake(uri, table, mode="append", storage_options=storage.delta_storage_options(uri))
"""


@pytest.mark.slow
def test_an_s3_listing_is_fsspecs_cut_down_over_several_pages(s3_lakehouse):
    """Bronze lists an S3 prefix page by page, keeping a ``Listed`` per file and none of
    s3fs's dicts (``lakehouse.io.listing``): the files and fingerprints of fsspec's ``ls``."""
    from lakehouse.io.listing import files_in
    from lakehouse.layers.bronze.landing_files import fingerprint, fingerprint_of

    fs = s3fs.S3FileSystem()
    prefix = f"{s3_lakehouse.bucket}/landing/exports"
    objects = {f"{prefix}/part_{n:05d}.csv": b"a,b\n" * (n % 7) for n in range(1_203)}
    objects[f"{prefix}/nested/inner.csv"] = b"a\n"  # a folder: not a file of the prefix
    fs.pipe(objects)
    listed = {entry.path: entry for entry in files_in(fs, f"s3://{prefix}")}
    assert not fs.dircache  # nothing of the listing kept by s3fs
    expected = {i["name"]: i for i in fs.ls(prefix, detail=True) if i["type"] == "file"}
    assert len(listed) == 1_203 and sorted(listed) == sorted(expected)
    for path, entry in listed.items():
        assert entry.size == expected[path]["size"]
        assert fingerprint_of(entry.size, entry.version) == fingerprint(expected[path])


@pytest.mark.slow
def test_two_concurrent_writers_lose_no_commits(s3_lakehouse):
    uri = f"{s3_lakehouse.lake_uri}/contended"
    options = storage.delta_storage_options(uri)
    # The table exists first: two runs never create one table at once (creating it twice is
    # a real conflict; one creator fails with "Metadata changed since last commit").
    write_deltalake(uri, pa.table({"writer": ["setup"], "i": [0]}), storage_options=options)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, name], env={**os.environ, **s3_lakehouse.env()}
        )
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    table = DeltaTable(uri, storage_options=options)
    rows = pl.from_arrow(table.to_pyarrow_table()).filter(pl.col("writer") != "setup")
    assert rows.height == 30
    assert rows.group_by("writer").len().sort("writer")["len"].to_list() == [15, 15]
    assert table.version() == 30  # every commit a version of its own, none overwritten


def test_a_store_that_ignores_conditional_puts_is_refused_before_any_write(
    s3_lakehouse, moto, monkeypatch
):
    deaf = TcpProxy(moto.port, rewrite=(b"If-None-Match", b"X-No-Such-Hdr")).start()
    s3_lakehouse.endpoint = deaf.url  # the store as the pipelines see it
    s3fs.S3FileSystem.clear_instance_cache()
    done = s3_lakehouse.cli("landing")
    assert done.returncode == 1
    assert "the store accepted a second conditional PUT (If-None-Match: *)" in done.stderr
    deaf.stop()
    s3fs.S3FileSystem.clear_instance_cache()
    assert s3fs.S3FileSystem().find(s3_lakehouse.bucket) == []  # not a landing file, no table


@pytest.mark.slow
def test_a_store_that_goes_away_mid_run_fails_or_retries_cleanly(
    s3_lakehouse, local_reference, moto, monkeypatch
):
    s3_lakehouse.run("landing")
    proxy = TcpProxy(moto.port).start()
    run = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "flowerpower"),
            "pipeline",
            "run",
            "daily",
            "--config",
            LAYERS,
        ],
        cwd=s3_lakehouse.project,
        env={
            **os.environ,
            **s3_lakehouse.env(),
            "AWS_ENDPOINT_URL": proxy.url,
            "FP_LOG_LEVEL": "INFO",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = _read_until(run.stderr, "] bronze: ", timeout=180)  # the lease is held, bronze runs
    proxy.stop()
    time.sleep(5)
    proxy.start()
    out, rest = run.communicate(timeout=600)
    err += rest
    first = run.returncode
    done = s3_lakehouse.cli("daily", "--config", LAYERS)  # the rerun
    assert done.returncode == 0, done.stderr
    proxy.stop()
    assert _rows(s3_lakehouse) == local_reference  # exactly once: no partial or doubled data
    assert SECRET not in out + err + done.stdout + done.stderr
    statuses = s3_lakehouse.table("_runs")["status"].to_list()
    # a failure is recorded as failed, or as abandoned by the rerun when the store was still
    # away as the run ended; never left running
    assert "succeeded" in statuses and "running" not in statuses
    assert first == 0 or {"failed", "abandoned"} & set(statuses), err[-3000:]


def _read_until(stream, text: str, timeout: float) -> str:
    """Lines of a child's stream up to and including the first that holds text."""
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in stream:
            seen.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"no line with {text!r} in {timeout} s:\n{''.join(seen)[-3000:]}"
    return "".join(seen)


@pytest.mark.slow
def test_the_secret_key_is_in_no_log_line_and_no_ledger_row(s3_lakehouse, moto, monkeypatch):
    done = [s3_lakehouse.cli("landing", "--log-level", "DEBUG")]
    direct = s3_lakehouse.endpoint
    s3_lakehouse.endpoint = TcpProxy(moto.port).url  # never started: nothing listens there
    done.append(s3_lakehouse.cli("bronze", "--log-level", "DEBUG"))
    assert done[0].returncode == 0 and done[1].returncode == 1
    s3fs.S3FileSystem.clear_instance_cache()
    assert s3fs.S3FileSystem().find(f"{s3_lakehouse.bucket}/lake/bronze") == []  # as it was
    text = "".join(d.stdout + d.stderr for d in done)
    assert s3_lakehouse.bucket in text  # the logs do talk about the store
    assert SECRET not in text
    s3_lakehouse.endpoint = direct
    runs = s3_lakehouse.table("_runs")
    assert SECRET not in json.dumps(runs.rows(), default=str)


# --- the daily flow on a cluster started as separate processes, the lake on S3 -------------


def _daily_on_a_cluster(house, executor: dict, start_cluster, expected_log: str, reference):
    """Point bronze, silver and gold at a cluster started as separate commands (as on other
    hosts), run landing once and the layers twice, and compare the tables with a local
    run's; silver's batches were prepared in the cluster's processes, not the driver."""
    for layer in ("bronze", "silver", "gold"):
        path = house.project / "conf" / "pipelines" / f"{layer}.yml"
        spec = yaml.safe_load(path.read_text())
        spec["run"]["executor"] = executor
        path.write_text(yaml.safe_dump(spec))
    # the workers get the storage credentials from their own environment, as on other hosts
    project_path = {"PYTHONPATH": f"{house.project}{os.pathsep}{house.project / 'pipelines'}"}
    cluster = start_cluster(
        worker_env={**os.environ, **house.aws(), **project_path},
        scheduler_env={**os.environ, **project_path},  # no storage credentials
    )
    try:
        events = house.root / "lineage.jsonl"
        env = {
            **os.environ, **house.env(), "FP_LOG_LEVEL": "INFO",
            "LINEAGE_TRANSPORT": "file", "LINEAGE_FILE": str(events),
        }  # fmt: skip
        flowerpower = [str(BIN / "flowerpower"), "pipeline", "run"]
        landing = subprocess.run(
            [*flowerpower, "landing"], cwd=house.project, env=env, capture_output=True, text=True
        )
        assert landing.returncode == 0, landing.stderr
        outputs = []
        for _ in range(2):  # as local_reference: landing once, the layers twice
            done = subprocess.run(
                [*flowerpower, "daily", "--config", LAYERS],
                cwd=house.project, env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            outputs.append(done.stdout + done.stderr)
        assert expected_log in outputs[0], outputs[0][-3000:]
        prepared = re.findall(r"silver: \d+ batches prepared in .*", outputs[0])
        assert prepared and "(the driver)" not in prepared[0], prepared
        assert _rows(house) == reference
        assert not any(SECRET in text for text in outputs)
        ledger = house.table("_runs")
        assert ledger.height == 1 + 2 * 4 and set(ledger["status"]) == {"succeeded"}
        assert SECRET not in ledger.write_csv()  # no secret in any ledger row
        lineage = events.read_text()
        assert lineage.count('"eventType": "COMPLETE"') == ledger.height
        assert SECRET not in lineage  # nor in any lineage event
    finally:
        for process in reversed(cluster):
            process.terminate()
        for process in cluster:
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()


BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_daily_on_a_dask_cluster_of_separate_processes_over_s3_equals_a_local_run(
    s3_lakehouse, local_reference
):
    address = f"tcp://127.0.0.1:{_free_port()}"

    def start_cluster(worker_env, scheduler_env):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        port = address.rsplit(":", 1)[1]
        cluster = [
            subprocess.Popen(
                [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port,
                 "--dashboard-address", ":0"],
                cwd=s3_lakehouse.project, env=scheduler_env, **quiet,
            )  # it unpickles the task graphs: the project importable
        ]  # fmt: skip
        for name in ("worker-1", "worker-2"):
            cluster.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--name", name,
                     "--host", "127.0.0.1", "--dashboard-address", ":0"],
                    cwd=s3_lakehouse.project, env=worker_env, **quiet,
                )
            )  # fmt: skip
        return cluster

    _daily_on_a_cluster(
        s3_lakehouse,
        {"type": "dask", "address": address},
        start_cluster,
        f"dask: 2 workers at {address}",
        local_reference,
    )


@pytest.mark.slow
def test_daily_on_a_ray_head_and_worker_started_with_ray_start_over_s3_equals_a_local_run(
    s3_lakehouse, local_reference, tmp_path_factory
):
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
    ray_env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def start_cluster(worker_env, scheduler_env):
        # --block keeps each node in the foreground; SIGTERM drains and stops it
        node = [str(BIN / "ray"), "start", "--block", "--node-ip-address", "127.0.0.1",
                "--num-cpus", "1", "--disable-usage-stats"]  # fmt: skip
        log = tmp_path_factory.mktemp("ray-logs")
        head = subprocess.Popen(
            [*node, "--head", "--port", str(port), "--include-dashboard", "false",
             "--temp-dir", temp_dir],
            cwd=s3_lakehouse.project, env={**worker_env, **ray_env},
            stdout=(log / "head.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip  # the head runs tasks too: it gets what a worker gets
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        worker = subprocess.Popen(
            [*node, "--address", f"127.0.0.1:{port}"],
            cwd=s3_lakehouse.project, env={**worker_env, **ray_env},
            stdout=(log / "worker.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_for_ray_nodes(f"127.0.0.1:{port}", 2, {**worker_env, **ray_env})
        return [head, worker]

    try:
        _daily_on_a_cluster(
            s3_lakehouse,
            {"type": "ray", "address": f"127.0.0.1:{port}"},
            start_cluster,
            f"ray: 2 nodes, 2 CPUs at 127.0.0.1:{port}",
            local_reference,
        )
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_ray_nodes(address: str, nodes: int, env: dict, timeout: float = 240) -> None:
    """Until the cluster at ``address`` has ``nodes`` live nodes (a node's ``ray start``
    returns before the head has registered it)."""
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "sys.exit(0 if sum(n['Alive'] for n in ray.nodes()) >= int(sys.argv[2]) else 1)"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", probe, address, str(nodes)],
            env=env, capture_output=True, timeout=120,
        )  # fmt: skip
        if done.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} has not {nodes} nodes after {timeout} s")
