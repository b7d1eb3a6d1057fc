"""Configuration: YAML files become typed, validated objects before Spark starts.

A job's configuration is three YAML documents merged in order, later ones winning key by key:

1. ``conf/base.yml``       settings shared by every job and environment,
2. ``conf/jobs/<job>.yml`` the job: its sources, targets, quality rules and parameters,
3. ``conf/<env>.yml``      the environment overlay (``local`` by default),

then ``--set key.path=value`` overrides from the command line. String values may refer to the
environment as ``${NAME}`` (required) or ``${NAME:-default}``. The merged document is converted
into the dataclasses below; an unknown key, a missing required value or a value of the wrong type
raises `ConfigError` naming the file and the dotted key, so ``etl run`` exits 2 with one message.

Example::

    cfg = load_job_config("flights", env="local", overrides=["spark.shuffle_partitions=8"])
    cfg.targets["silver"].table   # 'flights'
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from etl.errors import ConfigError

DEFAULT_ENV = "local"
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")


# --------------------------------------------------------------------------------------------
# The typed configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkSettings:
    """How the SparkSession is built (see `etl.session`)."""

    app_name: str = "etl"
    #: Used only when the process is not launched by spark-submit (local runs and tests).
    master: str = "local[*]"
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    #: Folder of resolved JVM jars (``make jars``), used only for local runs.
    jars_dir: str = ".jars"
    log_level: str = "WARN"
    #: Extra Spark settings, passed as they are.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PathSettings:
    warehouse: str = "./warehouse"
    landing: str = "./landing"


@dataclass(frozen=True)
class LoggingSettings:
    format: Literal["console", "json"] = "console"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True)
class JobInfo:
    name: str
    #: ``module:function`` that runs the job, called as ``function(spark, ctx, config)``.
    entrypoint: str
    description: str = ""


@dataclass(frozen=True)
class JdbcCredentials:
    """Where a JDBC source's user and password come from: two environment variables, or an AWS
    Secrets Manager secret (JSON with ``username`` and ``password``). Never the values."""

    user_env: str = ""
    password_env: str = ""
    secret_id: str = ""
    #: Region of the secret (default: the AWS chain's region).
    region: str = ""


@dataclass(frozen=True)
class JdbcIncremental:
    """Incremental extraction by a watermark column (a timestamp, a date or an increasing id)."""

    column: str
    #: Re-read rows this far behind the stored watermark (late commits): ``"10 minutes"``,
    #: ``"2 hours"``, ``"1 day"`` for time columns, a number (``"500"``) for id columns.
    lookback: str = ""


@dataclass(frozen=True)
class JdbcPartitioning:
    """Parallel read: ``num_partitions`` ranges of ``column`` between its min and max."""

    column: str
    num_partitions: int = 4


@dataclass(frozen=True)
class JdbcRetry:
    """Bounded retries of a JDBC extract (read and stage) whose connection failed or went away
    (SQLState class 08, PostgreSQL 57P01-57P03): ``attempts`` in all, waiting
    ``backoff_s * 2^(n-1)`` before retry n."""

    attempts: int = 3
    backoff_s: float = 1.0


@dataclass(frozen=True)
class JdbcConfig:
    """A table (or a query) of a database reached over JDBC."""

    url: str
    driver: str
    #: ``schema.table``; or give ``query`` instead.
    table: str = ""
    query: str = ""
    credentials: JdbcCredentials = field(default_factory=JdbcCredentials)
    incremental: JdbcIncremental | None = None
    partitioning: JdbcPartitioning | None = None
    fetch_size: int = 10000
    #: Any other option of Spark's JDBC source, passed as they are.
    options: dict[str, str] = field(default_factory=dict)
    retry: JdbcRetry = field(default_factory=JdbcRetry)


@dataclass(frozen=True)
class CdcConfig:
    """How a change feed is applied to its target (README "Change data capture")."""

    #: The key columns of the captured rows.
    keys: list[str]
    #: The feed's log position (``a.b`` for a struct field; a number or a PostgreSQL text LSN)
    #: and its change time (epoch milliseconds): events are ordered by position, then time.
    position: str = "source.lsn"
    timestamp: str = "ts_ms"
    #: ``hard`` removes deleted rows; ``soft`` keeps them with ``_deleted`` and ``_deleted_at``.
    deletes: Literal["hard", "soft"] = "hard"
    #: ``scd1``: one row per key (the latest); ``scd2``: every version with validity.
    output: Literal["scd1", "scd2"] = "scd1"
    #: scd1 with hard deletes: keep the deletes' keys so that older events arriving later do not
    #: bring deleted rows back (``<warehouse>/_etl/cdc/<job>/<source>/tombstones``).
    tombstones: bool = True
    #: pg_logical: the replication slot (created when missing) and its output plugin.
    slot: str = ""
    plugin: Literal["wal2json"] = "wal2json"


@dataclass(frozen=True)
class RestAuth:
    """The auth header of a REST source: ``<header>: <scheme> <token>``, the token read from an
    environment variable or from an AWS Secrets Manager secret (a JSON key, or the whole secret
    string when ``secret_key`` is empty). Never the value itself."""

    token_env: str = ""
    secret_id: str = ""
    secret_key: str = "token"
    #: Region of the secret (default: the AWS chain's region).
    region: str = ""
    header: str = "Authorization"
    #: Put before the token (``Bearer``); empty sends the token alone (API-key headers).
    scheme: str = "Bearer"


@dataclass(frozen=True)
class RestPagination:
    """How the pages of a REST source follow each other.

    ``page``: ``page_param`` counts from ``start_page``, ``size_param=page_size``; ``offset``:
    ``offset_param`` advances by ``page_size``, ``size_param=page_size``; both end at a page with
    fewer than ``page_size`` records. ``cursor``: the token at ``cursor_path`` in a page's body
    goes to ``cursor_param`` of the next request, until it is missing or empty. ``link``: the
    ``rel="next"`` URL of the ``Link`` header, until there is none. ``none``: one request."""

    style: Literal["none", "page", "offset", "cursor", "link"] = "none"
    page_size: int = 100
    size_param: str = "per_page"
    page_param: str = "page"
    start_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    cursor_path: str = "next"
    #: A source that keeps answering with more pages fails after this many.
    max_pages: int = 10000


@dataclass(frozen=True)
class RestRetry:
    """Bounded retries of one request: connection errors, timeouts, 5xx answers and bodies that
    are not JSON wait ``backoff_s * 2^(n-1)`` (at most ``max_backoff_s``, with jitter); a 429
    waits its ``Retry-After`` (at most ``max_retry_after_s``)."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0


@dataclass(frozen=True)
class RestIncremental:
    """Incremental extraction: the stored watermark goes to the query parameter ``param``; the
    greatest ``field`` of the records read becomes the next watermark."""

    param: str
    field: str
    kind: Literal["timestamp", "date", "integer"] = "timestamp"


@dataclass(frozen=True)
class RestConfig:
    """A JSON REST API endpoint read page by page (`etl.readers.rest`)."""

    url: str
    #: The Spark SQL DDL of one record, e.g. ``"id bigint, name string, updated_at timestamp"``.
    schema: str
    #: Dotted path of the list of records in a page's body; empty when the body is the list.
    records_path: str = ""
    #: Records with a null in any of these columns go to quarantine.
    required: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth: RestAuth | None = None
    pagination: RestPagination = field(default_factory=RestPagination)
    incremental: RestIncremental | None = None
    #: Seconds to wait for a connection and for each read of an answer.
    timeout_s: float = 30.0
    retry: RestRetry = field(default_factory=RestRetry)


@dataclass(frozen=True)
class KafkaConfig:
    """Topics of a Kafka cluster read with Structured Streaming (`etl.readers.kafka`)."""

    bootstrap_servers: str
    #: Topics to subscribe to; or give ``subscribe_pattern`` instead.
    topics: list[str] = field(default_factory=list)
    subscribe_pattern: str = ""
    #: The Spark SQL DDL of a message's JSON value.
    schema: str = ""
    #: Messages with a null in any of these columns go to quarantine.
    required: list[str] = field(default_factory=list)
    #: Where a first run starts: ``earliest`` or ``latest`` (later runs go on from the
    #: checkpoint).
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    #: ``available_now``: read what is there and stop (scheduled runs); ``processing_time``:
    #: run until stopped, one micro-batch every ``interval``.
    trigger: Literal["available_now", "processing_time"] = "available_now"
    interval: str = "1 minute"
    #: At most this many messages per micro-batch (0: no limit).
    max_offsets_per_trigger: int = 0
    #: Any other option of Spark's Kafka source (``kafka.security.protocol``...), as they are.
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceConfig:
    """A source: a folder of landed files (relative to the landing root unless it is a URI), a
    database table over JDBC (``type: jdbc`` with a ``jdbc`` section), a REST API (``type: rest``
    with a ``rest`` section), Kafka topics (``type: kafka`` with a ``kafka`` section), or a change
    feed with a ``cdc`` section: a Delta table's Change Data Feed (``type: delta_cdf``, ``path``
    relative to the warehouse root unless it is a URI) or a PostgreSQL table through a logical
    replication slot (``type: pg_logical``, ``jdbc.table``)."""

    path: str = ""
    type: Literal["files", "jdbc", "rest", "kafka", "delta_cdf", "pg_logical"] = "files"
    format: Literal["csv", "json", "jsonl", "parquet", "delta", "text"] = "csv"
    pattern: str = "*"
    #: Column names in file order; every column is read as a string into bronze.
    columns: list[str] = field(default_factory=list)
    #: Spark reader options (header, delimiter, encoding...).
    options: dict[str, str] = field(default_factory=dict)
    #: ``append``: every file adds rows (facts); ``snapshot``: the newest file is the whole table.
    kind: Literal["append", "snapshot"] = "append"
    jdbc: JdbcConfig | None = None
    cdc: CdcConfig | None = None
    rest: RestConfig | None = None
    kafka: KafkaConfig | None = None


@dataclass(frozen=True)
class S3Settings:
    """hadoop-aws (``s3a://``) settings; credentials come from the standard AWS chain."""

    #: e.g. ``http://127.0.0.1:5055`` for a local S3 API; empty for AWS.
    endpoint: str = ""
    path_style_access: bool = False
    region: str = ""
    #: ``fs.s3a.aws.credentials.provider``; empty keeps hadoop-aws's chain (env, IAM role...).
    credentials_provider: str = ""
    #: Any other ``fs.s3a.*`` setting, passed as they are.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StagingSettings:
    """The staging area: raw extracts under ``<warehouse>/staging/<source>/<date>/<run_id>/``."""

    enabled: bool = False
    #: Staged days older than this are deleted after a successful run (0: keep everything).
    retention_days: int = 30


@dataclass(frozen=True)
class TargetConfig:
    """A table under ``<warehouse>/<layer>/<table>`` (Delta or Parquet), or a warehouse database
    table (``format: jdbc``). `etl.writers.targets.write_target` turns it into a writer."""

    layer: Literal["bronze", "silver", "gold"]
    table: str
    #: ``delta`` (default), ``parquet`` (plain files, no transaction log) or ``jdbc``.
    format: Literal["delta", "parquet", "jdbc"] = "delta"
    partition_by: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    #: How a batch is written: ``append``; ``overwrite`` (the whole table);
    #: ``overwrite_partitions`` (exactly the partitions the batch has rows for); ``merge``
    #: (upsert on ``keys``); ``insert_only`` (new keys only); ``scd2`` (type 2 history).
    #: jdbc targets: ``merge`` (upsert) or ``overwrite`` (truncate-insert).
    mode: Literal[
        "append", "overwrite", "overwrite_partitions", "merge", "insert_only", "scd2"
    ] = "append"
    #: When the batch's schema differs from the table's: ``fail`` before writing, ``evolve``
    #: (additive changes and widenings), or ``rescue`` (unknown values into ``_rescued_data``).
    schema_policy: Literal["evolve", "fail", "rescue"] = "fail"
    #: Duplicate keys in a batch (merge, insert_only): ``reject`` with sample keys, or keep the
    #: ``latest`` by ``sequence_by``.
    duplicates: Literal["reject", "latest"] = "reject"
    #: Ordering columns: a row never overwrites a stored row with a greater sequence.
    sequence_by: list[str] = field(default_factory=list)
    #: scd2: the columns whose change opens a new version, and the column of effective time.
    tracked_columns: list[str] = field(default_factory=list)
    effective_from: str | None = None
    #: merge: the batch column that marks deletes, and its values meaning "delete".
    delete_column: str | None = None
    delete_values: list[str] = field(default_factory=lambda: ["D"])
    #: merge with deletes: keep deleted rows and set this boolean column instead (soft delete).
    soft_delete_column: str | None = None
    #: Delta table properties, e.g. ``delta.enableChangeDataFeed: "true"``.
    properties: dict[str, str] = field(default_factory=dict)
    #: Also register the Delta table in the session catalog under this name (``db.table``).
    catalog_name: str | None = None
    #: Retries of a commit that conflicts with a concurrent writer.
    max_retries: int = 3
    #: parquet: at most this many rows per file, or about this many bytes per file.
    target_file_rows: int | None = None
    target_file_bytes: int | None = None
    #: jdbc: the URL, the table (``schema.name``), the user, the environment variable holding
    #: the password, and the SQL dialect.
    jdbc_url: str | None = None
    jdbc_table: str | None = None
    jdbc_user: str | None = None
    password_env: str = "ETL_PG_PASSWORD"
    dialect: Literal["postgres", "redshift"] = "postgres"

    def problems(self) -> list[tuple[str, str]]:
        """``(key, message)`` for settings that do not fit together (checked at load time)."""
        found = []
        if self.mode in ("merge", "insert_only", "scd2") and not self.keys:
            found.append(("keys", f"mode {self.mode} needs keys"))
        if self.mode == "scd2" and not (self.tracked_columns and self.effective_from):
            found.append(("tracked_columns", "mode scd2 needs tracked_columns and effective_from"))
        if self.mode == "overwrite_partitions" and not self.partition_by:
            found.append(("partition_by", "mode overwrite_partitions needs partition_by"))
        if self.duplicates == "latest" and not self.sequence_by and self.mode == "merge":
            found.append(("sequence_by", "duplicates: latest needs sequence_by"))
        if self.format == "jdbc":
            if not (self.jdbc_url and self.jdbc_table and self.jdbc_user):
                found.append(("jdbc_url", "format jdbc needs jdbc_url, jdbc_table and jdbc_user"))
            if self.mode not in ("merge", "overwrite"):
                found.append(("mode", "format jdbc supports mode merge or overwrite"))
        if self.format == "parquet" and self.mode not in ("append", "overwrite", "overwrite_partitions"):
            found.append(("mode", "format parquet supports append, overwrite, overwrite_partitions"))
        return found


RuleType = Literal[
    "complete", "unique", "primary_key", "range", "allowed_values", "pattern", "non_negative",
    "size", "foreign_key", "sql", "anomaly",
]


@dataclass(frozen=True)
class ReferenceConfig:
    """The table a ``foreign_key`` rule looks keys up in: a warehouse table ``layer/name``
    (``silver/airports``) or the name of a frame the job passes to `etl.quality.audit`."""

    table: str
    columns: list[str]


@dataclass(frozen=True)
class RuleConfig:
    """A data-quality rule checked on a batch before it is published (see `etl.quality.rules`).

    ``type`` decides which of the optional parameters apply; `rule_problems`
    lists the parameters of each type, and `load_job_config` rejects a missing or foreign one
    with the file and key named.
    """

    name: str
    type: RuleType
    severity: Literal["error", "warn"] = "error"
    description: str = ""
    columns: list[str] = field(default_factory=list)
    #: Row-level types: the least share of rows that must pass (default 1.0: every row).
    threshold: float | None = None
    #: Row-level types: failing rows leave the batch and go to ``<warehouse>/quarantine/<table>``.
    quarantine: bool = False
    min: float | None = None
    max: float | None = None
    values: list[str] = field(default_factory=list)
    pattern: str | None = None
    expression: str | None = None
    references: ReferenceConfig | None = None
    metric: Literal["row_count", "completeness", "distinct_count", "mean"] | None = None
    strategy: Literal["relative_rate_of_change", "online_normal"] | None = None
    max_rate_decrease: float | None = None
    max_rate_increase: float | None = None
    lower_deviations: float | None = None
    upper_deviations: float | None = None
    min_history: int | None = None


_COMMON_PARAMS = frozenset({"name", "type", "severity", "description"})
_ROW_LEVEL = frozenset({"threshold", "quarantine"})
#: Per rule type: (required parameters, optional parameters).
RULE_PARAMETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "complete": (frozenset({"columns"}), _ROW_LEVEL),
    "unique": (frozenset({"columns"}), frozenset()),
    "primary_key": (frozenset({"columns"}), frozenset()),
    "range": (frozenset({"columns"}), _ROW_LEVEL | {"min", "max"}),
    "allowed_values": (frozenset({"columns", "values"}), _ROW_LEVEL),
    "pattern": (frozenset({"columns", "pattern"}), _ROW_LEVEL),
    "non_negative": (frozenset({"columns"}), _ROW_LEVEL),
    "size": (frozenset(), frozenset({"min", "max"})),
    "foreign_key": (frozenset({"columns", "references"}), _ROW_LEVEL),
    "sql": (frozenset({"expression"}), _ROW_LEVEL),
    "anomaly": (
        frozenset({"metric", "strategy"}),
        frozenset({"columns", "max_rate_decrease", "max_rate_increase", "lower_deviations",
                   "upper_deviations", "min_history"}),
    ),
}
ROW_LEVEL_TYPES = frozenset(t for t, (_, optional) in RULE_PARAMETERS.items() if "quarantine" in optional)


def _given(rule: RuleConfig) -> set[str]:
    return {
        f.name for f in dataclasses.fields(rule)
        if f.name not in _COMMON_PARAMS and getattr(rule, f.name) != (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    }


def rule_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    """``(parameter, problem)`` for every parameter of ``rule`` that does not fit its type."""
    required, optional = RULE_PARAMETERS[rule.type]
    allowed = ", ".join(sorted(required | optional))
    given = _given(rule)
    problems = [(p, f"parameter does not apply to this type (it takes: {allowed})")
                for p in sorted(given - required - optional)]
    problems += [(p, "required parameter missing") for p in sorted(required - given)]
    if problems:
        return problems
    if rule.threshold is not None and not 0 < rule.threshold <= 1:
        problems.append(("threshold", f"expected a share in (0, 1], got {rule.threshold}"))
    if rule.type in ("range", "size") and rule.min is None and rule.max is None:
        problems.append(("min", "give min, max or both"))
    if rule.min is not None and rule.max is not None and rule.min > rule.max:
        problems.append(("max", f"max {rule.max} is below min {rule.min}"))
    if rule.pattern is not None:
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            problems.append(("pattern", f"not a regular expression: {exc}"))
    if rule.references is not None:
        ref = rule.references
        if len(ref.columns) != len(rule.columns):
            problems.append(("references.columns", (
                f"expected {len(rule.columns)} columns to match {rule.columns}, got {ref.columns}")))
        if "/" in ref.table and ref.table.split("/")[0] not in ("bronze", "silver", "gold"):
            problems.append(("references.table", (
                f"expected layer/name (bronze, silver or gold) or a frame name, got {ref.table!r}")))
    if rule.type == "anomaly":
        problems += _anomaly_problems(rule)
    return problems


def _anomaly_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    problems = []
    if rule.metric == "row_count" and rule.columns:
        problems.append(("columns", "row_count is measured on the whole batch; remove columns"))
    if rule.metric != "row_count" and len(rule.columns) != 1:
        problems.append(("columns", f"metric {rule.metric} needs exactly one column"))
    rate = {"max_rate_decrease", "max_rate_increase"}
    normal = {"lower_deviations", "upper_deviations"}
    given = _given(rule)
    if rule.strategy == "relative_rate_of_change":
        problems += [(p, "applies to strategy online_normal") for p in sorted(given & normal)]
        if not given & rate:
            problems.append(("max_rate_increase", "give max_rate_decrease, max_rate_increase or both"))
    else:
        problems += [(p, "applies to strategy relative_rate_of_change") for p in sorted(given & rate)]
    for p in sorted(given & (rate | normal)):
        if getattr(rule, p) <= 0:
            problems.append((p, f"expected a positive number, got {getattr(rule, p)}"))
    if rule.min_history is not None and rule.min_history < 1:
        problems.append(("min_history", f"expected at least 1, got {rule.min_history}"))
    return problems


@dataclass(frozen=True)
class EmrSettings:
    """Amazon EMR and EMR Serverless submission (`etl submit --target emr|emr-serverless`)."""

    region: str = "us-east-1"
    #: AWS endpoint override (an S3/EMR API server in tests); empty for AWS itself.
    endpoint_url: str = ""
    #: Where the artefacts are uploaded: ``s3://bucket/prefix``.
    artifacts_uri: str = ""
    #: The cluster for exported Airflow DAGs (may be a Jinja template).
    cluster_id: str = "{{ var.value.etl_emr_cluster_id }}"
    action_on_failure: Literal["TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE"] = "CONTINUE"
    deploy_mode: Literal["cluster", "client"] = "cluster"
    #: EMR Serverless: the job run's IAM role and the S3 folder for its logs.
    execution_role_arn: str = ""
    log_uri: str = ""
    #: Seconds between two polls of a step's state.
    poll_s: float = 15.0
    #: Extra ``--conf`` settings of the spark-submit command.
    spark_conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DataprocSettings:
    """Google Dataproc submission (`etl submit --target dataproc`, workflow templates)."""

    project: str = ""
    region: str = ""
    cluster: str = ""
    #: Where the artefacts are uploaded: ``gs://bucket/prefix``.
    artifacts_uri: str = ""
    spark_conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploySettings:
    """How jobs are shipped to clusters: the built artefacts (``make dist``) and the targets."""

    dist_dir: str = "dist"
    #: Environment variables of the driver and executors on the cluster (e.g. ETL_WAREHOUSE).
    environment: dict[str, str] = field(default_factory=dict)
    emr: EmrSettings = field(default_factory=EmrSettings)
    dataproc: DataprocSettings = field(default_factory=DataprocSettings)


@dataclass(frozen=True)
class LineageSettings:
    """OpenLineage run events (see `etl.lineage`)."""

    enabled: bool = True
    #: The OpenLineage namespace of the jobs (datasets get the namespace of their storage).
    namespace: str = "etl"
    #: ``file``: JSON lines under ``<warehouse>/_etl/lineage/``; ``http``: a Marquez-compatible
    #: API at ``url`` + ``endpoint``; ``console``: the event JSON in the log.
    transport: Literal["file", "http", "console"] = "file"
    url: str = ""
    endpoint: str = "api/v1/lineage"
    timeout_s: float = 5.0
    #: HTTP retries on connection errors and 5xx answers (with backoff).
    retries: int = 5
    #: Name of the environment variable holding the HTTP API key (the key never goes in YAML).
    api_key_env: str = ""
    #: Source repository URL for the job's ``sourceCodeLocation`` facet.
    repo_url: str = ""
    #: Attach the openlineage-spark listener during runs, so Spark's plans add column-level
    #: lineage (events in ``<warehouse>/_etl/lineage/spark/<job>.jsonl``); needs the
    #: ``io.openlineage:openlineage-spark`` jar (etl/jars.txt).
    spark_listener: bool = False


@dataclass(frozen=True)
class AlertChannel:
    """Where an alert goes: an HTTP webhook (Slack-compatible JSON), an SNS topic, or the log."""

    type: Literal["webhook", "sns", "log"]
    #: webhook: the URL to POST to.
    url: str = ""
    #: sns: the topic ARN, and optionally the region and endpoint (a local SNS API).
    topic_arn: str = ""
    region: str = ""
    endpoint_url: str = ""
    timeout_s: float = 5.0


@dataclass(frozen=True)
class AlertSettings:
    """When runs raise alerts (see `etl.alerts`)."""

    channels: list[AlertChannel] = field(default_factory=list)
    on_failure: bool = True
    on_quality_gate: bool = True
    on_anomaly: bool = True
    #: A run longer than this many seconds raises a ``slow_run`` alert (0 or absent: never).
    max_duration_s: float = 0.0


@dataclass(frozen=True)
class Settings:
    """What every command needs without a job: base.yml + <env>.yml."""

    env: str
    spark: SparkSettings = field(default_factory=SparkSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    lineage: LineageSettings = field(default_factory=LineageSettings)


@dataclass(frozen=True)
class JobConfig:
    env: str
    job: JobInfo
    spark: SparkSettings = field(default_factory=SparkSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    targets: dict[str, TargetConfig] = field(default_factory=dict)
    quality: dict[str, list[RuleConfig]] = field(default_factory=dict)
    #: Job-specific parameters, read by the job's entrypoint.
    params: dict[str, Any] = field(default_factory=dict)
    s3: S3Settings = field(default_factory=S3Settings)
    staging: StagingSettings = field(default_factory=StagingSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    lineage: LineageSettings = field(default_factory=LineageSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def target(self, name: str) -> TargetConfig:
        try:
            return self.targets[name]
        except KeyError:
            raise ConfigError(
                f"the job needs a target named {name!r}; configured: {sorted(self.targets)}",
                file=f"conf/jobs/{self.job.name}.yml",
                key="targets",
            ) from None

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            raise ConfigError(
                f"the job needs a source named {name!r}; configured: {sorted(self.sources)}",
                file=f"conf/jobs/{self.job.name}.yml",
                key="sources",
            ) from None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def conf_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The configuration folder: the argument, else ``$ETL_CONF_DIR``, else ``./conf``."""
    return Path(explicit or os.environ.get("ETL_CONF_DIR") or "conf")


def list_jobs(directory: str | os.PathLike[str] | None = None) -> list[str]:
    root = conf_dir(directory) / "jobs"
    if not root.is_dir():
        raise ConfigError("folder of job configurations not found", file=str(root))
    return sorted(p.stem for p in root.glob("*.yml"))


def load_job_config(
    job: str,
    *,
    env: str = DEFAULT_ENV,
    overrides: list[str] | tuple[str, ...] = (),
    directory: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> JobConfig:
    """Read, merge, substitute and validate the configuration of ``job`` in ``env``."""
    root = conf_dir(directory)
    if not _JOB_NAME.match(job):
        raise ConfigError(f"job name {job!r} must match {_JOB_NAME.pattern}")
    job_file = root / "jobs" / f"{job}.yml"
    if not job_file.exists():
        known = ", ".join(list_jobs(root)) if (root / "jobs").is_dir() else "none"
        raise ConfigError(f"unknown job {job!r} (known jobs: {known})", file=str(job_file))
    env_file = root / f"{env}.yml"
    if not env_file.exists():
        raise ConfigError(f"unknown environment {env!r}", file=str(env_file))

    merged, origin = _merged_documents(
        (root / "base.yml", job_file, env_file), env, overrides, environ
    )
    config = _convert(JobConfig, merged, origin, "", str(job_file))
    if config.job.name != job:
        raise ConfigError(
            f"names job {config.job.name!r} but the file is for {job!r}",
            file=origin.get("job.name", str(job_file)),
            key="job.name",
        )
    for name, source in config.sources.items():
        _check_source(name, source, origin, str(job_file))
    for name, target in config.targets.items():
        for key, message in target.problems():
            raise ConfigError(message, file=origin.get(f"targets.{name}", str(job_file)),
                              key=f"targets.{name}.{key}")
    for name in config.quality:
        if name not in config.targets:
            raise ConfigError(
                f"quality rules for unknown target {name!r}; targets: {sorted(config.targets)}",
                file=origin.get(f"quality.{name}", str(job_file)),
                key=f"quality.{name}",
            )
    _check_rules(config.quality, origin, str(job_file))
    return config


def _check_source(
    name: str, source: SourceConfig, origin: Mapping[str, str], default_file: str
) -> None:
    """A files source needs ``path``; a jdbc source needs ``jdbc`` with a table or a query and
    one way to get credentials; rest and kafka sources, see `_check_stream_source`; delta_cdf and
    pg_logical sources, see `_check_cdc_source`. Only the sections of the source's own type may be
    given."""
    key = f"sources.{name}"

    def fail(message: str, sub: str) -> ConfigError:
        return ConfigError(message, file=_origin_of(origin, key) or default_file, key=f"{key}.{sub}")

    owners = {"jdbc": ("jdbc", "pg_logical"), "rest": ("rest",), "kafka": ("kafka",)}
    sections = {"jdbc": source.jdbc, "rest": source.rest, "kafka": source.kafka}
    for section, value in sections.items():
        if value is not None and source.type not in owners[section]:
            raise fail(f"only a source of type {' or '.join(owners[section])} has a {section} section",
                       section)
    if source.type in ("delta_cdf", "pg_logical"):
        _check_cdc_source(source, fail)
        if source.type == "delta_cdf":
            return
    elif source.cdc is not None:
        raise fail("only a delta_cdf or pg_logical source has a cdc section", "cdc")
    if source.type in ("rest", "kafka"):
        _check_stream_source(source, fail)
        return
    if source.type == "files":
        if not source.path:
            raise fail("required value missing for a files source (expected str)", "path")
        return
    jdbc = source.jdbc
    if jdbc is None:
        raise fail(f"required value missing for a {source.type} source (expected a mapping)",
                   "jdbc")
    if source.type == "pg_logical" and not jdbc.table:
        raise fail("required value missing for a pg_logical source (expected schema.table)",
                   "jdbc.table")
    if bool(jdbc.table) == bool(jdbc.query):
        raise fail("give exactly one of table and query", "jdbc.table")
    if jdbc.partitioning and jdbc.query:
        raise fail("partitioned reads need table, not query", "jdbc.partitioning")
    if jdbc.partitioning and jdbc.partitioning.num_partitions < 1:
        raise fail(
            f"expected at least 1, got {jdbc.partitioning.num_partitions}",
            "jdbc.partitioning.num_partitions",
        )
    creds = jdbc.credentials
    if bool(creds.secret_id) == bool(creds.user_env or creds.password_env):
        raise fail("give either secret_id or user_env and password_env", "jdbc.credentials")
    if not creds.secret_id and not (creds.user_env and creds.password_env):
        raise fail("give both user_env and password_env", "jdbc.credentials")


def _check_cdc_source(source: SourceConfig, fail: Callable[[str, str], ConfigError]) -> None:
    """A change-feed source needs ``cdc`` with keys; delta_cdf a ``path``, pg_logical a slot
    name PostgreSQL accepts."""
    cdc = source.cdc
    if cdc is None:
        raise fail(f"required value missing for a {source.type} source (expected a mapping)",
                   "cdc")
    if not cdc.keys:
        raise fail("expected at least one key column", "cdc.keys")
    if source.type == "delta_cdf":
        if not source.path:
            raise fail("required value missing for a delta_cdf source (expected str)", "path")
        if source.jdbc is not None or cdc.slot:
            raise fail("a delta_cdf source has no jdbc section and no slot", "cdc.slot")
        return
    if not _SLOT.match(cdc.slot):
        raise fail(f"expected lower-case letters, digits and _ (at most 63), got {cdc.slot!r}",
                   "cdc.slot")


def _check_stream_source(source: SourceConfig, fail: Callable[[str, str], ConfigError]) -> None:
    """A rest source needs its ``rest`` section and a kafka source its ``kafka`` section; their
    settings must be in range."""
    if getattr(source, source.type) is None:
        raise fail(f"required value missing for a {source.type} source (expected a mapping)",
                   source.type)
    if source.rest is not None:
        rest = source.rest
        checks = [
            (rest.pagination.page_size >= 1, "pagination.page_size", "expected at least 1"),
            (rest.pagination.max_pages >= 1, "pagination.max_pages", "expected at least 1"),
            (rest.retry.attempts >= 1, "retry.attempts", "expected at least 1"),
            (rest.timeout_s > 0, "timeout_s", "expected a positive number of seconds"),
            (rest.url.startswith(("http://", "https://")), "url", "expected an http(s) URL"),
            (bool(rest.schema.strip()), "schema", "required value missing (expected str)"),
        ]
        if rest.auth is not None:
            checks.append((bool(rest.auth.token_env) != bool(rest.auth.secret_id), "auth",
                           "give exactly one of token_env and secret_id"))
        for ok, key, message in checks:
            if not ok:
                raise fail(message, f"rest.{key}")
    if source.kafka is not None:
        kafka = source.kafka
        if bool(kafka.topics) == bool(kafka.subscribe_pattern):
            raise fail("give exactly one of topics and subscribe_pattern", "kafka.topics")
        if not kafka.schema.strip():
            raise fail("required value missing (expected str)", "kafka.schema")
        if kafka.max_offsets_per_trigger < 0:
            raise fail("expected 0 (no limit) or more", "kafka.max_offsets_per_trigger")


def _check_rules(
    quality: Mapping[str, list[RuleConfig]], origin: Mapping[str, str], default_file: str
) -> None:
    """Each rule's parameters must fit its type, and names must be unique per target."""
    for target, rules in quality.items():
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            where = f"quality.{target}[{i}]"
            file = origin.get(f"quality.{target}", default_file)
            if rule.name in seen:
                raise ConfigError(f"duplicate rule name {rule.name!r}", file=file,
                                  key=f"{where}.name")
            seen.add(rule.name)
            for param, problem in rule_problems(rule):
                raise ConfigError(f"rule {rule.name!r} ({rule.type}): {problem}", file=file,
                                  key=f"{where}.{param}")


def load_settings(
    *,
    env: str = DEFAULT_ENV,
    overrides: list[str] | tuple[str, ...] = (),
    directory: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read base.yml and the ``env`` overlay (no job), e.g. to find the warehouse."""
    root = conf_dir(directory)
    env_file = root / f"{env}.yml"
    if not env_file.exists():
        raise ConfigError(f"unknown environment {env!r}", file=str(env_file))
    merged, origin = _merged_documents((root / "base.yml", env_file), env, overrides, environ)
    wanted = {f.name for f in dataclasses.fields(Settings)}
    return _convert(
        Settings, {k: v for k, v in merged.items() if k in wanted}, origin, "", str(env_file)
    )


def _merged_documents(
    files: tuple[Path, ...],
    env: str,
    overrides: list[str] | tuple[str, ...],
    environ: Mapping[str, str] | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in files:
        _merge(merged, read_yaml(path), origin, str(path), prefix="")
    for item in overrides:
        _apply_override(merged, origin, item)
    merged["env"] = env
    origin["env"] = "--env"
    merged = _substitute(merged, origin, "", os.environ if environ is None else environ)
    return merged, origin


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping. A missing file is an error, never an empty config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error{where}: {problem}", file=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top, got {type(data).__name__}", file=str(path))
    return data


def _merge(
    into: dict[str, Any], new: Mapping[str, Any], origin: dict[str, str], file: str, prefix: str
) -> None:
    for key, value in new.items():
        key = str(key)
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            origin.setdefault(dotted, file)
            _merge(into[key], value, origin, file, prefix=f"{dotted}.")
        else:
            into[key] = _deep_copy(value)
            _record_origin(value, origin, file, dotted)


def _record_origin(value: Any, origin: dict[str, str], file: str, dotted: str) -> None:
    origin[dotted] = file
    if isinstance(value, Mapping):
        for key, item in value.items():
            _record_origin(item, origin, file, f"{dotted}.{key}")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _apply_override(merged: dict[str, Any], origin: dict[str, str], item: str) -> None:
    """Apply one ``--set a.b.c=value``; the value is parsed as YAML (numbers, booleans, lists)."""
    if "=" not in item:
        raise ConfigError(f"expected KEY=VALUE, got {item!r}", file="--set")
    dotted, raw = item.split("=", 1)
    dotted = dotted.strip()
    parts = dotted.split(".")
    if dotted.startswith("spark.conf.") and len(parts) > 3:
        parts = ["spark", "conf", dotted[len("spark.conf."):]]  # Spark setting names have dots
    if not all(parts):
        raise ConfigError(f"bad key {dotted!r}", file="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node: Any = merged
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[part] = child
            origin[".".join(parts[: depth + 1])] = "--set"
        if not isinstance(child, dict):
            raise ConfigError(
                f"{'.'.join(parts[: depth + 1])} is a value, not a section", file="--set", key=dotted
            )
        node = child
    node[parts[-1]] = value
    _record_origin(value, origin, "--set", dotted)


def _substitute(value: Any, origin: dict[str, str], dotted: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _substitute(v, origin, f"{dotted}.{k}" if dotted else k, environ)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, origin, dotted, environ) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _ENV_REF.fullmatch(value)

    def replace(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            file=_origin_of(origin, dotted),
            key=dotted,
        )

    result = _ENV_REF.sub(replace, value)
    if whole and result.strip():
        # a value that is only ${VAR} takes the variable's YAML type: ${N:-8} is the integer 8
        try:
            parsed = yaml.safe_load(result)
        except yaml.YAMLError:
            return result
        if isinstance(parsed, (bool, int, float)):
            return parsed
    return result


def _origin_of(origin: Mapping[str, str], dotted: str) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        found = origin.get(".".join(parts[:end]))
        if found:
            return found
    return "configuration"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list,):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin in (dict,):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


def _convert(tp: Any, value: Any, origin: Mapping[str, str], dotted: str, default_file: str) -> Any:
    """Convert a YAML value to ``tp``, raising `ConfigError` with file and key on mismatch."""

    def fail(message: str, key: str = dotted) -> ConfigError:
        return ConfigError(message, file=_origin_of(origin, key) if key else default_file, key=key)

    if tp is Any:
        return value
    type_origin = get_origin(tp)
    if type_origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, origin, dotted, default_file)
    if value is None:
        raise fail(f"required value missing (expected {_type_name(tp)})")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {_describe(value)}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            key = f"{dotted}.{unknown[0]}" if dotted else unknown[0]
            raise fail(f"unknown key (allowed: {', '.join(sorted(fields))})", key)
        kwargs = {}
        for name, f in fields.items():
            key = f"{dotted}.{name}" if dotted else name
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], origin, key, default_file)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(
                    f"required value missing (expected {_type_name(hints[name])})",
                    file=_origin_of(origin, dotted) if dotted else default_file,
                    key=key,
                )
        return tp(**kwargs)  # type: ignore[operator]
    if type_origin is Literal:
        if value not in get_args(tp):
            raise fail(f"expected {_type_name(tp)}, got {_describe(value)}")
        return value
    if type_origin is list:
        (item_type,) = get_args(tp)
        if not isinstance(value, list):
            raise fail(f"expected {_type_name(tp)}, got {_describe(value)}")
        return [
            _convert(item_type, item, origin, f"{dotted}[{i}]", default_file)
            for i, item in enumerate(value)
        ]
    if type_origin is dict:
        _, item_type = get_args(tp)
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {_describe(value)}")
        return {
            str(k): _convert(item_type, v, origin, f"{dotted}.{k}", default_file)
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise fail(f"expected a string, got {_describe(value)}")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    raise TypeError(f"unsupported configuration type {tp!r} at {dotted}")


__all__ = [
    "DEFAULT_ENV",
    "ROW_LEVEL_TYPES",
    "RULE_PARAMETERS",
    "AlertChannel",
    "AlertSettings",
    "DataprocSettings",
    "DeploySettings",
    "EmrSettings",
    "JdbcConfig",
    "JdbcCredentials",
    "JdbcIncremental",
    "JdbcPartitioning",
    "JdbcRetry",
    "JobConfig",
    "JobInfo",
    "KafkaConfig",
    "LineageSettings",
    "LoggingSettings",
    "PathSettings",
    "ReferenceConfig",
    "RestAuth",
    "RestConfig",
    "RestIncremental",
    "RestPagination",
    "RestRetry",
    "RuleConfig",
    "RuleType",
    "S3Settings",
    "Settings",
    "SourceConfig",
    "SparkSettings",
    "StagingSettings",
    "TargetConfig",
    "conf_dir",
    "list_jobs",
    "load_job_config",
    "load_settings",
    "read_yaml",
    "rule_problems",
]
