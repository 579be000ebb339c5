"""OpenLineage events from real runs of a dataset that is not the demo (web page views):
received by an HTTP server on 127.0.0.1, checked against the client's model of the spec,
with dataset names, row counts and quarantine rules as the lake holds them, and parent/child
links from daily to its layers; FAIL on a failing run; a consumer that never answers costs a
bounded wait and fails nothing."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import web_events
from openlineage_model import check_event
from test_second_domain import _land_first_drop

from lakehouse.ops.lineage import dataset_name

API_KEY = "ol-key-7f3a9c"  # must reach the consumer as a bearer token, and nowhere else
LAYERS = ["bronze", "silver", "gold", "publish"]


class Consumer:
    """An OpenLineage HTTP endpoint on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        received, headers = [], []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                headers.append(dict(self.headers))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.events, self.headers = received, headers
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def web(lakehouse):
    web_events.install(lakehouse.project)
    lakehouse.configure("daily", layers=LAYERS)
    return lakehouse


def _by_job(events: list[dict]) -> dict[str, list[dict]]:
    jobs: dict[str, list[dict]] = {}
    for event in events:
        jobs.setdefault(event["job"]["name"], []).append(event)
    return jobs


def _outputs(event: dict) -> dict[tuple[str, str], dict]:
    return {(d["namespace"], d["name"]): d for d in event["outputs"]}


def test_a_daily_run_sends_valid_events_with_datasets_counts_rules_and_parents(web):
    _land_first_drop(web)
    consumer = Consumer()
    env = {
        "LINEAGE_TRANSPORT": "http",
        "OPENLINEAGE_URL": consumer.url,
        "OPENLINEAGE_API_KEY": API_KEY,
        "LINEAGE_NAMESPACE": "web-analytics",
    }
    try:
        done = web.cli("daily", env=env)
    finally:
        consumer.stop()
    assert done.returncode == 0, done.stderr
    assert API_KEY not in done.stdout + done.stderr
    assert {h["Authorization"] for h in consumer.headers} == {f"Bearer {API_KEY}"}

    for event in consumer.events:
        check_event(event)
        assert event["job"]["namespace"] == "web-analytics"
    jobs = _by_job(consumer.events)
    assert set(jobs) == {"daily", *LAYERS}
    for name, events in jobs.items():  # one START, then one COMPLETE, of one run
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"], name
        assert len({e["run"]["runId"] for e in events}) == 1, name
    daily_id = jobs["daily"][0]["run"]["runId"]
    for layer in LAYERS:
        for event in jobs[layer]:
            parent = event["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == daily_id and parent["job"]["name"] == "daily"
            assert parent["root"]["run"]["runId"] == daily_id
    ledger = web.table("_runs")
    tags = {e["run"]["facets"]["tags"]["tags"][0]["value"] for e in consumer.events}
    assert tags == set(ledger["run_id"].to_list())  # the ledger's run ids, one per run

    def lake(table: str) -> tuple[str, str]:
        return ("file", str(web.lake / table))

    bronze, silver, gold = (jobs[name][1] for name in ("bronze", "silver", "gold"))
    assert {d["name"] for d in bronze["inputs"]} == {
        str(web.landing / "page_views"),
        str(web.landing / "users"),
    }
    for event in (bronze, silver, gold):  # row counts: what each table holds after one run
        for key, dataset in _outputs(event).items():
            table = key[1].removeprefix(str(web.lake) + "/")
            rows = dataset["outputFacets"]["outputStatistics"]["rowCount"]
            assert rows == web.table(table).height, table
    views = _outputs(silver)[lake("silver/page_views")]
    assert [f["name"] for f in views["facets"]["schema"]["fields"]] == web.table(
        "silver/page_views"
    ).columns
    assert lake("_quarantine/page_views") in _outputs(silver)

    read = {(d["namespace"], d["name"]): d for d in silver["inputs"]}
    assertions = read[lake("bronze/page_views")]["inputFacets"]["dataQualityAssertions"]
    held = web.table("_quarantine/page_views").group_by("rule").len()
    assert {a["assertion"]: int(a["actual"]) for a in assertions["assertions"]} == dict(
        held.iter_rows()
    )
    assert not any(a["success"] for a in assertions["assertions"])
    assert {(d["namespace"], d["name"]) for d in gold["inputs"]} >= {lake("silver/page_views")}

    published = _outputs(jobs["publish"][1])
    mart = ("duckdb://" + str(web.root / "marts.duckdb"), "main.daily_page_stats")
    assert (
        published[mart]["outputFacets"]["outputStatistics"]["rowCount"]
        == web.table("gold/daily_page_stats").height
    )


def test_a_failing_run_sends_fail_with_its_cause_to_the_file_transport(web, tmp_path):
    _land_first_drop(web)
    web.configure("silver", on_invalid="fail")
    events_file = tmp_path / "lineage" / "events.jsonl"
    env = {"LINEAGE_TRANSPORT": "file", "LINEAGE_FILE": str(events_file)}
    done = web.cli("daily", env=env)
    assert done.returncode != 0
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    for event in events:
        check_event(event)
    jobs = _by_job(events)
    assert [e["eventType"] for e in jobs["bronze"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in jobs["silver"]] == ["START", "FAIL"]
    assert [e["eventType"] for e in jobs["daily"]] == ["START", "FAIL"]
    assert "gold" not in jobs  # never started
    message = jobs["silver"][1]["run"]["facets"]["errorMessage"]["message"]
    assert "on_invalid is fail" in message
    assert message.splitlines()[0] in done.stdout.splitlines()[0]  # the summary's cause


def test_a_consumer_that_never_answers_costs_a_bounded_wait_and_fails_nothing(web):
    _land_first_drop(web)
    web.configure("daily", layers=["bronze", "silver"])
    hooks = web.project / "conf" / "hooks.yml"
    hooks.write_text(hooks.read_text().replace("timeout_seconds: 5", "timeout_seconds: 1"))
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    env = {
        "LINEAGE_TRANSPORT": "http",
        "OPENLINEAGE_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
    }
    started = time.monotonic()
    try:
        done = web.cli("daily", env=env)
    finally:
        silent.close()
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    waits = done.stderr.count("lineage: the http transport did not take the events within 1 s")
    assert waits == 6  # START and COMPLETE of daily, bronze and silver: 1 s each at most
    assert web.table("silver/page_views").height > 0
    assert took < 120  # an unbounded wait would hang on the silent consumer


def test_dataset_names_follow_the_openlineage_naming_spec(tmp_path):
    assert dataset_name(str(tmp_path / "lake" / "silver" / "x")) == (
        "file",
        str(tmp_path / "lake" / "silver" / "x"),
    )
    assert dataset_name("s3://my-bucket/lake/silver/x") == ("s3://my-bucket", "lake/silver/x")
    assert dataset_name("gs://b/k") == ("gs://b", "k")
    assert dataset_name("postgres://db.internal:5432/shop.marts.sales") == (
        "postgres://db.internal:5432",
        "shop.marts.sales",
    )
    assert dataset_name("duckdb:///srv/marts.duckdb/main.sales") == (
        "duckdb:///srv/marts.duckdb",
        "main.sales",
    )
