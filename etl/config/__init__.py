"""Configuration: YAML files become typed, validated objects before Spark starts.

* `etl.config.model`: the dataclasses of the settings and of a job (targets, staging, deploy,
  lineage, alerts); `etl.config.sources` and `etl.config.rules`: sources and quality rules;
* `etl.config.loading`: reading, merging (base, job, environment, ``--set``), ``${VAR}``
  references and conversion, with the file and dotted key of every error;
* `etl.config.checks`: what the types alone cannot say.

Example::

    cfg = load_job_config("flights", env="local", overrides=["spark.shuffle_partitions=8"])
    cfg.targets["silver_flights"].table   # 'flights'
"""

from etl.config.loading import (
    DEFAULT_ENV,
    ENV_VARIABLE,
    conf_dir,
    convert,
    default_env,
    list_jobs,
    load_job_config,
    load_settings,
    read_yaml,
)
from etl.config.model import (
    AlertChannel,
    AlertSettings,
    DataprocSettings,
    DeploySettings,
    EmrSettings,
    JobConfig,
    JobInfo,
    LineageSettings,
    LoggingSettings,
    PathSettings,
    S3Settings,
    Settings,
    SparkSettings,
    StagingSettings,
    TargetConfig,
)
from etl.config.rules import (
    ROW_LEVEL_TYPES,
    RULE_PARAMETERS,
    ReferenceConfig,
    RuleConfig,
    RuleType,
    rule_problems,
)
from etl.config.sources import (
    CdcConfig,
    JdbcConfig,
    JdbcCredentials,
    JdbcIncremental,
    JdbcPartitioning,
    JdbcRetry,
    KafkaConfig,
    RestAuth,
    RestConfig,
    RestIncremental,
    RestPagination,
    RestRetry,
    SchemaDrift,
    SourceConfig,
)

__all__ = [
    "DEFAULT_ENV",
    "ENV_VARIABLE",
    "ROW_LEVEL_TYPES",
    "RULE_PARAMETERS",
    "AlertChannel",
    "AlertSettings",
    "CdcConfig",
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
    "SchemaDrift",
    "Settings",
    "SourceConfig",
    "SparkSettings",
    "StagingSettings",
    "TargetConfig",
    "conf_dir",
    "convert",
    "default_env",
    "list_jobs",
    "load_job_config",
    "load_settings",
    "read_yaml",
    "rule_problems",
]
