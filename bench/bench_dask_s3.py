"""Benchmark: bronze, silver and gold fanned out on a Dask cluster of separate processes, the
lake on S3, against synchronous runs, measured side by side in one session.

A moto S3 server on 127.0.0.1 holds the landing zone and one lake per configuration. The
demo lands ``--days`` days of TPC-H at ``--scale-factor`` once; then, for each
configuration (synchronous; a Dask scheduler with 1 worker; with 2 workers; each worker a
separate ``dask worker`` process with one thread, the storage credentials in its own
environment), bronze, silver and gold run as ``flowerpower pipeline run`` processes into an
empty lake, ``--rounds`` times, alternating configurations. Printed: median seconds of
each layer per configuration and its ratio to synchronous.

    python bench/bench_dask_s3.py --scale-factor 0.1 --days 60 [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIGS = {"synchronous": 0, "dask, 1 worker": 1, "dask, 2 workers": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def project_copy(root: Path) -> Path:
    project = root / "project"
    for folder in ("conf", "pipelines", "hooks"):
        shutil.copytree(
            PROJECT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return project


def set_executor(project: Path, executor: dict) -> None:
    for layer in ("bronze", "silver", "gold"):
        path = project / "conf" / "pipelines" / f"{layer}.yml"
        spec = yaml.safe_load(path.read_text())
        spec["run"]["executor"] = executor
        path.write_text(yaml.safe_dump(spec))


def run(project: Path, env: dict, pipeline: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "flowerpower"), "pipeline", "run", pipeline],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{pipeline} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def start_cluster(project: Path, aws: dict, workers: int) -> tuple[str, list]:
    port = free_port()
    path = {"PYTHONPATH": f"{project}{os.pathsep}{project / 'pipelines'}"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": project}
    processes = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", ":0"], env={**os.environ, **path}, **quiet,
        )
    ]  # fmt: skip
    wait_for(port)
    for i in range(workers):
        processes.append(
            subprocess.Popen(
                [str(BIN / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                 "--name", f"w{i}", "--dashboard-address", ":0", "--host", "127.0.0.1"],
                env={**os.environ, **aws, **path}, **quiet,
            )
        )  # fmt: skip
    time.sleep(3)
    return f"tcp://127.0.0.1:{port}", processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale-factor", type=float, default=0.1)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-dask-s3-"))
    port = free_port()
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    processes: list = []
    try:
        wait_for(port)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        aws = {
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ALLOW_HTTP": "true",
        }  # fmt: skip
        os.environ.update(aws)
        import s3fs

        s3fs.S3FileSystem().mkdir(bucket)
        project = project_copy(root)
        landing_conf = project / "conf" / "pipelines" / "landing.yml"
        spec = yaml.safe_load(landing_conf.read_text())
        spec["run"]["config"].update(scale_factor=args.scale_factor, days_per_run=args.days)
        landing_conf.write_text(yaml.safe_dump(spec))
        base = {
            **os.environ, **aws, "FP_LOG_LEVEL": "WARNING",
            "LANDING_ROOT": f"s3://{bucket}/landing", "TPCH_CACHE_DIR": str(root / "tpch"),
        }  # fmt: skip
        run(project, {**base, "LAKE_ROOT": f"s3://{bucket}/landing-lake"}, "landing")
        times: dict[str, dict[str, list[float]]] = {c: {} for c in CONFIGS}
        for round_ in range(args.rounds):
            for name, workers in CONFIGS.items():
                if workers:
                    address, processes = start_cluster(project, aws, workers)
                    set_executor(project, {"type": "dask", "address": address})
                else:
                    set_executor(project, {"type": "synchronous"})
                env = {**base, "LAKE_ROOT": f"s3://{bucket}/lake-{round_}-{workers}"}
                for layer in ("bronze", "silver", "gold"):
                    times[name].setdefault(layer, []).append(run(project, env, layer))
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait()
                processes = []
                print(f"round {round_ + 1}, {name}: " + ", ".join(
                    f"{layer} {seconds[-1]:.1f} s" for layer, seconds in times[name].items()
                ), flush=True)  # fmt: skip
        print(
            f"\nTPC-H SF {args.scale_factor}, {args.days} days on S3 (moto, 127.0.0.1), "
            f"medians of {args.rounds} rounds, each run a flowerpower process:\n"
        )
        layers = ("bronze", "silver", "gold")
        columns = " | ".join(
            [f"{layer} s" for layer in layers] + [f"{layer} vs sync" for layer in layers]
        )
        print(f"| configuration | {columns} |")
        print("| --- |" + " ---: |" * 2 * len(layers))
        sync = {layer: statistics.median(t) for layer, t in times["synchronous"].items()}
        for name in CONFIGS:
            med = {layer: statistics.median(t) for layer, t in times[name].items()}
            cells = [f"{med[layer]:.1f}" for layer in layers]
            cells += [f"{med[layer] / sync[layer]:.2f}x" for layer in layers]
            print(f"| {name} | " + " | ".join(cells) + " |")
    finally:
        for process in processes:
            process.terminate()
        moto.terminate()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
