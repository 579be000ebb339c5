"""OpenLineage run events for every pipeline run (the ``lineage`` hook, ``conf/hooks.yml``).

A run sends START when it begins and COMPLETE or FAIL when it ends:

- job: ``namespace`` from the settings, name = the pipeline; a jobType facet (BATCH).
- run: a UUID per run, with the run id of the ledger and logs as the tag
  ``lakehouse_run_id``; the parent facet names the run that started it (``daily`` for its
  layers) and the root run; FAIL carries an errorMessage facet with the one-line cause.
- inputs: what the run's writes read (landing folders, Delta tables), with a schema facet
  for Delta tables; an input whose rows silver quarantined carries a dataQualityAssertions
  facet, one failed assertion per rule with the rows it held back.
- outputs: every table (or sink table) written, with its schema and outputStatistics
  (rows, bytes where known); quarantine tables are outputs too.

Datasets are named as the OpenLineage naming spec says: a local path is namespace ``file``
and the absolute path; ``s3://bucket/key`` is namespace ``s3://bucket`` and name ``key``
(likewise ``gs://``, ``abfss://``); a PostgreSQL table ``postgres://host:port`` and
``database.schema.table``; a DuckDB table ``duckdb://<file>`` and ``main.<table>``.

Transports: ``none`` (the default), ``console`` (one JSON event per line on stderr),
``file`` (appended, one JSON event per line), ``http`` (POST to ``url`` + ``endpoint``,
a bearer API key read from the variable named by ``api_key_env``). Sending never fails a
run, and a run waits at most ``timeout_seconds`` for it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import pyarrow as pa
from fsspec.utils import infer_storage_options
from loguru import logger

from lakehouse.core.delta import WriteResult
from lakehouse.core.runs import Run
from lakehouse.core.storage import Location, absolute_uri, is_local

PRODUCER = "urn:lakehouse:flowerpower"  # who made the events (a URI, as the spec asks)
TRANSPORTS = ("none", "console", "file", "http")


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a dataset at ``uri``, by the OpenLineage naming spec."""
    if is_local(uri):
        return "file", absolute_uri(uri)
    protocol, rest = uri.split("://", 1)
    if protocol == "duckdb":
        path, table = rest.rsplit("/", 1)
        return f"duckdb://{path}", table
    if protocol == "postgres":
        host, name = rest.split("/", 1)
        return f"postgres://{host}", name
    options = infer_storage_options(uri)
    host = options.get("host") or rest.split("/", 1)[0]
    return f"{protocol}://{host}", rest[len(host) :].lstrip("/")


# --- events --------------------------------------------------------------------------------


def run_uuid(run: Run) -> str:
    """The run's OpenLineage run id (a UUID, kept in the run's state for its END event)."""
    from openlineage.client.uuid import generate_new_uuid

    return run.state.setdefault("openlineage_run_id", str(generate_new_uuid()))


def event(run: Run, event_type: str, namespace: str, schema_of=None):
    """The OpenLineage ``RunEvent`` of ``run`` (``START``, ``COMPLETE`` or ``FAIL``)."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, RunEvent, RunState
    from openlineage.client.event_v2 import Run as OLRun
    from openlineage.client.facet_v2 import (
        JobFacet,
        error_message_run,
        job_type_job,
        parent_run,
        tags_run,
    )

    run_facets: dict = {
        "tags": tags_run.TagsRunFacet(
            tags=[tags_run.TagsRunFacetFields("lakehouse_run_id", run.run_id, "LAKEHOUSE")],
            producer=PRODUCER,
        )
    }
    if run.parent is not None:
        root = run.parent
        while root.parent is not None:
            root = root.parent
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_uuid(run.parent)),
            job=parent_run.Job(namespace=namespace, name=run.parent.pipeline),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=run_uuid(root)),
                job=parent_run.RootJob(namespace=namespace, name=root.pipeline),
            ),
            producer=PRODUCER,
        )
    if event_type == "FAIL":
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{run.error_type}: {run.error_message}",
            programmingLanguage="python",
            producer=PRODUCER,
        )
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="FLOWERPOWER",
            jobType="DAG" if run.children or run.pipeline == "daily" else "JOB",
            producer=PRODUCER,
        )
    }
    inputs: list[InputDataset] = []
    outputs: list[OutputDataset] = []
    if event_type != "START" and not run.children:  # a parent's datasets are its children's
        inputs, outputs = datasets(run.results(), schema_of or delta_schema)
    return RunEvent(
        eventType=getattr(RunState, event_type),
        eventTime=(run.ended_at or run.started_at).astimezone(UTC).isoformat(),
        run=OLRun(runId=run_uuid(run), facets=run_facets),
        job=Job(namespace=namespace, name=run.pipeline, facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


def datasets(results: Iterable[WriteResult], schema_of) -> tuple[list, list]:
    """Input and output datasets of the writes of one run."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import InputDatasetFacet, schema_dataset
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset as dq,
    )
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    def schema_facet(uri: str) -> dict:
        fields = schema_of(uri)
        if not fields:
            return {}
        return {
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=name, type=kind)
                    for name, kind in fields
                ],
                producer=PRODUCER,
            )
        }

    results = [r for r in results if r.operation not in ("none", "plan")]
    written: dict[str, list[WriteResult]] = {}
    held_back: dict[str, dict[str, int]] = {}  # entity -> rule -> rows
    read_for: dict[str, set[str]] = {}  # input uri -> entities whose rows it gave
    audited: dict[str, dict] = {}  # mart uri -> how it differs from its rebuild
    for result in results:
        if result.operation == "audit":
            audited[result.uri] = result.drift or {}
        else:
            written.setdefault(result.target or result.uri, []).append(result)
        entity = result.table.rsplit("/", 1)[-1]
        if result.by_rule:
            rules = held_back.setdefault(entity, {})
            for rule, count in result.by_rule.items():
                rules[rule] = rules.get(rule, 0) + count
        for uri in result.inputs:
            read_for.setdefault(uri, set()).add(entity)

    inputs = []
    for uri, entities in sorted(read_for.items()):
        facets = schema_facet(uri)
        input_facets: dict[str, InputDatasetFacet] = {}
        rules = {}
        for entity in entities:
            for rule, count in held_back.get(entity, {}).items():
                rules[rule] = rules.get(rule, 0) + count
        assertions = [_audit_assertion(audited[uri])] if uri in audited else []
        if rules or assertions:
            input_facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(
                assertions=assertions
                + [
                    dq.Assertion(
                        assertion=rule,
                        success=False,
                        name=f"quarantine:{rule}",
                        severity="warn",  # the rows went to quarantine, the run went on
                        expected="0",
                        actual=str(count),
                        description=f"{count} row(s) failed {rule} and were quarantined",
                    )
                    for rule, count in sorted(rules.items())
                ],
                producer=PRODUCER,
            )
        namespace, name = dataset_name(uri)
        inputs.append(
            InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=input_facets)
        )

    outputs = []
    for uri, writes in sorted(written.items()):
        namespace, name = dataset_name(uri)
        size = [w.bytes for w in writes if w.bytes is not None]
        statistics = stats.OutputStatisticsOutputDatasetFacet(
            rowCount=sum(w.rows for w in writes),
            size=sum(size) if size else None,
            producer=PRODUCER,
        )
        outputs.append(
            OutputDataset(
                namespace=namespace,
                name=name,
                facets=schema_facet(writes[0].uri),  # a sink's table has its mart's columns
                outputFacets={"outputStatistics": statistics},
            )
        )
    return inputs, outputs


def _audit_assertion(drift: dict):
    """An audit's outcome: the mart equals its rebuild from silver, or it drifted."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    differing = sum(drift.get(k, 0) for k in ("missing", "extra", "changed"))
    return dq.Assertion(
        assertion="equals_rebuild",
        success=differing == 0,
        name="audit:equals_rebuild",
        severity="error",
        expected="0",
        actual=str(differing),
        description=(
            f"{drift.get('rows_checked', 0)} rows recomputed from silver: "
            f"{drift.get('missing', 0)} missing, {drift.get('extra', 0)} extra, "
            f"{drift.get('changed', 0)} changed"
        ),
    )


def delta_schema(uri: str) -> list[tuple[str, str]]:
    """Column names and types of the Delta table at ``uri`` (none for a folder of files)."""
    from lakehouse.core import delta

    table = delta.open_table(Location.from_uri(uri))
    if table is None:
        return []
    return [(field.name, str(field.type)) for field in pa.schema(table.schema().to_arrow())]


# --- transports ----------------------------------------------------------------------------


class Emitter:
    """Sends events with the transport the settings name; never raises."""

    def __init__(self, settings: dict, where: str) -> None:
        from lakehouse.core.settings import ConfigError

        self.kind = settings.get("transport") or "none"
        if self.kind not in TRANSPORTS:
            raise ConfigError(
                f"{where}.transport: {self.kind!r} is not one of {', '.join(TRANSPORTS)}"
            )
        self.namespace = settings.get("namespace") or "lakehouse"
        self.timeout = float(settings.get("timeout_seconds") or 5)
        self.settings, self.where = settings, where
        self._transport = None
        if self.kind == "http" and not settings.get("url"):
            raise ConfigError(f"{where}.url: the http transport needs the consumer's URL")
        if self.kind == "file" and not settings.get("file"):
            raise ConfigError(f"{where}.file: the file transport needs a file to append to")

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def transport(self):
        if self._transport is None:
            self._transport = self._build()
        return self._transport

    def _build(self):
        import os

        if self.kind == "file":
            from openlineage.client.transport.file import FileConfig, FileTransport

            path = absolute_uri(str(self.settings["file"]))
            if is_local(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            return FileTransport(FileConfig(log_file_path=path, append=True))
        if self.kind == "http":
            from openlineage.client.transport.http import HttpConfig, HttpTransport

            config = {
                "url": self.settings["url"],
                "endpoint": self.settings.get("endpoint") or "api/v1/lineage",
                "timeout": self.timeout,
                "retry": {"total": 1, "backoff_factor": 0.2},
            }
            variable = self.settings.get("api_key_env")
            if variable and os.environ.get(variable):
                config["auth"] = {"type": "api_key", "apiKey": os.environ[variable]}
            return HttpTransport(HttpConfig.from_dict(config))
        return None  # console

    def emit(self, events: list) -> None:
        """Send ``events`` in order, waiting at most ``timeout_seconds`` in all."""
        if not self.enabled or not events:
            return
        done = threading.Event()
        failure: list[str] = []

        def send() -> None:
            try:
                from openlineage.client.serde import Serde

                for item in events:
                    if self.kind == "console":
                        print(Serde.to_json(item), file=sys.stderr, flush=True)
                    else:
                        self.transport().emit(item)
            except Exception as error:  # a consumer that is down never fails the run
                failure.append(f"{type(error).__name__}: {error}".splitlines()[0][:300])
            finally:
                done.set()

        thread = threading.Thread(target=send, name="openlineage", daemon=True)
        started = datetime.now(UTC)
        thread.start()
        if not done.wait(self.timeout):
            logger.warning(
                f"lineage: the {self.kind} transport did not take the events within "
                f"{self.timeout:g} s ({self.where}.timeout_seconds); the run goes on without them"
            )
        elif failure:
            seconds = (datetime.now(UTC) - started).total_seconds()
            logger.warning(
                f"lineage: events not sent by the {self.kind} transport after {seconds:.1f} s: "
                f"{failure[0]}"
            )
