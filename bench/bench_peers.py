"""Benchmark: the project against its peers on the same landing files, side by side.

Lands TPC-H (``--scale-factor``, ``--days`` daily drops with monthly dimension snapshots)
once, then times in alternation, ``--rounds`` times each:

* the project: ``flowerpower pipeline run daily`` (bronze, silver, gold, publish) on an empty
  lake: the backfill; each layer's seconds come from the run's own summary;
* dbt-duckdb: ``dbt run`` of ``bench/peers/dbt`` (the same three marts from the same files,
  staging typed, validated and deduplicated as silver is), in its own virtual environment
  ``bench/peers/.venv``, installed here from ``bench/peers/requirements.txt``;
* the hand script: ``bench/peers/hand.py``, the same SQL run by DuckDB alone.

Then one more day is landed: the project runs it incrementally (on a copy of the backfilled
lake each round) while the peers rebuild everything; then the project runs with nothing
left to do (``daily``, then each layer's pipeline alone), gold's audit of every mart (each
mart's seconds printed), and ``status`` (the cheapest pipeline) against
``python -c 'import duckdb'``.
Every figure is wall time of a child process (interpreter start included) and its peak
memory (max RSS). Before printing, the marts of all three are checked equal.

    python bench/bench_peers.py --scale-factor 0.3 --days 365 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
from bench_daily import PROJECT, layer_config, run_layer
from deltalake import DeltaTable

PEERS = PROJECT / "bench" / "peers"
PEER_VENV = PEERS / ".venv"
BIN = Path(sys.executable).parent
LAYERS = ["bronze", "silver", "gold", "publish"]
MARTS = {
    "daily_revenue": ["order_date", "nation", "market_segment"],
    "pricing_summary": ["ship_month", "l_returnflag", "l_linestatus"],
    "customer_value": ["c_custkey"],
}
# daily's summary: one line per layer, its seconds last
SUMMARY_LINE = re.compile(r"^  (\w+)(?:\s+[\d,]+){5}\s+([\d.]+)$", re.MULTILINE)
# an audit's summary: one line per mart, the seconds its parts took to recompute
AUDIT_LINE = re.compile(r"^  audit gold/(\w+): equal .* recomputed in ([\d.]+) s\)$", re.MULTILINE)


def install_peers() -> None:
    """dbt-duckdb into bench/peers/.venv from its pinned requirements (once)."""
    dbt = PEER_VENV / "bin" / "dbt"
    if dbt.exists():
        return
    print("installing dbt-duckdb into bench/peers/.venv ...", flush=True)
    uv = BIN / "uv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, PEER_VENV], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "-r", PEERS / "requirements.txt"],
        check=True,
        env={**os.environ, "VIRTUAL_ENV": str(PEER_VENV)},
    )


# Starts the command from a small process and reports its peak memory: a child forked from
# this script would count this script's own memory (Polars, DuckDB loaded) in its max RSS.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(os.environ["BENCH_PEAK"], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(command: list, env: dict, cwd: Path = PROJECT) -> dict:
    """Run ``command``: its wall seconds, peak memory (max RSS) and output (kept in a file,
    not a pipe: a full pipe would stall the child). Exits on failure."""
    log, peak = Path(env["BENCH_LOG"]), Path(env["BENCH_PEAK"])
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(
            [sys.executable, "-S", "-c", LAUNCHER, *map(str, command)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    seconds = time.perf_counter() - started
    text = log.read_text()
    if code != 0:
        sys.exit(f"{' '.join(map(str, command[:5]))} failed:\n{text[-4000:]}")
    return {"seconds": seconds, "peak_mb": int(peak.read_text()) / 1024, "out": text}


class Bench:
    def __init__(self, work: Path, scale_factor: float):
        self.work, self.scale_factor = work, scale_factor
        self.landing, self.lake = work / "landing", work / "lake"
        self.env = {
            **os.environ,
            "FP_LOG_LEVEL": "WARNING",
            "HAMILTON_AUTOLOAD_EXTENSIONS": "0",
            "LANDING_ROOT": str(self.landing),
            "LAKE_ROOT": str(self.lake),
            "MARTS_DUCKDB": str(work / "project.duckdb"),
            "LOCK_DIR": str(work / "locks"),  # not the project's: a run of its own may be going
            "BENCH_LOG": str(work / "child.log"),
            "BENCH_PEAK": str(work / "child.peak"),
            "PEER_DUCKDB": str(work / "dbt.duckdb"),
            "DBT_TARGET_PATH": str(work / "dbt_target"),
            "DBT_LOG_PATH": str(work / "dbt_logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }

    def land(self, days: int) -> None:
        config = layer_config(
            "landing",
            landing_root=str(self.landing),
            tpch_cache_dir=str(self.work.parent / "tpch"),
            scale_factor=self.scale_factor,
            days_per_run=days,
        )
        run_layer("landing", config, self.env)

    def project(self, layers: list[str] = LAYERS) -> dict:
        """``daily`` over ``layers``: wall time, peak memory, and each layer's seconds."""
        command = [
            BIN / "flowerpower",
            "pipeline",
            "run",
            "daily",
            "--config",
            f'{{"layers": {layers!r}, "project_dir": "."}}'.replace("'", '"'),
        ]
        result = measured(command, self.env)
        result["layers"] = {name: float(s) for name, s in SUMMARY_LINE.findall(result["out"])}
        return result

    def dbt(self) -> dict:
        Path(self.env["PEER_DUCKDB"]).unlink(missing_ok=True)
        dbt = PEER_VENV / "bin" / "dbt"
        return measured(
            [dbt, "run", "--profiles-dir", ".", "--project-dir", "."], self.env, cwd=PEERS / "dbt"
        )

    def hand(self) -> dict:
        return measured(
            [sys.executable, PEERS / "hand.py", self.landing, self.work / "hand.duckdb"], self.env
        )

    def contenders(self) -> tuple:
        """(name, run) of the three, in the order each round times them."""
        return (("project", self.project), ("dbt-duckdb", self.dbt), ("hand", self.hand))

    def fresh_lake(self, copy_of: Path | None = None) -> None:
        shutil.rmtree(self.lake, ignore_errors=True)
        if copy_of is not None:
            shutil.copytree(copy_of, self.lake)


def marts_of_duckdb(path: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {m: pl.from_arrow(con.sql(f"SELECT * FROM {m}").to_arrow_table()) for m in MARTS}


def marts_of_lake(lake: Path) -> dict[str, pl.DataFrame]:
    return {m: pl.from_arrow(DeltaTable(str(lake / "gold" / m)).to_pyarrow_table()) for m in MARTS}


def differences(expected: dict, actual: dict, who: str) -> list[str]:
    """Where ``actual``'s marts differ from ``expected``'s: rows, then every value (floats
    to 1e-9, the order of a float sum being free)."""
    found = []
    for mart, keys in MARTS.items():
        want, got = expected[mart], actual[mart]
        got = got.select(want.columns).sort(keys)
        want = want.sort(keys)
        if want.height != got.height:
            found.append(f"{who} {mart}: {got.height} rows, expected {want.height}")
            continue
        for column in want.columns:
            a, b = want[column], got[column]
            if a.dtype.is_float():
                same = bool(((a - b).abs() <= 1e-9 * b.abs().max()).all())
            else:
                same = a.cast(pl.String).equals(b.cast(pl.String))
            if not same:
                found.append(f"{who} {mart}.{column} differs")
    return found


def against_hand(bench: Bench) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """(the hand script's marts, where the project's gold marts differ from them)."""
    gold = marts_of_lake(bench.lake)
    hand = {
        m: f.select(gold[m].drop("order_month", strict=False).columns)
        for m, f in marts_of_duckdb(bench.work / "hand.duckdb").items()
    }
    return hand, differences(hand, gold, "project gold")


def check_equal(bench: Bench) -> None:
    hand, wrong = against_hand(bench)
    wrong += differences(hand, marts_of_duckdb(bench.work / "project.duckdb"), "published")
    wrong += differences(hand, marts_of_duckdb(Path(bench.env["PEER_DUCKDB"])), "dbt-duckdb")
    if wrong:
        sys.exit("the marts differ:\n  " + "\n  ".join(wrong))
    rows = ", ".join(f"{m} {f.height:,}" for m, f in hand.items())
    print(f"marts equal in all three ({rows} rows)")


def summary(values: list[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factor", type=float, default=0.3)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=str(PROJECT / "bench" / "out" / "peers"))
    args = parser.parse_args()
    work = Path(args.workdir).resolve() / f"sf{args.scale_factor:g}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    install_peers()
    bench = Bench(work, args.scale_factor)
    bench.land(args.days)
    time.sleep(5)  # bronze takes a file once it is 5 s old (settle_seconds)

    runs: dict[str, list[dict]] = {}
    for round_ in range(1, args.rounds + 1):
        print(f"backfill, round {round_}/{args.rounds} ...", flush=True)
        bench.fresh_lake()
        for name, run in bench.contenders():
            runs.setdefault(f"backfill {name}", []).append(run())
    check_equal(bench)
    backfilled = work / "lake_backfilled"
    shutil.copytree(bench.lake, backfilled)

    bench.land(1)
    time.sleep(5)
    for round_ in range(1, args.rounds + 1):
        print(f"one more day, round {round_}/{args.rounds} ...", flush=True)
        bench.fresh_lake(copy_of=backfilled)
        for name, run in bench.contenders():
            runs.setdefault(f"one more day {name}", []).append(run())
        runs.setdefault("nothing to do project", []).append(bench.project())
        for layer in LAYERS:  # each pipeline run alone, as cron may run them
            runs.setdefault(f"nothing to do, {layer} alone", []).append(
                measured([BIN / "flowerpower", "pipeline", "run", layer], bench.env)
            )
        audit = measured(
            [BIN / "flowerpower", "pipeline", "run", "gold", "--inputs", '{"audit": true}'],
            bench.env,
        )
        audit["layers"] = {name: float(s) for name, s in AUDIT_LINE.findall(audit["out"])}
        runs.setdefault("audit, every part", []).append(audit)
        runs.setdefault("status project", []).append(
            measured([BIN / "flowerpower", "pipeline", "run", "status"], bench.env)
        )
        runs.setdefault("import duckdb", []).append(
            measured([sys.executable, "-c", "import duckdb"], bench.env)
        )
    check_equal(bench)
    report(runs, args)


def report(runs: dict[str, list[dict]], args) -> None:
    print(
        f"\nTPC-H SF{args.scale_factor:g}, {args.days} days (+1), {args.rounds} rounds "
        "in alternation: seconds (min, median), peak MB (max)\n"
    )
    print(f"{'run':<28}{'min':>7} {'median':>7}{'peak MB':>9}  layers (median s)")
    for name, results in runs.items():
        seconds = [r["seconds"] for r in results]
        peak = max(r["peak_mb"] for r in results)
        layers = ""
        if results[0].get("layers"):
            names = results[0]["layers"]
            layers = ", ".join(
                f"{n} {statistics.median(r['layers'].get(n, 0) for r in results):.1f}"
                for n in names
            )
        print(f"{name:<28}{summary(seconds)}{peak:>9.0f}  {layers}")

    def median(name: str) -> float:
        return statistics.median(r["seconds"] for r in runs[name])

    print("\nratios (medians)")
    for work in ("backfill", "one more day"):
        for peer in ("hand", "dbt-duckdb"):
            ratio = median(f"{work} project") / median(f"{work} {peer}")
            print(f"  {work}: project / {peer} {ratio:.2f}x")
    day = median("one more day project") / median("one more day hand")
    print(f"  one more day incremental / hand full rebuild: {day:.2f}x (target <= 0.3x)")
    audit = median("audit, every part") / median("one more day hand")
    print(
        f"  audit of every mart / hand full rebuild: {audit:.2f}x "
        "(per mart: the seconds recomputing its parts, on the audit's line above)"
    )
    alone = max(median(f"nothing to do, {layer} alone") for layer in LAYERS)
    print(
        f"  nothing to do: daily (four layers, five runs) {median('nothing to do project'):.2f} s, "
        f"the slowest pipeline alone {alone:.2f} s (target <= 1.5 s); "
        f"status {median('status project'):.2f} s vs import duckdb "
        f"{median('import duckdb'):.2f} s"
    )


if __name__ == "__main__":
    main()
