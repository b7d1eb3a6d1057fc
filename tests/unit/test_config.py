"""etl.config.load_job_config: the real conf/ folder, and copies of it broken on purpose.

Every failure must be a `ConfigError` (exit code 2) whose message names the file and the dotted
key; the messages are asserted whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from etl.config import (
    JobConfig,
    JobInfo,
    LoggingSettings,
    PathSettings,
    RuleConfig,
    SourceConfig,
    SparkSettings,
    TargetConfig,
    load_job_config,
)
from etl.errors import EXIT_USAGE, ConfigError

SPARK_KEYS = "app_name, conf, driver_memory, jars_dir, log_level, master, shuffle_partitions"
TOP_KEYS = ("alerts, deploy, env, exports, job, lineage, logging, params, paths, personal_data, "
            "quality, retention, s3, schema_drift, sources, spark, staging, targets")


@pytest.fixture()
def conf(tmp_path, conf_dir) -> Path:
    """A private copy of the real configuration folder, to break."""
    return Path(shutil.copytree(conf_dir, tmp_path / "conf"))


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact piece of a YAML file (failing loudly if it is not there)."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def config_error(job: str = "flights", **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_job_config(job, **kwargs)
    assert info.value.exit_code == EXIT_USAGE == 2
    return info.value


# --------------------------------------------------------------------------------------------
# The real configuration
# --------------------------------------------------------------------------------------------


def test_real_flights_config_loads_typed_values(conf_dir):
    config = load_job_config("flights", directory=conf_dir, environ={})

    assert isinstance(config, JobConfig)
    assert config.env == "local"
    assert config.job == JobInfo(
        name="flights",
        description="NYC 2013 departures -> bronze, silver flights (MERGE), gold "
        "carrier_daily_performance",
        transforms="jobs.flights",
        date_column="flight_date",
    )
    assert config.spark == SparkSettings(
        app_name="etl",
        master="local[*]",
        shuffle_partitions=4,
        driver_memory="4g",
        jars_dir=".jars",
        log_level="WARN",
        conf={"spark.sql.session.timeZone": "UTC", "spark.sql.adaptive.enabled": "true",
              "spark.sql.codegen.hugeMethodLimit": "8000",
              "spark.databricks.delta.snapshotPartitions": "2"},
    )
    assert config.paths == PathSettings(warehouse="./warehouse", landing="./landing")
    assert config.logging == LoggingSettings(format="console", level="INFO")
    assert list(config.sources) == ["airlines", "airports", "planes", "weather", "flights"]
    flight_columns = [
        "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
        "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
        "air_time", "distance", "hour", "minute", "time_hour",
    ]
    integers = {c: "int" for c in flight_columns if c not in (
        "carrier", "tailnum", "origin", "dest", "time_hour")}
    assert config.source("flights") == SourceConfig(
        path="flights",
        format="csv",
        pattern="*.csv",
        columns=flight_columns,
        options={"header": "true"},
        kind="append",
        bronze="bronze_flights",
        types={**integers, "time_hour": "timestamp", "carrier": "string", "tailnum": "string",
               "origin": "string", "dest": "string"},
        required=["carrier", "flight", "time_hour", "year", "month", "day", "origin"],
        na_values=["NA", ""],
        derive="flight_times",
    )
    assert config.source("airlines") == SourceConfig(
        path="airlines", pattern="*.csv", columns=["carrier", "name"],
        options={"header": "true"}, kind="snapshot", bronze="bronze_airlines",
        types={"carrier": "string", "name": "string"}, required=["carrier"],
        na_values=["NA", ""],
    )
    assert list(config.targets) == [
        "bronze_flights", "bronze_airlines", "bronze_airports", "bronze_planes",
        "bronze_weather", "silver_flights", "gold_performance",
    ]
    # a bronze target's mode comes from its source's kind
    assert config.target("bronze_flights") == TargetConfig(layer="bronze", table="flights",
                                                           mode="append")
    assert config.target("bronze_airlines") == TargetConfig(layer="bronze", table="airlines",
                                                            mode="overwrite")
    assert config.target("silver_flights") == TargetConfig(
        layer="silver",
        table="flights",
        format="delta",
        inputs=["flights"],
        transform="enrich",
        references=["airlines", "airports", "planes", "weather"],
        mode="merge",
        keys=["carrier", "flight", "time_hour"],
        sequence_by=["_source_modified", "_source_file"],
        duplicates="latest",
        partition_by=["year", "month", "day"],
    )
    assert config.target("gold_performance") == TargetConfig(
        layer="gold", table="carrier_daily_performance", inputs=["silver_flights"],
        transform="carrier_daily_performance", mode="overwrite", replace_by="flight_date",
        keys=["flight_date", "carrier", "origin"],
    )
    assert list(config.quality) == ["silver_flights"]
    assert config.quality["silver_flights"][:2] == [  # the rest: tests/unit/test_quality_config.py
            RuleConfig(
                name="flight_key_unique", type="unique", columns=["carrier", "flight", "time_hour"],
                severity="error",
                description="one row per natural key (carrier, flight, time_hour)",
            ),
            RuleConfig(
                name="flight_key_complete", type="complete",
                columns=["carrier", "flight", "time_hour"], severity="error",
                description="every row has its key columns",
            ),
    ]
    assert config.params == {}


def test_real_prod_config_takes_roots_from_the_environment(conf_dir):
    environ = {"ETL_WAREHOUSE": "s3a://bucket/wh", "ETL_LANDING": "s3a://bucket/landing"}

    config = load_job_config("flights", env="prod", directory=conf_dir, environ=environ)

    assert config.env == "prod"
    assert config.paths == PathSettings(warehouse="s3a://bucket/wh", landing="s3a://bucket/landing")
    assert config.spark.shuffle_partitions == 200
    assert config.logging == LoggingSettings(format="json", level="INFO")


def test_job_config_target_and_source_lookups_name_what_is_missing(conf_dir):
    config = load_job_config("flights", directory=conf_dir, environ={})

    with pytest.raises(ConfigError) as target:
        config.target("gold_nope")
    with pytest.raises(ConfigError) as source:
        config.source("nope")

    assert str(target.value) == (
        f"{conf_dir}/jobs/flights.yml: targets: the job needs a target named 'gold_nope'; "
        "configured: "
        "['bronze_airlines', 'bronze_airports', 'bronze_flights', 'bronze_planes', "
        "'bronze_weather', 'gold_performance', 'silver_flights']"
    )
    assert str(source.value) == (
        f"{conf_dir}/jobs/flights.yml: sources: the job needs a source named 'nope'; "
        "configured: "
        "['airlines', 'airports', 'flights', 'planes', 'weather']"
    )


# --------------------------------------------------------------------------------------------
# --set overrides
# --------------------------------------------------------------------------------------------


def test_set_overrides_are_parsed_as_yaml_values(conf_dir):
    config = load_job_config(
        "flights",
        directory=conf_dir,
        environ={},
        overrides=[
            "spark.shuffle_partitions=8",
            "paths.warehouse=/tmp/wh",
            "spark.driver_memory=8",
            "targets.silver_flights.partition_by=[year, month]",
            "sources.flights.na_values=[]",
            "spark.app_name=",
        ],
    )

    assert config.spark.shuffle_partitions == 8
    assert config.paths.warehouse == "/tmp/wh"
    assert config.spark.driver_memory == "8"  # YAML reads an int; the field is a string
    assert config.target("silver_flights").partition_by == ["year", "month"]
    assert config.source("flights").na_values == []
    assert config.spark.app_name == ""


def test_set_override_wins_over_the_env_file(conf_dir):
    config = load_job_config(
        "flights", directory=conf_dir, environ={}, overrides=["spark.master=local[2]"]
    )

    assert config.spark.master == "local[2]"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("spark.shuffle_partitions", "--set: expected KEY=VALUE, got 'spark.shuffle_partitions'"),
        ("spark..master=x", "--set: bad key 'spark..master'"),
        (
            "spark.shuffle_partitions.max=8",
            (
                "--set: spark.shuffle_partitions.max: spark.shuffle_partitions is a value, "
                "not a section"
            ),
        ),
        (
            "spark.shuffle_partitions=many",
            "--set: spark.shuffle_partitions: expected an integer, got 'many' (str)",
        ),
    ],
)
def test_bad_set_overrides(conf_dir, override, message):
    error = config_error(directory=conf_dir, environ={}, overrides=[override])

    assert str(error) == message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # an unknown leaf in a known section
        ("spark.shuffle_partition=8",
         f"--set: spark.shuffle_partition: unknown key (allowed: {SPARK_KEYS})"),
        # an unknown section inside a known one
        ("spark.tuning.level=3",
         f"--set: spark.tuning: unknown key (allowed: {SPARK_KEYS})"),
        # an unknown top-level section
        ("sparks.shuffle_partitions=8",
         f"--set: sparks: unknown key (allowed: {TOP_KEYS})"),
    ],
)
def test_set_override_of_an_unknown_key_names_set(conf_dir, override, message):
    error = config_error(directory=conf_dir, environ={}, overrides=[override])

    assert str(error) == message


# --------------------------------------------------------------------------------------------
# ${VAR} and ${VAR:-default}
# --------------------------------------------------------------------------------------------


def test_env_reference_with_default_uses_the_variable_when_set(conf_dir):
    config = load_job_config(
        "flights", directory=conf_dir, environ={"ETL_WAREHOUSE": "/data/wh", "ETL_JARS_DIR": "/j"}
    )

    assert config.paths == PathSettings(warehouse="/data/wh", landing="./landing")
    assert config.spark.jars_dir == "/j"


@pytest.mark.parametrize("environ", [{}, {"ETL_WAREHOUSE": ""}], ids=["unset", "empty"])
def test_env_reference_with_default_falls_back_when_unset_or_empty(conf_dir, environ):
    config = load_job_config("flights", directory=conf_dir, environ=environ)

    assert config.paths.warehouse == "./warehouse"


def test_env_references_inside_longer_strings_and_in_overrides(conf):
    edit(conf / "local.yml", "  jars_dir: ${ETL_JARS_DIR:-.jars}",
         "  jars_dir: ${HOME_DIR}/jars/${SPARK_LINE:-3.5}")

    config = load_job_config(
        "flights", directory=conf, environ={"HOME_DIR": "/opt/etl", "BUCKET": "b1"},
        overrides=["paths.landing=s3a://${BUCKET}/landing"],
    )

    assert config.spark.jars_dir == "/opt/etl/jars/3.5"
    assert config.paths.landing == "s3a://b1/landing"


def test_required_env_variable_missing(conf_dir):
    error = config_error(env="prod", directory=conf_dir, environ={"ETL_LANDING": "s3a://b/l"})

    assert str(error) == (
        f"{conf_dir / 'prod.yml'}: paths.warehouse: environment variable ETL_WAREHOUSE is not "
        "set (write ${ETL_WAREHOUSE:-default} for a default)"
    )
    assert error.file == str(conf_dir / "prod.yml")
    assert error.key == "paths.warehouse"


# --------------------------------------------------------------------------------------------
# Broken files
# --------------------------------------------------------------------------------------------


def test_unknown_key_names_the_file_and_the_dotted_key(conf):
    edit(conf / "jobs" / "flights.yml", "    layer: silver\n    table: flights",
         "    layer: silver\n    tabel: flights")

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{conf / 'jobs' / 'flights.yml'}: targets.silver_flights.tabel: unknown key "
        "(allowed: allow_empty, catalog_name, delete_column, delete_values, dialect, "
        "duplicates, effective_from, filter, format, inputs, jdbc_credentials, jdbc_table, "
        "jdbc_url, jdbc_user, keys, layer, max_retries, mode, narrow, narrow_below, "
        "partition_by, password_env, properties, prune_partitions, references, replace_by, "
        "schema_policy, sequence_by, soft_delete_column, table, target_file_bytes, "
        "target_file_rows, touched, tracked_columns, transform)"
    )


def test_unknown_key_in_the_env_file(conf):
    edit(conf / "local.yml", "logging:\n  format: console",
         "logging:\n  format: console\n  colour: on")

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{conf / 'local.yml'}: logging.colour: unknown key (allowed: format, level)"
    )


def test_missing_required_value(conf):
    edit(conf / "jobs" / "flights.yml", "    layer: silver\n    table: flights\n",
         "    layer: silver\n")

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{conf / 'jobs' / 'flights.yml'}: targets.silver_flights.table: required value "
        "missing (expected str)"
    )


def test_null_required_value(conf):
    edit(conf / "jobs" / "flights.yml", "  name: flights", "  name:")

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{conf / 'jobs' / 'flights.yml'}: job.name: required value missing (expected str)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("many", "spark.shuffle_partitions: expected an integer, got 'many' (str)"),
        ("true", "spark.shuffle_partitions: expected an integer, got True (bool)"),
        ("4.5", "spark.shuffle_partitions: expected an integer, got 4.5 (float)"),
        ("[4]", "spark.shuffle_partitions: expected an integer, got a list"),
    ],
)
def test_wrong_type_in_the_env_file(conf, value, message):
    edit(conf / "local.yml", "  driver_memory: 4g",
         f"  driver_memory: 4g\n  shuffle_partitions: {value}")

    error = config_error(directory=conf, environ={})

    assert str(error) == f"{conf / 'local.yml'}: {message}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  level: INFO", "  level: LOUD",
         "logging.level: expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', got 'LOUD' (str)"),
        ("spark:\n  app_name: etl", "spark:\n  app_name: [etl]",
         "spark.app_name: expected a string, got a list"),
        ("lineage:\n  enabled: true\n  namespace: ${ETL_LINEAGE_NAMESPACE:-etl}\n  transport: file",
         "lineage: none", "lineage: expected a mapping, got 'none' (str)"),
    ],
)
def test_wrong_type_in_the_base_file(conf, old, new, message):
    edit(conf / "base.yml", old, new)

    error = config_error(directory=conf, environ={})

    assert str(error) == f"{conf / 'base.yml'}: {message}"


def test_yaml_syntax_error_names_the_file_and_line(conf):
    local = conf / "local.yml"
    line = local.read_text().splitlines().index("  driver_memory: 4g") + 1
    edit(local, "  driver_memory: 4g", "\tdriver_memory: 4g")

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{local}: YAML syntax error at line {line}, column 1: "
        "found character '\\t' that cannot start any token"
    )


def test_a_key_given_twice_is_refused_naming_both_lines(conf):
    # YAML itself keeps the last of two same-named blocks and silently drops the first
    job = conf / "jobs" / "flights.yml"
    text = job.read_text()
    first = text.splitlines().index("targets:") + 1
    job.write_text(text + "targets: {}\n")
    second = len(text.splitlines()) + 1

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{job}: YAML syntax error at line {second}, column 1: "
        f"key 'targets' is given twice (first at line {first})"
    )


def test_a_file_that_is_not_a_mapping(conf):
    (conf / "local.yml").write_text("- just\n- a list\n")

    error = config_error(directory=conf, environ={})

    assert str(error) == f"{conf / 'local.yml'}: expected a mapping at the top, got list"


def test_missing_base_file(conf):
    (conf / "base.yml").unlink()

    error = config_error(directory=conf, environ={})

    assert str(error) == f"{conf / 'base.yml'}: file not found"


def test_unknown_job(conf_dir):
    error = config_error("nope", directory=conf_dir, environ={})

    assert str(error) == f"{conf_dir / 'jobs' / 'nope.yml'}: unknown job 'nope' (known jobs: flights, shop, tpch)"


def test_job_name_must_be_a_simple_identifier(conf_dir):
    error = config_error("../flights", directory=conf_dir, environ={})

    assert str(error) == "job name '../flights' must match ^[a-z][a-z0-9_]*$"


def test_unknown_env(conf_dir):
    error = config_error(env="staging", directory=conf_dir, environ={})

    assert str(error) == f"{conf_dir / 'staging.yml'}: unknown environment 'staging'"


def test_job_file_naming_another_job(conf):
    shutil.copyfile(conf / "jobs" / "flights.yml", conf / "jobs" / "trains.yml")

    error = config_error("trains", directory=conf, environ={})

    assert str(error) == (
        f"{conf / 'jobs' / 'trains.yml'}: job.name: names job 'flights' but the file is for "
        "'trains'"
    )


def test_quality_rules_for_an_unknown_target(conf):
    edit(conf / "jobs" / "flights.yml", "quality:\n  silver_flights:", "quality:\n  silver_flight:")

    error = config_error(directory=conf, environ={})

    assert str(error) == (
        f"{conf / 'jobs' / 'flights.yml'}: quality.silver_flight: quality rules for unknown "
        "target 'silver_flight'; targets: ['bronze_airlines', 'bronze_airports', "
        "'bronze_flights', 'bronze_planes', 'bronze_weather', 'gold_performance', "
        "'silver_flights']"
    )


def test_set_of_a_spark_setting_keeps_its_dotted_name(conf_dir):
    config = load_job_config(
        "flights", directory=conf_dir, overrides=["spark.conf.spark.sql.ansi.enabled=true"]
    )

    assert config.spark.conf["spark.sql.ansi.enabled"] == "true"


def test_a_value_that_is_only_an_env_reference_takes_its_yaml_type(conf):
    base = conf / "base.yml"
    base.write_text(base.read_text().replace("shuffle_partitions: 4", "shuffle_partitions: ${N:-8}"))

    assert load_job_config("flights", directory=conf, environ={}).spark.shuffle_partitions == 8
    assert load_job_config("flights", directory=conf, environ={"N": "3"}).spark.shuffle_partitions == 3
