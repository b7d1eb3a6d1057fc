"""OpenLineage run events: every job run emits START, then COMPLETE or FAIL.

Events are built with the ``openlineage-python`` client and sent by the transport named in conf
(``lineage.transport``): ``file`` (default; JSON lines, one file per job, under
``<warehouse>/_etl/lineage/``; on an object store, where nothing can be appended to, one object
per event under ``<warehouse>/_etl/lineage/<job>/``), ``http`` (a Marquez-compatible API) or
``console`` (the log).

What an event holds:

* ``run.runId``: a UUID derived from the etl run id (the same for START and COMPLETE/FAIL);
  run facets ``etl_run`` (etl's run id, env, mode, status), ``nominalTime`` (the logical dates
  of a backfill), ``parent`` (the pipeline's run, from `run_job`'s ``parent`` or the
  ``OPENLINEAGE_PARENT_ID`` environment variable, ``namespace/job/runId``),
  ``processing_engine`` (Spark) and, on FAIL, ``errorMessage`` with the stack trace;
* ``job``: ``lineage.namespace`` and the job name; facets ``sourceCodeLocation`` (repository,
  entrypoint module, git commit or library version), ``jobType`` and ``documentation``;
* ``inputs``: the locations in ``ctx.inputs``, else the job's configured sources;
* ``outputs`` (COMPLETE and FAIL): every table the run wrote (``ctx.writes``) with facets
  ``schema``, ``outputStatistics`` (rows inserted + updated, files added), and, for audited
  tables, ``dataQualityAssertions`` and ``dataQualityMetrics`` from the Deequ results.

Dataset names follow the OpenLineage naming spec: a local path is namespace ``file`` and the
absolute path; ``s3://bucket`` (also ``s3a``/``s3n``) and ``gs://bucket`` with the key;
``postgres://host:port`` with ``database.schema.table``; ``kafka://host:port`` with the topic.

Emitting never fails a run: a transport error is logged (``lineage event not emitted``) and the
run goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import traceback
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import attr

from etl.config import JobConfig, LineageSettings, S3Settings
from etl.context import RunContext, Warehouse, landing_path
from etl.errors import ConfigError, EtlError
from etl.logs import get_logger

PARENT_ENV = "OPENLINEAGE_PARENT_ID"
_RUN_NAMESPACE = uuid.UUID("6f1c7f5e-3b7a-4a7e-9c59-0d1e8a3c2b10")
_COLUMN = re.compile(r"(?:Completeness|Uniqueness|Compliance)\(List\((?P<list>[^)]*)\)|"
                     r"(?:Completeness|Uniqueness)\((?P<one>[A-Za-z_][A-Za-z0-9_]*),")
START, COMPLETE, FAIL = "START", "COMPLETE", "FAIL"


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def dataset_id(location: str) -> tuple[str, str]:
    """``(namespace, name)`` of a dataset location, after the OpenLineage naming spec.

    >>> dataset_id("/wh/silver/flights")
    ('file', '/wh/silver/flights')
    >>> dataset_id("s3a://bucket/wh/silver/flights")
    ('s3://bucket', 'wh/silver/flights')
    >>> dataset_id("postgresql://db.local:5432/etl?table=public.flights")
    ('postgres://db.local:5432', 'etl.public.flights')
    """
    if "://" not in location and not location.startswith("file:"):
        return "file", os.path.abspath(location)
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return "file", parsed.path
    if scheme in ("s3", "s3a", "s3n"):
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    if scheme in ("postgres", "postgresql", "jdbc:postgresql"):
        query = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part)
        database = parsed.path.lstrip("/")
        table = query.get("table", "")
        name = f"{database}.{table}" if table else database
        return f"postgres://{parsed.hostname}:{parsed.port or 5432}", name
    if scheme == "kafka":
        return f"kafka://{parsed.netloc}", parsed.path.lstrip("/")
    return f"{scheme}://{parsed.netloc}", parsed.path.lstrip("/")


def lineage_run_id(run_id: str) -> str:
    """The OpenLineage ``runId`` (a UUID) of an etl run id; the same id always gives the same
    UUID, so START and COMPLETE/FAIL events of a run share it."""
    return str(uuid.uuid5(_RUN_NAMESPACE, run_id))


@dataclass(frozen=True)
class ParentRun:
    """The run of the pipeline (orchestrator) that started this job run."""

    namespace: str
    job: str
    run_id: str

    @classmethod
    def parse(cls, text: str, *, source: str = PARENT_ENV) -> ParentRun:
        """Parse ``namespace/job/runId`` (the form Airflow's OpenLineage macros produce)."""
        parts = text.strip().split("/")
        if len(parts) < 3 or not all(parts):
            raise ConfigError(f"expected 'namespace/job/runId', got {text!r}", file=source)
        namespace, job, run_id = parts[0], "/".join(parts[1:-1]), parts[-1]
        try:
            uuid.UUID(run_id)
        except ValueError:
            raise ConfigError(f"parent runId {run_id!r} is not a UUID", file=source) from None
        return cls(namespace, job, run_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ParentRun | None:
        value = (os.environ if environ is None else environ).get(PARENT_ENV, "")
        return cls.parse(value) if value else None


def events_dir(warehouse: Warehouse) -> str:
    return warehouse.records("lineage")


def events_file(warehouse: Warehouse, job: str) -> str:
    return f"{events_dir(warehouse)}/{job}.jsonl"


def events_objects(warehouse: Warehouse, job: str) -> str:
    """Where the file transport writes ``job``'s events as objects (a warehouse on an object
    store, `EventObjects`)."""
    return f"{events_dir(warehouse)}/{job}"


# --------------------------------------------------------------------------------------------
# Facets
# --------------------------------------------------------------------------------------------


def _facets() -> Any:
    from openlineage.client.generated import (
        data_quality_assertions_dataset,
        data_quality_metrics_dataset,
        documentation_job,
        error_message_run,
        job_type_job,
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
        processing_engine_run,
        schema_dataset,
        source_code_location_job,
    )

    return {
        "dqa": data_quality_assertions_dataset,
        "dqm": data_quality_metrics_dataset,
        "doc": documentation_job,
        "error": error_message_run,
        "job_type": job_type_job,
        "nominal": nominal_time_run,
        "stats": output_statistics_output_dataset,
        "parent": parent_run,
        "engine": processing_engine_run,
        "schema": schema_dataset,
        "scl": source_code_location_job,
    }


def _etl_run_facet(ctx: RunContext, status: str) -> Any:
    from openlineage.client.generated.base import RunFacet

    @attr.define
    class EtlRunRunFacet(RunFacet):  # type: ignore[misc]
        """etl's own run identity, so events can be joined with the run record."""

        runId: str
        env: str
        mode: str
        status: str

    return EtlRunRunFacet(runId=ctx.run_id, env=ctx.env, mode=str(ctx.mode), status=status)


def quality_facets(quality: Sequence[Mapping[str, Any]], table: str, rows: int | None) -> dict[str, Any]:
    """``dataQualityAssertions`` and ``dataQualityMetrics`` of ``table`` from Deequ results
    (entries of ``ctx.quality``); empty when the table was not audited."""
    f = _facets()
    results = [q for q in quality if q["table"] == table]
    if not results:
        return {}
    assertions = []
    column_metrics = {}
    for q in results:
        columns = _constraint_columns(q["constraint"])
        assertions.append(f["dqa"].Assertion(
            assertion=q["constraint"], success=bool(q["passed"]),
            column=columns[0] if len(columns) == 1 else None, severity=q["severity"],
            name=q["rule"], actual=None if q["value"] is None else repr(q["value"]),
        ))
        # a passing isComplete constraint means completeness 1 (Deequ reports no value then)
        completeness = q["value"] if q["value"] is not None else (1.0 if q["passed"] else None)
        if (q["constraint"].startswith("CompletenessConstraint") and len(columns) == 1
                and completeness is not None and rows is not None):
            column_metrics[columns[0]] = f["dqm"].ColumnMetrics(
                nullCount=round((1.0 - float(completeness)) * rows), count=float(rows))
    return {
        "dataQualityAssertions": f["dqa"].DataQualityAssertionsDatasetFacet(assertions=assertions),
        "dataQualityMetrics": f["dqm"].DataQualityMetricsDatasetFacet(
            columnMetrics=column_metrics, rowCount=rows),
    }


def _constraint_columns(constraint: str) -> list[str]:
    match = _COLUMN.search(constraint)
    if not match:
        return []
    if match.group("one"):
        return [match.group("one")]
    return [c.strip() for c in match.group("list").split(",") if c.strip()]


def schema_facet(fields: Sequence[tuple[str, str]]) -> Any:
    f = _facets()["schema"]
    return f.SchemaDatasetFacet(
        fields=[f.SchemaDatasetFacetFields(name=name, type=type_) for name, type_ in fields])


def _delta_schema(spark: Any, path: str) -> list[tuple[str, str]] | None:
    """A Delta table's columns (reads the log only); ``None`` when it cannot be read."""
    from pyspark.errors import AnalysisException

    try:
        schema = spark.read.format("delta").load(path).schema
    except AnalysisException:
        return None
    return [(field.name, field.dataType.simpleString()) for field in schema.fields]


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass
class RunLineage:
    """Builds and emits the OpenLineage events of one run.

    Example::

        lineage = RunLineage(config, ctx, parent=ParentRun.from_env())
        lineage.start()
        ...
        lineage.complete(spark)     # or lineage.fail(spark, error)
    """

    config: JobConfig
    ctx: RunContext
    parent: ParentRun | None = None
    emitted: int = 0

    @property
    def settings(self) -> LineageSettings:
        return self.config.lineage

    def start(self) -> None:
        self._emit(START, outputs=[])

    def complete(self, spark: Any) -> None:
        self._emit(COMPLETE, outputs=self._outputs(spark), spark=spark)

    def fail(self, spark: Any, error: BaseException) -> None:
        self._emit(FAIL, outputs=self._outputs(spark), spark=spark, error=error)

    # -- building -------------------------------------------------------------------------

    def event(self, event_type: str, *, outputs: list[Any], spark: Any = None,
              error: BaseException | None = None) -> Any:
        """The run event (an ``openlineage.client.event_v2.RunEvent``)."""
        from openlineage.client import event_v2

        return event_v2.RunEvent(
            eventType=event_v2.RunState(event_type),
            eventTime=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            run=event_v2.Run(runId=lineage_run_id(self.ctx.run_id),
                             facets=self._run_facets(event_type, spark, error)),
            job=event_v2.Job(namespace=self.settings.namespace, name=self.ctx.job,
                             facets=self._job_facets()),
            inputs=self._inputs(),
            outputs=outputs,
        )

    def _run_facets(self, event_type: str, spark: Any, error: BaseException | None) -> dict[str, Any]:
        f = _facets()
        status = {START: "running", COMPLETE: "succeeded", FAIL: "failed"}[event_type]
        facets: dict[str, Any] = {"etl_run": _etl_run_facet(self.ctx, status)}
        if self.ctx.date_from and self.ctx.date_to:
            end = self.ctx.date_to + dt.timedelta(days=1)
            facets["nominalTime"] = f["nominal"].NominalTimeRunFacet(
                nominalStartTime=f"{self.ctx.date_from.isoformat()}T00:00:00Z",
                nominalEndTime=f"{end.isoformat()}T00:00:00Z")
        if self.parent is not None:
            p = f["parent"]
            facets["parent"] = p.ParentRunFacet(
                run=p.Run(runId=self.parent.run_id),
                job=p.Job(namespace=self.parent.namespace, name=self.parent.job))
        if spark is not None:
            from openlineage.client import __version__ as client_version

            facets["processing_engine"] = f["engine"].ProcessingEngineRunFacet(
                version=spark.version, name="spark", openlineageAdapterVersion=client_version)
        if error is not None:
            facets["errorMessage"] = f["error"].ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}", programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error))[-20000:])
        return facets

    def _job_facets(self) -> dict[str, Any]:
        from etl.runlog import build_info

        f = _facets()
        info = build_info()
        module = (self.config.job.transforms or self.config.job.entrypoint.partition(":")[0]
                  or "etl.flow")
        facets: dict[str, Any] = {
            "jobType": f["job_type"].JobTypeJobFacet(
                processingType="BATCH", integration="SPARK", jobType="JOB"),
            "sourceCodeLocation": f["scl"].SourceCodeLocationJobFacet(
                type="git", url=self.settings.repo_url or "https://pypi.org/project/etl/",
                repoUrl=self.settings.repo_url or None, path=module.replace(".", "/") + ".py",
                version=info["git_commit"] or info["etl_version"],
                tag=f"etl-{info['etl_version']}"),
        }
        if self.config.job.description:
            facets["documentation"] = f["doc"].DocumentationJobFacet(
                description=self.config.job.description)
        return facets

    def _inputs(self) -> list[Any]:
        from openlineage.client import event_v2

        if self.ctx.inputs:
            return [event_v2.InputDataset(*dataset_id(loc)) for loc in self.ctx.inputs]
        inputs = []
        for source in self.config.sources.values():
            location = landing_path(self.ctx.landing, source.path)
            facets = {"schema": schema_facet([(c, "string") for c in source.columns])}
            inputs.append(event_v2.InputDataset(*dataset_id(location), facets=facets))
        return inputs

    def _outputs(self, spark: Any) -> list[Any]:
        from openlineage.client import event_v2

        f = _facets()
        outputs = []
        for write in self.ctx.writes:
            layer, _, table = write.table.partition("/")
            location = f"{self.ctx.warehouse.root}/{layer}/{table}"
            facets: dict[str, Any] = {}
            columns = _delta_schema(spark, location) if spark is not None else None
            if columns is not None:
                facets["schema"] = schema_facet(columns)
            audited_rows = self.ctx.rows_loaded if layer == "silver" else None
            facets.update(quality_facets(self.ctx.quality, write.table, audited_rows))
            stats = f["stats"].OutputStatisticsOutputDatasetFacet(
                rowCount=write.rows_inserted + write.rows_updated, fileCount=write.files_added)
            outputs.append(event_v2.OutputDataset(
                *dataset_id(location), facets=facets, outputFacets={"outputStatistics": stats}))
        return outputs

    # -- emitting -------------------------------------------------------------------------

    def _emit(self, event_type: str, *, outputs: list[Any], spark: Any = None,
              error: BaseException | None = None) -> None:
        if not self.settings.enabled:
            return
        log = get_logger("etl.lineage")
        try:
            event = self.event(event_type, outputs=outputs, spark=spark, error=error)
            client = lineage_client(self.settings, self.ctx.warehouse, self.ctx.job)
            client.emit(event)
            client.close(timeout=self.settings.timeout_s)
        except Exception as exc:
            log.warning("lineage event not emitted", event_type=event_type,
                        transport=self.settings.transport, error=f"{type(exc).__name__}: {exc}")
            return
        self.emitted += 1
        log.info("lineage event emitted", event_type=event_type, transport=self.settings.transport)


def transport_config(settings: LineageSettings, warehouse: Warehouse, job: str,
                     environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The openlineage-python ``transport`` configuration for ``settings``."""
    if settings.transport == "file":
        path = events_file(warehouse, job)
        if "://" in path:
            raise ConfigError(f"the file transport appends to a local file, not to {path}: on "
                              "an object store each event is an object (`EventObjects`)",
                              key="lineage.transport")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"type": "file", "log_file_path": path, "append": True}
    if settings.transport == "http":
        if not settings.url:
            raise ConfigError("the http transport needs a url", key="lineage.url")
        config: dict[str, Any] = {"type": "http", "url": settings.url,
                                  "endpoint": settings.endpoint, "timeout": settings.timeout_s,
                                  "retry": {"total": settings.retries, "read": settings.retries,
                                            "connect": settings.retries}}
        if settings.api_key_env:
            key = (os.environ if environ is None else environ).get(settings.api_key_env, "")
            if not key:
                raise ConfigError(f"environment variable {settings.api_key_env} is not set",
                                  key="lineage.api_key_env")
            config["auth"] = {"type": "api_key", "apiKey": key}
        return config
    return {"type": "console"}


def lineage_client(settings: LineageSettings, warehouse: Warehouse, job: str) -> Any:
    """What emits the events: `EventObjects` for the file transport of a warehouse on an object
    store, else an ``OpenLineageClient`` with `transport_config`."""
    if settings.transport == "file" and "://" in warehouse.root:
        return EventObjects(events_objects(warehouse, job))
    from openlineage.client import OpenLineageClient

    return OpenLineageClient(config={"transport": transport_config(settings, warehouse, job)})


class EventObjects:
    """The file transport on an object store (``s3a://``, ``gs://``), where nothing can be
    appended to: each event is one JSON object in ``folder``, named by its time, type and run
    (`event_object`), written through Hadoop's FileSystem of the running session, with the
    endpoint and credentials the job's tables use."""

    def __init__(self, folder: str):
        self.folder = folder

    def emit(self, event: Any) -> None:
        from openlineage.client.serde import Serde
        from pyspark.sql import SparkSession

        from etl.storage import write_text

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise EtlError(f"no running Spark session to write the lineage event to {self.folder}")
        write_text(spark, f"{self.folder}/{event_object(event)}", Serde.to_json(event))

    def close(self, timeout: float = -1) -> bool:
        return True


def event_object(event: Any) -> str:
    """The object name of ``event``: ``<eventTime>-<eventType>-<runId>.json``, the time in UTC
    without separators (``20261207T104816.123Z``), so names sort by time."""
    moment = dt.datetime.fromisoformat(event.eventTime).astimezone(dt.UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{event.eventType.value}-{event.run.runId}.json"


# --------------------------------------------------------------------------------------------
# Column-level lineage: the openlineage-spark listener
# --------------------------------------------------------------------------------------------

LISTENER_CLASS = "io.openlineage.spark.agent.OpenLineageSparkListener"


def spark_events_file(warehouse: Warehouse, job: str) -> str:
    return f"{events_dir(warehouse)}/spark/{job}.jsonl"


@contextmanager
def column_lineage(spark: Any, settings: LineageSettings, ctx: RunContext) -> Iterator[str | None]:
    """While the block runs, the openlineage-spark listener turns each Spark action into
    OpenLineage events with ``columnLineage`` facets, in the same namespace and with this run
    (`lineage_run_id`) as their parent, written as JSON lines to `spark_events_file`. Yields that
    path, or ``None`` when ``lineage.spark_listener`` is off. The listener is attached to the
    running SparkContext (no session restart) and removed, after its queue drained, at the end.
    """
    if not settings.enabled or not settings.spark_listener:
        yield None
        return
    path = spark_events_file(ctx.warehouse, ctx.job)
    if "://" in path:
        raise ConfigError("the Spark listener writes events to a local warehouse only",
                          key="lineage.spark_listener")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    context = spark.sparkContext._jsc.sc()
    conf = context.getConf()
    for key, value in {
        "transport.type": "file", "transport.location": path, "transport.append": "true",
        "namespace": settings.namespace, "parentJobNamespace": settings.namespace,
        "parentJobName": ctx.job, "parentRunId": lineage_run_id(ctx.run_id),
        "rootParentJobNamespace": settings.namespace, "rootParentJobName": ctx.job,
        "rootParentRunId": lineage_run_id(ctx.run_id),
    }.items():
        conf.set(f"spark.openlineage.{key}", value)
    try:
        listener = spark.sparkContext._jvm.io.openlineage.spark.agent.OpenLineageSparkListener(conf)
    except TypeError as exc:  # py4j: the class is not on the classpath
        raise ConfigError(f"{LISTENER_CLASS} is not on Spark's classpath (add "
                          "io.openlineage:openlineage-spark to etl/jars.txt, make jars)",
                          key="lineage.spark_listener") from exc
    context.addSparkListener(listener)
    try:
        yield path
    finally:
        context.listenerBus().waitUntilEmpty(60_000)
        context.removeSparkListener(listener)
        listener.close()


# --------------------------------------------------------------------------------------------
# Reading stored events
# --------------------------------------------------------------------------------------------


def read_events(warehouse: Warehouse, s3: S3Settings | None = None, *,
                types: Collection[str] = (), runs: Collection[str] = ()) -> list[dict[str, Any]]:
    """The events stored by the file transport under ``<warehouse>/_etl/lineage/``, oldest
    first, without Spark: the JSON lines of a local warehouse; on S3 (``s3a://``, ``s3://``) the
    objects of `EventObjects`, read with boto3 at ``s3``'s endpoint, region and addressing style
    (credentials from the standard AWS chain). Other object stores are not read (send their
    events to an HTTP backend). Given ``types`` (``COMPLETE``...) or ``runs`` (OpenLineage run
    ids), only those events: on S3 they are chosen by their objects' names (`event_object`), so
    no other object is fetched."""
    folder = events_dir(warehouse)
    if folder.startswith(("s3a://", "s3://")):
        texts = _s3_event_objects(folder, s3 or S3Settings(), set(types), set(runs))
    elif "://" in folder:
        raise ConfigError(f"reading stored events from {warehouse.root} is not supported",
                          key="paths.warehouse")
    else:
        texts = [path.read_text() for path in sorted(Path(folder).glob("*.jsonl"))]
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    # an event's text holds its type and its run's id: parse only the lines that may match
    if types:
        lines = [line for line in lines if any(f'"{kind}"' in line for kind in types)]
    if runs:
        lines = [line for line in lines if any(run in line for run in runs)]
    events = [e for e in map(json.loads, lines) if (not types or e["eventType"] in types)
              and (not runs or e["run"]["runId"] in runs)]
    return sorted(events, key=lambda e: e["eventTime"])


#: Objects of events fetched at once from S3 (one GET each).
S3_READERS = 16


def _s3_event_objects(folder: str, s3: S3Settings, types: set[str], runs: set[str]) -> list[str]:
    """The text of each ``<job>/<time>-<type>-<run>.json`` object under ``folder`` whose type
    is in ``types`` and run in ``runs`` (either empty: any), fetched `S3_READERS` at a time."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    bucket, _, prefix = folder.split("://", 1)[1].partition("/")
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint or None, region_name=s3.region or None,
        config=Config(s3={"addressing_style": "path" if s3.path_style_access else "auto"},
                      max_pool_connections=S3_READERS))
    name = re.compile(rf"{re.escape(prefix)}/[^/]+/[^/-]+-([A-Z]+)-([^/]+)\.json")
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            found = name.fullmatch(item["Key"])
            if found and (not types or found[1] in types) and (not runs or found[2] in runs):
                keys.append(item["Key"])

    def text(key: str) -> str:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")

    with ThreadPoolExecutor(S3_READERS) as pool:
        return list(pool.map(text, keys))


# --------------------------------------------------------------------------------------------
# The graph of datasets and jobs
# --------------------------------------------------------------------------------------------

_LAYER_RANK = {"landing": 0, "bronze": 1, "silver": 2, "gold": 3, "quarantine": 4}


@dataclass(frozen=True)
class Graph:
    """Datasets and jobs from COMPLETE events: ``edges`` are ``(from, to)`` node ids, where a
    dataset id is ``namespace:name`` and a job id ``job:namespace/name``; ``labels`` names them
    for people (``silver/flights``, ``landing/airlines``, ``job flights``) and ``names`` holds
    each dataset's OpenLineage name."""

    edges: frozenset[tuple[str, str]]
    labels: Mapping[str, str]
    names: Mapping[str, str]

    def find(self, table: str) -> str:
        """The node id of ``table``: a label (``silver/flights``), a dataset id or a name."""
        wanted = {table, table.rstrip("/")}
        found = sorted(n for n, label in self.labels.items()
                       if label in wanted or n in wanted or self.names.get(n) in wanted)
        if len(found) == 1:
            return found[0]
        datasets = sorted(label for n, label in self.labels.items() if n in self.names)
        if not found:
            raise ConfigError(f"no dataset {table!r} in the stored lineage; known: {datasets}")
        raise ConfigError(f"{table!r} is ambiguous: {sorted(self.labels[n] for n in found)}")

    def around(self, node: str, *, upstream: bool = True, downstream: bool = True) -> Graph:
        """The part of the graph upstream and/or downstream of ``node``."""
        keep: set[tuple[str, str]] = set()
        for forward, wanted in ((False, upstream), (True, downstream)):
            if not wanted:
                continue
            frontier, seen = [node], {node}
            while frontier:
                current = frontier.pop()
                for edge in self.edges:
                    near, far = edge if forward else edge[::-1]
                    if near == current:
                        keep.add(edge)
                        if far not in seen:
                            seen.add(far)
                            frontier.append(far)
        nodes = {n for edge in keep for n in edge} | {node}
        return Graph(frozenset(keep), {n: self.labels[n] for n in nodes},
                     {n: self.names[n] for n in nodes if n in self.names})

    def depths(self) -> dict[str, int]:
        """Each node's distance from the graph's sources along the longest path (cycles are
        cut after as many rounds as there are nodes)."""
        depth = dict.fromkeys(self.labels, 0)
        for _ in range(len(depth)):
            changed = False
            for source, target in self.edges:
                if depth[target] < depth[source] + 1:
                    depth[target] = depth[source] + 1
                    changed = True
            if not changed:
                break
        return depth

    def ordered_edges(self) -> list[tuple[str, str]]:
        """Edges from sources to targets: by depth, then by the layer of the dataset end
        (landing, bronze, silver, gold), then by label."""
        depth = self.depths()

        def key(edge: tuple[str, str]) -> tuple[int, int, str, str]:
            source, target = edge
            dataset = target if target in self.names else source
            layer = self.labels[dataset].split("/", 1)[0]
            return (depth[source], _LAYER_RANK.get(layer, 5), self.labels[source],
                    self.labels[target])

        return sorted(self.edges, key=key)


def build_graph(events: Sequence[Mapping[str, Any]], warehouse: Warehouse,
                landing: str) -> Graph:
    """The lineage graph of every COMPLETE event in ``events``; the datasets under the
    warehouse and the landing root, local or on S3, are labelled ``layer/table`` and
    ``landing/<source>``."""
    roots: dict[str, list[tuple[str, str]]] = {}
    for location, prefix in ((warehouse.root, ""), (landing, "landing/")):
        namespace, name = dataset_id(location)
        roots.setdefault(namespace, []).append((name.rstrip("/"), prefix))
    labels: dict[str, str] = {}
    names: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()

    def dataset(d: Mapping[str, Any]) -> str:
        node = f"{d['namespace']}:{d['name']}"
        labels[node] = _label(d["namespace"], d["name"], roots)
        names[node] = d["name"]
        return node

    for event in events:
        if event.get("eventType") != COMPLETE:
            continue
        job = f"job:{event['job']['namespace']}/{event['job']['name']}"
        labels[job] = f"job {event['job']['name']}"
        edges.update((dataset(d), job) for d in event.get("inputs") or [])
        edges.update((job, dataset(d)) for d in event.get("outputs") or [])
    return Graph(frozenset(edges), labels, names)


def _label(namespace: str, name: str, roots: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    for root, prefix in sorted(roots.get(namespace, []), key=lambda r: -len(r[0])):
        if not root:  # the root of a bucket
            return prefix + name
        if name.startswith(root + "/"):
            return prefix + name[len(root) + 1:]
    return name if namespace == "file" else f"{namespace}/{name}"


def render(graph: Graph, fmt: str) -> str:
    """``graph`` as ``text`` (one ``a -> b`` line per edge), Graphviz ``dot`` or ``mermaid``."""
    edges = graph.ordered_edges()
    if fmt == "text":
        return "\n".join(f"{graph.labels[a]} -> {graph.labels[b]}" for a, b in edges)
    nodes = sorted({n for edge in edges for n in edge} or set(graph.labels),
                   key=lambda n: graph.labels[n])
    ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    if fmt == "dot":
        lines = ["digraph lineage {", "  rankdir=LR;"]
        lines += [f'  {ids[n]} [label="{graph.labels[n]}", '
                  f'shape={"box" if n in graph.names else "ellipse"}];' for n in nodes]
        lines += [f"  {ids[a]} -> {ids[b]};" for a, b in edges]
        return "\n".join([*lines, "}"])
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        lines += [f'  {ids[n]}["{graph.labels[n]}"]' if n in graph.names
                  else f'  {ids[n]}(["{graph.labels[n]}"])' for n in nodes]
        lines += [f"  {ids[a]} --> {ids[b]}" for a, b in edges]
        return "\n".join(lines)
    raise ValueError(f"format must be text, dot or mermaid, got {fmt!r}")


__all__ = [
    "COMPLETE",
    "FAIL",
    "PARENT_ENV",
    "START",
    "EventObjects",
    "Graph",
    "ParentRun",
    "RunLineage",
    "build_graph",
    "column_lineage",
    "dataset_id",
    "event_object",
    "events_file",
    "events_objects",
    "lineage_client",
    "lineage_run_id",
    "quality_facets",
    "read_events",
    "render",
    "spark_events_file",
    "transport_config",
]
