"""The lease lock of a lake on S3, against a real S3-compatible server (moto) on 127.0.0.1:
one holder at a time, takeover after expiry, a holder that lost its lease never commits, and
runs from two project folders (two "hosts": two local lock folders, one lake)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import s3fs
from deltalake import DeltaTable
from tcp_proxy import TcpProxy
from test_operations import _with_hook
from test_s3 import LAYERS, SECRET, MotoServer, S3Lakehouse, local_reference  # noqa: F401

from lakehouse.coordination import lease, lock
from lakehouse.core import delta, fence, storage
from lakehouse.core.storage import Location


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    yield server
    server.stop()


def _aws(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "lakehouse-test",
        "AWS_SECRET_ACCESS_KEY": "lease-test",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


@pytest.fixture
def lake(moto, monkeypatch):
    for name, value in _aws(f"http://127.0.0.1:{moto.port}").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lease, "SKEW_SECONDS", 0.2)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"lease-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    yield Location.from_uri(f"s3://{bucket}/lake")
    for held in list(fence._held):
        held.release()
    s3fs.S3FileSystem.clear_instance_cache()


def test_one_holder_at_a_time_and_a_released_lease_is_free_at_once(lake):
    first = lease.Lease(lake, "silver", "run-1", seconds=30)
    first.acquire()
    second = lease.Lease(lake, "silver", "run-2", seconds=30)
    with pytest.raises(
        lease.LeaseBusy, match=r"silver is already running \(pid \d+ on .*run run-1"
    ):
        second.acquire()
    lease.Lease(lake, "gold", "run-3", seconds=30).acquire()  # another pipeline: its own lease
    first.release()
    second.acquire()
    assert second.generation == 2


def test_a_run_that_loses_the_race_for_a_free_lease_names_the_winner(lake, monkeypatch):
    first = lease.Lease(lake, "silver", "run-1", seconds=30)
    first.acquire()
    first.release()
    loser = lease.Lease(lake, "silver", "run-loser", seconds=30)
    winner = lease.Lease(lake, "silver", "run-winner", seconds=30)
    read = lease.Lease._read

    def read_then_lose_the_race(self):
        found = read(self)
        if self is loser and not getattr(loser, "_raced", False):
            loser._raced = True
            winner.acquire()  # takes the released lease between the loser's read and write
        return found

    monkeypatch.setattr(lease.Lease, "_read", read_then_lose_the_race)
    with pytest.raises(lease.LeaseBusy) as busy:
        loser.acquire()
    assert "run run-winner" in str(busy.value) and "pid " in str(busy.value)
    assert "took the released lease of run run-1 first" in str(busy.value)


def test_an_expired_lease_is_taken_over_and_its_holder_writes_nothing(lake, tmp_path):
    paused = lease.Lease(lake, "silver", "paused", seconds=1)
    paused.acquire()
    paused._stop.set()  # stands for a process paused (or cut off) past its lease
    table = lake.child("silver", "readings")
    rows = pa.table({"meter": ["M001"]})
    delta.append(table, rows, delta.commit_properties("test", 1, {}, "paused"))
    with pytest.raises(lease.LeaseBusy):
        lease.Lease(lake, "silver", "early", seconds=30).acquire()  # not yet expired
    time.sleep(1.3)
    successor = lease.Lease(lake, "silver", "successor", seconds=30)
    fence.drop(paused)  # the successor runs in another process
    successor.acquire()
    fence.drop(successor)
    fence.hold(paused)
    assert successor.generation == 2
    with pytest.raises(lease.LeaseLost, match="paused lost its lease") as lost:
        delta.append(table, rows, delta.commit_properties("test", 2, {}, "paused"))
    assert "run successor (pid " in str(lost.value) and "holds it now, until" in str(lost.value)
    assert lost.value.exit_code == fence.EXIT_LEASE_LOST
    assert delta.open_table(table).version() == 1  # the commit before the pause only
    commit = delta.open_table(table).history(1)[0]
    assert commit["lakehouse.lease"].endswith("/_locks/silver.json#1")
    landed = lake.child("landing", "late.csv")  # nor a file, local or in the lake
    for target in (landed, Location.from_uri(str(tmp_path / "late.csv"))):
        with pytest.raises(lease.LeaseLost):
            storage.write_bytes_once(target, b"a\n1\n")
        assert not target.exists()
    assert not fence.holds()
    paused.release()  # lost: gives nothing back, stops being checked
    assert fence.holds()


def test_a_stale_holder_never_writes_over_the_ledger_rows_another_run_set(lake):
    from lakehouse.core.runs import Run
    from lakehouse.ops import ledger

    runs = ledger.location(lake.uri)
    paused = Run("silver", "silver-paused", Path("."), {})
    ledger.record_start(runs, paused)
    successor = Run("silver", "silver-successor", Path("."), {})
    ledger.record_start(runs, successor)  # marks the paused run abandoned
    successor.finish("succeeded", outputs={})
    ledger.record_end(runs, successor)
    paused.finish("succeeded", outputs={})  # it wakes and believes it succeeded
    ledger.record_end(runs, paused)  # no lease held here: only the row's guard stops it
    rows = {r["run_id"]: r["status"] for r in ledger.read(runs).to_pylist()}
    assert rows == {"silver-paused": "abandoned", "silver-successor": "succeeded"}
    held = lease.Lease(lake, "silver", "silver-late", seconds=1)
    held.acquire()
    held._stop.set()
    time.sleep(1.2)  # lapsed: the run may not even record its start
    with pytest.raises(lease.LeaseLost, match="nobody took it over yet"):
        ledger.record_start(runs, Run("silver", "silver-late", Path("."), {}))
    late = Run("silver", "silver-late", Path("."), {})
    late.finish("failed", error=RuntimeError("x"))
    ledger.record_end(runs, late)  # says nothing, writes nothing
    assert ledger.read(runs).num_rows == 2
    held.release()


def test_a_lease_taken_over_while_its_holder_renews_is_noticed_by_the_renewal(lake):
    holder = lease.Lease(lake, "gold", "holder", seconds=1)
    holder.acquire()
    holder._stop.set()
    time.sleep(1.3)
    fence.drop(holder)  # the successor runs in another process
    lease.Lease(lake, "gold", "successor", seconds=30).acquire()
    fence.drop(fence._held[-1])
    fence.hold(holder)
    holder.expires_at = time.time() + 30  # as if its clock were behind: only the store knows
    holder.renew()
    assert holder.lost == "another run took the lease over"
    with pytest.raises(lease.LeaseLost):
        holder.check()


def test_the_store_unreachable_during_renewal_stops_the_run_and_the_rerun_goes_on(
    lake, moto, monkeypatch
):
    proxy = TcpProxy(moto.port).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    s3fs.S3FileSystem.clear_instance_cache()
    cut_off = lease.Lease(Location.from_uri(lake.uri), "bronze", "cut-off", seconds=1.5)
    cut_off.acquire()
    proxy.stop()
    deadline = time.time() + 15  # renewals fail (a pooled connection may live a moment)
    with pytest.raises(lease.LeaseLost, match="not renewed before it expired"):
        while time.time() < deadline:
            cut_off.check()
            time.sleep(0.1)
    proxy.start()
    cut_off.release()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{moto.port}")
    s3fs.S3FileSystem.clear_instance_cache()
    # a renewal sent just before the cut may have reached the store with its answer lost:
    # the stored lease can outlive the holder's own view by up to one lease
    time.sleep(1.5 + lease.SKEW_SECONDS + 0.3)
    rerun = lease.Lease(Location.from_uri(lake.uri), "bronze", "rerun", seconds=30)
    rerun.acquire()  # the expired lease is taken over
    assert rerun.generation == 2


# --- whole runs from two project folders ("hosts") against one lake on S3 -------------------


@pytest.fixture
def two_hosts(tmp_path, tpch_cache, moto, monkeypatch):
    endpoint = f"http://127.0.0.1:{moto.port}"
    first = S3Lakehouse(tmp_path / "host-a", tpch_cache, endpoint)
    second = S3Lakehouse(tmp_path / "host-b", tpch_cache, endpoint)
    second.bucket, second.landing, second.lake_uri = first.bucket, first.landing, first.lake_uri
    for name, value in first.aws().items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(first.bucket)
    for house in (first, second):
        house.configure("bronze", settle_seconds=0)
    env = {**os.environ, **first.env(), "LEASE_SECONDS": "3"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "run", "landing"],
        cwd=first.project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return first, second


def _popen(
    house, *arguments: str, lease_seconds: int = 60, env: dict | None = None
) -> subprocess.Popen:
    """A run in its own process; its lease holds ``lease_seconds`` (renewals under a loaded
    machine's scheduling stay well inside a minute)."""
    env = {
        **os.environ, **house.env(), "FP_LOG_LEVEL": "INFO",
        "LEASE_SECONDS": str(lease_seconds), **(env or {}),
    }  # fmt: skip
    command = [str(Path(sys.executable).parent / "flowerpower"), "pipeline", "run", *arguments]
    return subprocess.Popen(
        command, cwd=house.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _bronze(house, lake_uri: str | None = None) -> list:
    """bronze/orders of the shared lake (or of the lake at ``lake_uri``), sorted."""
    uri = f"{lake_uri or house.lake_uri}/bronze/orders"
    table = DeltaTable(uri, storage_options=storage.delta_storage_options(uri))
    frame = pl.from_arrow(table.to_pyarrow_table()).drop("_ingested_at", "_run_id")
    return frame.sort(frame.columns, nulls_last=True).rows()


def _uninterrupted_bronze(house) -> list:
    """bronze/orders of one uninterrupted run over the same landing, into a lake of its own."""
    lake_uri = f"s3://{house.bucket}/uninterrupted-{uuid.uuid4().hex[:8]}"
    _with_hook(house, ["lock", "ledger", "alert"])
    run = _popen(house, "bronze", env={"LAKE_ROOT": lake_uri})
    assert run.wait(timeout=300) == 0, run.stderr.read()
    return _bronze(house, lake_uri)


def _wait_for_lease(house, pipeline: str, run: subprocess.Popen) -> dict:
    """Until ``run`` holds the pipeline's lease (not a released one of an earlier run)."""
    fs = s3fs.S3FileSystem()
    deadline = time.time() + 120
    while time.time() < deadline:
        fs.invalidate_cache()
        path = f"{house.bucket}/lake/_locks/{pipeline}.json"
        holder = json.loads(fs.cat(path)) if fs.exists(path) else {}
        if holder.get("pid") == run.pid and not holder.get("released"):
            return holder
        time.sleep(0.2)
    raise AssertionError("the lease was never taken")


def _has_run(house, pipeline: str) -> bool:
    """Whether the shared ledger holds a row of ``pipeline``."""
    try:
        return house.table("_runs").filter(pl.col("pipeline") == pipeline).height > 0
    except Exception:  # no ledger yet  # noqa: BLE001
        return False


@pytest.mark.slow
def test_ten_launches_from_two_hosts_at_once_exactly_one_works(two_hosts):
    first, second = two_hosts
    for house in two_hosts:
        _with_hook(house, ["lock", "hold", "ledger", "alert"], seconds=20)
    runs = [_popen(house, "bronze") for house in (first, second) * 5]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in outcomes)
    worked = [err for code, err in outcomes if code != lock.EXIT_LOCKED]
    assert codes == [0] + [lock.EXIT_LOCKED] * 9, [err[-3000:] for err in worked]
    refused = [err for code, err in outcomes if code == lock.EXIT_LOCKED]
    assert all("bronze is already running (pid " in err and "lease until" in err for err in refused)
    rows = _bronze(first)
    assert rows == _uninterrupted_bronze(second)  # the tables of one run
    again = _popen(second, "bronze")
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert _bronze(first) == rows  # nothing ingested twice


@pytest.mark.slow
def test_a_killed_holder_is_taken_over_after_the_lease_and_a_paused_one_commits_nothing(
    two_hosts,
):
    first, second = two_hosts
    _with_hook(first, ["lock", "hold", "ledger", "alert"], seconds=60)
    killed = _popen(first, "bronze", lease_seconds=45)
    expires_at = _wait_for_lease(first, "bronze", killed)["expires_at"]
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    refused = _popen(second, "bronze")
    assert refused.wait(timeout=300) == lock.EXIT_LOCKED  # the lease still holds
    time.sleep(max(0.0, expires_at + lease.SKEW_SECONDS + 0.5 - time.time()))
    taker = _popen(second, "bronze")
    assert taker.wait(timeout=300) == 0
    assert "took over the lease of run" in taker.stderr.read()
    rows = _bronze(second)
    assert rows == _uninterrupted_bronze(second)  # every landed order once

    # a holder paused past its lease while another run takes over writes nothing on waking
    landing = first.landing + "/orders/late_orders.csv"
    fs = s3fs.S3FileSystem()
    header = fs.cat(fs.ls(first.landing + "/orders")[0]).decode().splitlines()[0]
    fs.pipe(
        landing,
        (header + "\n" + "999999001,1,O,1.00,1992-01-03,1-URGENT,Clerk#1,0,late\n").encode(),
    )
    _with_hook(first, ["lock", "hold", "ledger", "alert"], seconds=6)
    paused = _popen(first, "bronze", lease_seconds=3)
    _wait_for_lease(first, "bronze", paused)
    time.sleep(1)
    paused.send_signal(signal.SIGSTOP)
    time.sleep(3 + lease.SKEW_SECONDS + 1)
    taker = _popen(second, "bronze")
    assert taker.wait(timeout=300) == 0, taker.stderr.read()
    after_takeover = _bronze(second)
    paused.send_signal(signal.SIGCONT)
    code = paused.wait(timeout=300)
    woke = paused.stderr.read()
    # on waking it finds its lease lost, whether or not it had a commit left to make
    assert "lost its lease" in woke, woke[-3000:]
    assert code == fence.EXIT_LEASE_LOST
    assert _bronze(second) == after_takeover
    assert len(after_takeover) == len(rows) + 1  # the late order, once


@pytest.mark.slow
def test_a_run_cut_off_from_the_store_past_its_lease_stops_and_the_rerun_completes(two_hosts, moto):
    first, second = two_hosts
    proxy = TcpProxy(moto.port).start()
    _with_hook(first, ["lock", "ledger", "hold", "alert"], seconds=20)
    cut = _popen(first, "bronze", lease_seconds=3, env={"AWS_ENDPOINT_URL": proxy.url})
    _wait_for_lease(first, "bronze", cut)
    deadline = time.time() + 60  # its ledger row written: it is in the hold, before any commit
    while not _has_run(first, "bronze") and time.time() < deadline:
        time.sleep(0.2)
    proxy.stop()  # the network to the store goes: renewals fail, the lease runs out
    cut_at = time.time()
    time.sleep(3 + 2)  # past the 3 s lease, renewed at most just before the cut
    proxy.start()  # back before the run's first commit: it must still stop
    code = cut.wait(timeout=300)
    err = cut.stderr.read()
    proxy.stop()
    assert code == fence.EXIT_LEASE_LOST, err[-3000:]
    assert "lost its lease (not renewed before it expired" in err, err[-3000:]
    log = f"{first.bucket}/lake/bronze/orders/_delta_log"  # staged files, but no commit
    assert not s3fs.S3FileSystem().exists(log)
    assert SECRET not in err

    time.sleep(max(0.0, cut_at + 3 + lease.SKEW_SECONDS + 0.5 - time.time()))
    rerun = _popen(second, "bronze")
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    assert "took over the lease of run" in rerun.stderr.read()
    assert _bronze(second) == _uninterrupted_bronze(second)
    statuses = second.table("_runs").filter(pl.col("pipeline") == "bronze")["status"]
    assert sorted(statuses.to_list()) in (["failed", "succeeded"], ["abandoned", "succeeded"])


def _lake_state(house) -> dict[str, object]:
    """What a write would change: every Delta table's newest commit (the ledger's too), every
    lease object, every landing file (by ETag: the same bytes written again compare equal)."""
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    state: dict[str, object] = {}
    for path, info in fs.find(f"{house.bucket}/lake", detail=True).items():
        if "/_delta_log/" in path and path.endswith(".json"):
            table = path.split("/_delta_log/")[0]
            state[table] = max(state.get(table, ""), path.rsplit("/", 1)[-1])
        elif "/_locks/" in path:
            state[path] = info["ETag"]
    for path, info in fs.find(f"{house.bucket}/landing", detail=True).items():
        state[path] = info["ETag"]
    return state


@pytest.mark.slow
@pytest.mark.parametrize("paused_in", ["landing", "bronze", "silver", "gold"])
def test_a_daily_paused_past_its_lease_stops_and_leaves_the_other_hosts_work_alone(
    two_hosts, paused_in
):
    first, second = two_hosts
    earlier = set(first.table("_runs")["run_id"])
    paused = _popen(first, "daily", lease_seconds=4)
    _wait_for_lease(first, paused_in, paused)
    time.sleep(0.3)  # somewhere in that layer's work
    paused.send_signal(signal.SIGSTOP)
    at_pause = {row["run_id"]: row["status"] for row in first.table("_runs").to_dicts()}
    time.sleep(4 + 5 + 1)  # past its lease and the 5 s grace for skewed clocks
    taker = _popen(second, "daily")
    taker_log = taker.communicate(timeout=600)[1]
    assert taker.returncode == 0, taker_log[-3000:]
    assert "took over the lease of run" in taker_log
    finished = _lake_state(first)

    paused.send_signal(signal.SIGCONT)
    code = paused.wait(timeout=300)
    woke = paused.stderr.read()
    assert code == fence.EXIT_LEASE_LOST, woke[-3000:]
    lost = [line for line in woke.splitlines() if "lost its lease" in line]
    assert lost and "_locks/" in lost[0], woke[-3000:]
    assert "holds it now" in lost[0] or "released it" in lost[0], lost[0]
    assert _lake_state(first) == finished  # no commit, ledger row, lease or landing file

    # the runs it had in progress are abandoned, those it had finished stay as they were
    runs = {row["run_id"]: row["status"] for row in first.table("_runs").to_dicts()}
    mine = {run: status for run, status in at_pause.items() if run not in earlier}
    assert "running" in mine.values(), (mine, woke[-3000:])
    expected = {run: "abandoned" if was == "running" else was for run, was in mine.items()}
    assert {run: runs[run] for run in mine} == expected
    theirs = {run: status for run, status in runs.items() if run not in {*earlier, *mine}}
    assert set(theirs.values()) == {"succeeded"} and "daily" in str(theirs), theirs
