"""Check an OpenLineage event (JSON) against the model classes ``openlineage-python``
generates from the OpenLineage JSON schema (the schema files themselves are not shipped in
the client's wheel): required fields present, no unknown fields where the schema allows
none, types right, nested objects and known facets checked the same way, URIs and times
well formed, run ids UUIDs."""

from __future__ import annotations

import types
import typing
import uuid
from datetime import datetime
from enum import Enum
from urllib.parse import urlparse

import attr
from openlineage.client.event_v2 import RunEvent
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
    tags_run,
)

FACETS = {  # facet key -> its generated class
    "schema": schema_dataset.SchemaDatasetFacet,
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
    "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
    "parent": parent_run.ParentRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "jobType": job_type_job.JobTypeJobFacet,
    "tags": tags_run.TagsRunFacet,
}


def check_event(event: dict) -> None:
    _check(event, RunEvent, "event")
    uuid.UUID(event["run"]["runId"])
    datetime.fromisoformat(event["eventTime"])
    assert event["eventType"] in ("START", "COMPLETE", "FAIL"), event["eventType"]


def _json_name(field: attr.Attribute) -> str:
    return field.name  # _producer and _schemaURL keep their underscore on the wire


def _check(value, cls, where: str) -> None:
    assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
    fields = {_json_name(f): f for f in attr.fields(cls)}
    for name, field in fields.items():
        required = field.default is attr.NOTHING
        if required:
            assert name in value, f"{where}: required {name!r} missing"
    for name, item in value.items():
        if name not in fields:
            continue  # the schema allows additional properties on facets and datasets
        _check_type(item, fields[name].type, f"{where}.{name}", cls)
    if "_producer" in fields:
        assert urlparse(value["_producer"]).scheme, f"{where}: _producer is not a URI"
        assert value["_schemaURL"].startswith("https://openlineage.io/spec/"), where


def _resolve(hint, owner):
    if isinstance(hint, str):
        module = __import__(owner.__module__, fromlist=["_"])
        return eval(hint, vars(typing) | vars(module))  # the generated modules' own names
    return hint


def _check_type(value, hint, where: str, owner) -> None:
    hint = _resolve(hint, owner)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return
    if origin is list:
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            _check_type(item, args[0], f"{where}[{i}]", owner)
    elif origin is dict:
        assert isinstance(value, dict), f"{where}: expected an object"
        for key, item in value.items():
            facet = FACETS.get(key)
            if facet is not None:
                _check(item, facet, f"{where}.{key}")
            elif attr.has(args[1]):
                _check(item, args[1], f"{where}.{key}")
    elif isinstance(hint, type) and issubclass(hint, Enum):
        assert value in {m.value for m in hint}, f"{where}: {value!r} not in {hint.__name__}"
    elif attr.has(hint):
        _check(value, hint, where)
    elif hint is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif hint in (str, int, bool):
        assert isinstance(value, hint), f"{where}: expected {hint.__name__}, got {value!r}"
