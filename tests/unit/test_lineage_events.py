"""OpenLineage events: dataset names, the parent run, facets, and the structure the spec requires.

Neither openlineage-python nor any other installed package ships the OpenLineage JSON schema, so
`RUN_EVENT_SCHEMA` below states the spec's required structure (OpenLineage 2-0-2: BaseEvent,
RunEvent, Run, Job, InputDataset/OutputDataset and every facet's ``_producer``/``_schemaURL``)
and events are validated against it with jsonschema, formats checked.
"""

from __future__ import annotations

import datetime as dt
import json

import jsonschema
import pytest

from etl.config import load_job_config
from etl.context import WriteMetrics
from etl.errors import ConfigError
from etl.lineage import (
    ParentRun,
    RunLineage,
    dataset_id,
    lineage_run_id,
    quality_facets,
    transport_config,
)
from etl.runner import new_context

_URI = {"type": "string", "format": "uri", "pattern": "^[A-Za-z][A-Za-z0-9+.-]*:"}
_FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {"_producer": _URI, "_schemaURL": _URI},
}
_FACETS = {"type": "object", "additionalProperties": _FACET}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": {"type": "string", "minLength": 1},
                   "name": {"type": "string", "minLength": 1}, "facets": _FACETS},
}
RUN_EVENT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": _URI,
        "schemaURL": {"type": "string", "format": "uri",
                      "pattern": r"^https://openlineage\.io/spec/2-0-\d+/OpenLineage\.json"
                                 r"#/\$defs/RunEvent$"},
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"},
                               "facets": _FACETS}},
        "job": {"type": "object", "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"},
                               "facets": _FACETS}},
        "inputs": {"type": "array", "items": {
            "allOf": [_DATASET, {"properties": {"inputFacets": _FACETS}}]}},
        "outputs": {"type": "array", "items": {
            "allOf": [_DATASET, {"properties": {"outputFacets": _FACETS}}]}},
    },
}


#: The formats the schema uses. FormatChecker skips a format whose optional package is missing
#: (``uri`` needs rfc3986-validator, ``date-time`` rfc3339-validator: setup.py's test extra
#: installs them with jsonschema[format-nongpl]); `validate_event` refuses to run without them.
FORMATS = ("date-time", "uri", "uuid")


def format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()
    missing = [f for f in FORMATS if f not in checker.checkers]
    if missing:
        raise AssertionError(f"jsonschema cannot check the formats {missing}: install "
                             "jsonschema[format-nongpl] (setup.py's test extra)")
    return checker


def validate_event(event: dict) -> None:
    """Raise when ``event`` lacks what the OpenLineage spec requires of a run event."""
    jsonschema.validate(event, RUN_EVENT_SCHEMA, format_checker=format_checker())


def as_json(event) -> dict:
    from openlineage.client.serde import Serde

    return json.loads(Serde.to_json(event))


@pytest.fixture()
def config(tmp_path):
    return load_job_config("flights", overrides=[f"paths.warehouse={tmp_path}/wh",
                                                 f"paths.landing={tmp_path}/landing"])


def test_dataset_names_follow_the_naming_spec():
    assert dataset_id("/wh/silver/flights") == ("file", "/wh/silver/flights")
    assert dataset_id("file:///wh/silver/flights") == ("file", "/wh/silver/flights")
    assert dataset_id("s3a://lake/wh/silver/flights") == ("s3://lake", "wh/silver/flights")
    assert dataset_id("s3://lake/landing/flights") == ("s3://lake", "landing/flights")
    assert dataset_id("gs://lake/landing/flights") == ("gs://lake", "landing/flights")
    assert dataset_id("postgresql://db.local:5432/etl?table=public.flights") == (
        "postgres://db.local:5432", "etl.public.flights")
    assert dataset_id("kafka://broker:9092/flights") == ("kafka://broker:9092", "flights")


def test_parent_run_from_env_and_its_errors():
    run_id = "0d3e3d3c-6a3f-4c58-8a51-2f2b6d0f6c11"
    parent = ParentRun.from_env({"OPENLINEAGE_PARENT_ID": f"airflow/daily.flights/{run_id}"})
    assert parent == ParentRun("airflow", "daily.flights", run_id)
    assert ParentRun.from_env({}) is None
    with pytest.raises(ConfigError, match=r"^OPENLINEAGE_PARENT_ID: expected 'namespace/job/runId', "
                       r"got 'airflow/x'$"):
        ParentRun.parse("airflow/x")
    with pytest.raises(ConfigError, match=r"^OPENLINEAGE_PARENT_ID: parent runId '42' is not a UUID$"):
        ParentRun.parse("airflow/x/42")


def test_start_event_of_a_backfill_with_parent(config, tmp_path):
    ctx = new_context(config, dt.date(2013, 1, 1), dt.date(2013, 1, 2), run_id="r1")
    parent = ParentRun("airflow", "daily", "0d3e3d3c-6a3f-4c58-8a51-2f2b6d0f6c11")
    event = as_json(RunLineage(config, ctx, parent).event("START", outputs=[]))
    validate_event(event)
    assert event["eventType"] == "START"
    assert event["run"]["runId"] == lineage_run_id("r1") != lineage_run_id("r2")
    assert event["job"]["namespace"] == "etl" and event["job"]["name"] == "flights"
    facets = event["run"]["facets"]
    assert (facets["parent"]["run"]["runId"], facets["parent"]["job"]["namespace"],
            facets["parent"]["job"]["name"]) == (parent.run_id, "airflow", "daily")
    assert (facets["nominalTime"]["nominalStartTime"], facets["nominalTime"]["nominalEndTime"]) == (
        "2013-01-01T00:00:00Z", "2013-01-03T00:00:00Z")
    assert (facets["etl_run"]["runId"], facets["etl_run"]["mode"], facets["etl_run"]["status"]) == (
        "r1", "backfill", "running")
    location = event["job"]["facets"]["sourceCodeLocation"]
    assert (location["type"], location["path"], location["tag"]) == (
        "git", "jobs/flights.py", "etl-0.1.0")
    landing = f"{tmp_path}/landing"
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [
        ("file", f"{landing}/{source}")
        for source in ("airlines", "airports", "planes", "weather", "flights")]
    assert [f["name"] for f in event["inputs"][0]["facets"]["schema"]["fields"]] == [
        "carrier", "name"]
    assert event["outputs"] == []


def test_inputs_recorded_by_the_job_replace_the_sources(config, tmp_path):
    ctx = new_context(config)
    ctx.inputs.append(f"{tmp_path}/wh/bronze/flights")
    event = as_json(RunLineage(config, ctx).event("START", outputs=[]))
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [
        ("file", f"{tmp_path}/wh/bronze/flights")]


def test_complete_event_outputs_carry_statistics_and_quality(config, tmp_path):
    ctx = new_context(config, run_id="r2")
    ctx.writes.append(WriteMetrics("silver/flights", "MERGE", 3, rows_inserted=5, rows_updated=2,
                                   files_added=1))
    ctx.rows_loaded = 7
    ctx.quality += [
        {"table": "silver/flights", "rule": "key_complete", "severity": "error", "passed": True,
         "constraint": "CompletenessConstraint(Completeness(carrier,None,None))", "value": None},
        {"table": "silver/flights", "rule": "tail_complete", "severity": "warn", "passed": False,
         "constraint": "CompletenessConstraint(Completeness(tailnum,None,None))",
         "value": 0.5714285714285714},
    ]
    lineage = RunLineage(config, ctx)
    event = as_json(lineage.event("COMPLETE", outputs=lineage._outputs(spark=None)))
    validate_event(event)
    (output,) = event["outputs"]
    assert (output["namespace"], output["name"]) == ("file", f"{tmp_path}/wh/silver/flights")
    stats = output["outputFacets"]["outputStatistics"]
    assert (stats["rowCount"], stats["fileCount"]) == (7, 1)
    assertions = output["facets"]["dataQualityAssertions"]["assertions"]
    assert [(a["name"], a["column"], a["success"], a["severity"], a.get("actual"))
            for a in assertions] == [("key_complete", "carrier", True, "error", None),
                                     ("tail_complete", "tailnum", False, "warn",
                                      "0.5714285714285714")]
    metrics = output["facets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 7
    assert {c: m["nullCount"] for c, m in metrics["columnMetrics"].items()} == {
        "carrier": 0, "tailnum": 3}


def test_fail_event_names_the_error(config):
    ctx = new_context(config, run_id="r3")
    try:
        raise ValueError("bad thing")
    except ValueError as exc:
        error = exc
    event = as_json(RunLineage(config, ctx).event("FAIL", outputs=[], error=error))
    validate_event(event)
    facet = event["run"]["facets"]["errorMessage"]
    assert (facet["message"], facet["programmingLanguage"]) == ("ValueError: bad thing", "python")
    assert facet["stackTrace"].startswith("Traceback (most recent call last):")
    assert facet["stackTrace"].endswith("ValueError: bad thing\n")
    assert event["run"]["facets"]["etl_run"]["status"] == "failed"


def test_quality_facets_of_an_unaudited_table_are_empty():
    assert quality_facets([], "gold/x", 3) == {}


def test_transport_configs(config, tmp_path):
    from etl.context import Warehouse

    warehouse = Warehouse.at(str(tmp_path / "wh"))
    assert transport_config(config.lineage, warehouse, "flights") == {
        "type": "file", "log_file_path": f"{tmp_path}/wh/_etl/lineage/flights.jsonl",
        "append": True}
    assert (tmp_path / "wh" / "_etl" / "lineage").is_dir()
    with pytest.raises(ConfigError, match=r"^lineage.transport: the file transport appends to a "
                       r"local file, not to s3a://b/wh/_etl/lineage/flights.jsonl: on an object "
                       r"store each event is an object \(`EventObjects`\)$"):
        transport_config(config.lineage, Warehouse.at("s3a://b/wh"), "flights")
    http = load_job_config("flights", overrides=[
        "lineage.transport=http", "lineage.url=http://127.0.0.1:5000",
        "lineage.api_key_env=MARQUEZ_KEY"]).lineage
    assert transport_config(http, warehouse, "flights", environ={"MARQUEZ_KEY": "k"}) == {
        "type": "http", "url": "http://127.0.0.1:5000", "endpoint": "api/v1/lineage",
        "timeout": 5.0, "retry": {"total": 5, "read": 5, "connect": 5},
        "auth": {"type": "api_key", "apiKey": "k"}}
    with pytest.raises(ConfigError, match=r"^lineage.api_key_env: environment variable "
                       r"MARQUEZ_KEY is not set$"):
        transport_config(http, warehouse, "flights", environ={})
    no_url = load_job_config("flights", overrides=["lineage.transport=http"]).lineage
    with pytest.raises(ConfigError, match=r"^lineage.url: the http transport needs a url$"):
        transport_config(no_url, warehouse, "flights")


def test_the_structure_check_rejects_what_the_spec_forbids(config):
    event = as_json(RunLineage(config, new_context(config, run_id="r4")).event("START", outputs=[]))
    broken_id = {**event, "run": {**event["run"], "runId": "r4"}}
    with pytest.raises(jsonschema.ValidationError, match="'r4' is not a 'uuid'"):
        validate_event(broken_id)
    with pytest.raises(jsonschema.ValidationError, match="'job' is a required property"):
        validate_event({k: v for k, v in event.items() if k != "job"})
    bad_facet = {**event, "job": {**event["job"], "facets": {"x": {"_producer": "p"}}}}
    with pytest.raises(jsonschema.ValidationError, match="'_schemaURL' is a required property"):
        validate_event(bad_facet)
    with pytest.raises(jsonschema.ValidationError, match="'DONE' is not one of"):
        validate_event({**event, "eventType": "DONE"})


@pytest.mark.parametrize(("path", "value", "message"), [
    (("eventTime",), "2013-01-01 10:00", "'2013-01-01 10:00' is not a 'date-time'"),
    (("eventTime",), "2013-13-01T00:00:00Z", "'2013-13-01T00:00:00Z' is not a 'date-time'"),
    (("producer",), "https://example.com/etl etl", "'https://example.com/etl etl' is not a 'uri'"),
    (("job", "facets", "x", "_schemaURL"), "https://exa mple.com/f.json",
     "'https://exa mple.com/f.json' is not a 'uri'"),
])
def test_the_structure_check_enforces_the_date_time_and_uri_formats(config, path, value, message):
    event = as_json(RunLineage(config, new_context(config, run_id="r5")).event("START", outputs=[]))
    validate_event(event)
    broken = json.loads(json.dumps(event))
    if path[0] == "job":
        broken["job"]["facets"] = {"x": {"_producer": "https://example.com/etl",
                                         "_schemaURL": value}}
    else:
        broken[path[0]] = value
    with pytest.raises(jsonschema.ValidationError) as info:
        validate_event(broken)
    assert info.value.message == message
