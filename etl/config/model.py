"""The typed configuration: settings shared by every command and the whole of a job.

`etl.config.loading` turns YAML into these frozen dataclasses; every field here is a key of the
YAML (docs/configuration.md describes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from etl.config.privacy import PrivacyConfig
from etl.config.retention import RetentionConfig
from etl.config.rules import RuleConfig
from etl.config.sources import JdbcCredentials, SchemaDrift, SourceConfig
from etl.errors import ConfigError


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
    description: str = ""
    #: The module of the job's transforms (``jobs.flights``): the functions ``derive``,
    #: ``transform`` and ``touched`` name. Empty for a job without Python.
    transforms: str = ""
    #: The column holding a row's logical date, in the typed rows and in every target built
    #: from them: ``--date``/``--from --to`` reprocess exactly those dates. Empty: the job has
    #: no backfill.
    date_column: str = ""
    #: ``module:function`` run instead of the flow, as ``function(spark, ctx, config)``: for
    #: work the flow cannot express (the job then keeps its own books).
    entrypoint: str = ""



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
    """The staging area: raw extracts under ``<warehouse>/staging/<source>/<date>/<run_id>/``,
    kept as long as ``retention.staging`` says."""

    enabled: bool = False


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
    #: (upsert on ``keys``); ``insert_only`` (new keys only); ``scd2`` (type 2 history);
    #: ``apply_changes`` (the change events of a ``delta_cdf`` or ``pg_logical`` source, as its
    #: ``cdc`` section says). jdbc targets: ``merge`` (upsert) or ``overwrite`` (truncate-insert;
    #: an empty batch only with ``allow_empty``).
    mode: Literal[
        "append", "overwrite", "overwrite_partitions", "merge", "insert_only", "scd2",
        "apply_changes",
    ] = "append"
    #: When the batch's schema differs from the table's: ``fail`` before writing, ``evolve``
    #: (additive changes and widenings), or ``rescue`` (unknown values into ``_rescued_data``).
    schema_policy: Literal["evolve", "fail", "rescue"] = "fail"
    #: Duplicate keys in a batch (merge, insert_only; jdbc targets with keys in any mode):
    #: ``reject`` with sample keys, or keep the ``latest`` by ``sequence_by``.
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
    #: What the flow builds the target from: one source (the rows this run read, typed), or
    #: targets (their tables, for the values of ``replace_by`` this run touched).
    inputs: list[str] = field(default_factory=list)
    #: The function of the job's transforms module that makes the target's rows, called with
    #: the inputs and ``references`` as keyword arguments named after them.
    transform: str | None = None
    #: Sources whose current tables (typed) the transform and the ``foreign_key`` rules look up.
    references: list[str] = field(default_factory=list)
    #: A reference read only for the keys a small batch names: ``{reference: {batch column:
    #: reference column}}``, when the batch has at most ``narrow_below`` rows and the target
    #: exists.
    narrow: dict[str, dict[str, str]] = field(default_factory=dict)
    narrow_below: int = 1_000_000
    #: A SQL condition: rows of the transform's output that do not meet it are filtered
    #: (counted as filtered, not loaded).
    filter: str | None = None
    #: Targets built from targets: the column whose values a run rewrites (those its inputs'
    #: batches touched; ``touched`` names a function computing them when they are not a
    #: column of the input batch).
    replace_by: str | None = None
    touched: str | None = None
    #: merge with ``partition_by``: only the partitions present in the batch are scanned.
    prune_partitions: bool = True
    #: Let a write that would replace rows with nothing go ahead (an empty dated run, an empty
    #: snapshot file, a JDBC full load of an empty batch): refused by default, the target left
    #: as it was.
    allow_empty: bool = False
    #: jdbc: the URL, the table (``schema.name``), the user, the environment variable holding
    #: the password, and the SQL dialect. ``jdbc_user`` + ``password_env`` is the older form of
    #: ``jdbc_credentials`` (below), which is preferred.
    jdbc_url: str | None = None
    jdbc_table: str | None = None
    jdbc_user: str | None = None
    password_env: str = "ETL_PG_PASSWORD"
    dialect: Literal["postgres", "redshift"] = "postgres"
    #: jdbc: where the user and password come from, as for jdbc sources: ``user_env`` and
    #: ``password_env`` (environment variables), or an AWS Secrets Manager ``secret_id``.
    jdbc_credentials: JdbcCredentials | None = None

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
            if not (self.jdbc_url and self.jdbc_table and (self.jdbc_user or self.jdbc_credentials)):
                found.append(("jdbc_url", "format jdbc needs jdbc_url, jdbc_table and "
                                          "jdbc_credentials (or jdbc_user)"))
            if self.mode not in ("merge", "overwrite"):
                found.append(("mode", "format jdbc supports mode merge or overwrite"))
            creds = self.jdbc_credentials
            if creds is not None:
                if self.jdbc_user:
                    found.append(("jdbc_credentials", "give jdbc_credentials or jdbc_user, not both"))
                elif bool(creds.secret_id) == bool(creds.user_env or creds.password_env) or (
                        not creds.secret_id and not (creds.user_env and creds.password_env)):
                    found.append(("jdbc_credentials",
                                  "give either secret_id or both user_env and password_env"))
        if self.format == "parquet" and self.mode not in ("append", "overwrite", "overwrite_partitions"):
            found.append(("mode", "format parquet supports append, overwrite, overwrite_partitions"))
        return found


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
    #: The cluster the artefacts are built for (``make dist``) and submitted to; it decides what
    #: is shipped and how (`etl.submit.platforms`, docs/deployment.md).
    platform: Literal["emr-7", "emr-serverless-7", "dataproc-2.2", "standalone"] = "standalone"
    #: The Python (``major.minor``) of the packed environment.
    python_version: str = "3.11"
    #: The interpreter of that version on the cluster's nodes, which the packed environment runs
    #: on; empty: the platform's (``/usr/bin/python3.11`` on EMR, ``/opt/conda/default/bin/
    #: python3.11`` on Dataproc, the building Python for standalone).
    python: str = ""
    #: The platform of the compiled packages (uv's ``--python-platform``), e.g.
    #: ``aarch64-manylinux_2_28`` for Graviton instances.
    python_platform: str = "x86_64-manylinux_2_28"
    #: Coordinates (``group:artifact``) of etl/jars.txt that the cluster provides besides what the
    #: platform always does, e.g. ``io.delta:delta-spark_2.12`` on EMR with Delta enabled.
    provided_jars: list[str] = field(default_factory=list)


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
    #: A run that set landed files aside (it succeeds with the others) raises a ``bad_file``
    #: warning.
    on_bad_file: bool = True
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
class ExportConfig:
    """A copy of a target's current table written after each run that published something:
    ``<path>/<export name>`` (local or a URI such as ``s3a://bucket/exports``), replaced whole."""

    input: str
    #: The folder; empty: no export (e.g. ``${ETL_SHOP_EXPORT:-}`` unset).
    path: str = ""
    format: Literal["csv", "json", "parquet"] = "csv"
    #: Spark writer options (``header: "true"``).
    options: dict[str, str] = field(default_factory=dict)
    order_by: list[str] = field(default_factory=list)
    #: One file (one task writes it) rather than one per partition.
    single_file: bool = True


@dataclass(frozen=True)
class JobConfig:
    env: str
    job: JobInfo
    #: The configuration folder the job was read from (set by the loader, not in YAML).
    conf_dir: str = field(default="conf", metadata={"yaml": False})
    spark: SparkSettings = field(default_factory=SparkSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    #: The schema drift policy of every source that does not say its own (key by key).
    schema_drift: SchemaDrift = field(default_factory=SchemaDrift)
    targets: dict[str, TargetConfig] = field(default_factory=dict)
    quality: dict[str, list[RuleConfig]] = field(default_factory=dict)
    #: Copies of targets written after each run (``<path>/<name>``).
    exports: dict[str, ExportConfig] = field(default_factory=dict)
    #: Job-specific parameters, read by a job's own entrypoint.
    params: dict[str, Any] = field(default_factory=dict)
    s3: S3Settings = field(default_factory=S3Settings)
    staging: StagingSettings = field(default_factory=StagingSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    lineage: LineageSettings = field(default_factory=LineageSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: Personal columns and what each layer holds of them; subjects `etl forget` erases.
    personal_data: PrivacyConfig = field(default_factory=PrivacyConfig)
    #: How long each layer (and named targets) keeps its rows (`etl maintain --retention`).
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    @property
    def file(self) -> str:
        """The job's YAML file, as errors name it."""
        return f"{self.conf_dir}/jobs/{self.job.name}.yml"

    def target(self, name: str) -> TargetConfig:
        try:
            return self.targets[name]
        except KeyError:
            raise ConfigError(
                f"the job needs a target named {name!r}; configured: {sorted(self.targets)}",
                file=self.file,
                key="targets",
            ) from None

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            raise ConfigError(
                f"the job needs a source named {name!r}; configured: {sorted(self.sources)}",
                file=self.file,
                key="sources",
            ) from None

