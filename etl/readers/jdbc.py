"""Databases over JDBC (PostgreSQL, MySQL, Redshift... by URL and driver class).

`read_jdbc` reads a table (or a query) in full, or incrementally by a watermark column:

* **incremental**: rows with ``low < column <= high``, where ``low`` is the stored watermark
  minus the look-back window (late commits whose timestamp is a little behind the newest one are
  read again; a MERGE by key makes that harmless) and ``high`` is the column's maximum when the
  extraction starts, which becomes the next watermark once the run's targets have committed.
  The predicate is part of the SQL sent to the database, so only those rows leave it.
* **parallel**: with ``partitioning``, the bounds of the partition column are read first
  (``MIN``/``MAX`` under the same predicate) and Spark issues ``num_partitions`` range queries.

Credentials come from two environment variables or from an AWS Secrets Manager secret (JSON with
``username`` and ``password``, as RDS writes them). They go to the driver as connection
properties, never into the URL, the SQL, a log line or an error message.

Example::

    extract = read_jdbc(spark, config.source("orders").jdbc, source_name="orders",
                        watermark=store.get("shop", "orders"))
    extract.df            # the rows (lazy)
    extract.watermark     # WatermarkRange(column='updated_at', low=..., high=...)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from etl.config import JdbcConfig, JdbcCredentials
from etl.errors import ConfigError, SourceError, jvm_error_text
from etl.watermarks import Watermark, WatermarkValue
from etl.writers.delta import sql_literal

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
_DURATION = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>second|minute|hour|day)s?\s*$")
_UNITS = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days"}


@dataclass(frozen=True)
class WatermarkRange:
    """The slice of the watermark column an extraction read: ``low < column <= high``.

    ``low`` is None for a first (full) extraction; ``high`` is None when there was nothing to
    read, in which case the stored watermark stays as it was."""

    column: str
    low: WatermarkValue | None
    high: WatermarkValue | None


@dataclass(frozen=True)
class JdbcExtract:
    """What `read_jdbc` read: the rows (lazy), the SQL sent, the watermark range, partitions."""

    source: str
    df: DataFrame
    query: str
    watermark: WatermarkRange | None
    partitions: int


def parse_lookback(text: str) -> dt.timedelta | int | None:
    """``"10 minutes"`` -> timedelta, ``"500"`` -> 500, ``""`` -> None."""
    if not text.strip():
        return None
    if text.strip().isdigit():
        return int(text)
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(
            f"lookback {text!r}: expected a number (id columns) or 'N seconds|minutes|hours|days'"
        )
    return dt.timedelta(**{_UNITS[match["unit"]]: int(match["n"])})


def _lower_bound(stored: WatermarkValue, lookback: dt.timedelta | int | None) -> WatermarkValue:
    if lookback is None:
        return stored
    if isinstance(stored, (dt.datetime, dt.date)):
        if not isinstance(lookback, dt.timedelta):
            raise SourceError(f"a look-back for a time watermark must be a duration, got {lookback}")
        return stored - lookback
    if isinstance(lookback, dt.timedelta):
        raise SourceError(f"a look-back for an id watermark must be a number, got {lookback}")
    return stored - lookback


def resolve_credentials(
    source_name: str, credentials: JdbcCredentials, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """``(user, password)`` from the environment or from AWS Secrets Manager.

    Errors name the source and the variable or secret, never a value."""
    environ = os.environ if environ is None else environ
    if credentials.secret_id:
        return _secret_credentials(source_name, credentials)
    values = []
    for role, variable in (("user", credentials.user_env), ("password", credentials.password_env)):
        value = environ.get(variable, "")
        if not value:
            raise SourceError(
                f"source {source_name}: environment variable {variable} (the {role}) is not set"
            )
        values.append(value)
    return values[0], values[1]


def read_secret(source_name: str, secret: str, region: str = "") -> str:
    """The ``SecretString`` of an AWS Secrets Manager secret; `SourceError` naming the source and
    the secret (never its value) when it cannot be read."""
    import boto3  # type: ignore[import-untyped]
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        client = boto3.client("secretsmanager", region_name=region or None)
        return str(client.get_secret_value(SecretId=secret)["SecretString"])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SourceError(f"source {source_name}: cannot read secret {secret}: {code}") from None
    except BotoCoreError as exc:
        raise SourceError(
            f"source {source_name}: cannot read secret {secret}: {type(exc).__name__}"
        ) from None


def _secret_credentials(source_name: str, credentials: JdbcCredentials) -> tuple[str, str]:
    secret = credentials.secret_id
    text = read_secret(source_name, secret, credentials.region)
    try:
        data = json.loads(text)
        return str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError):
        raise SourceError(
            f"source {source_name}: secret {secret} is not JSON with username and password"
        ) from None


def _check_identifiers(source_name: str, jdbc: JdbcConfig) -> None:
    where = f"sources.{source_name}.jdbc"
    if jdbc.table and not _TABLE.match(jdbc.table):
        raise ConfigError(f"expected [schema.]table, got {jdbc.table!r}", key=f"{where}.table")
    for key, column in (
        ("incremental.column", jdbc.incremental.column if jdbc.incremental else None),
        ("partitioning.column", jdbc.partitioning.column if jdbc.partitioning else None),
    ):
        if column is not None and not _IDENTIFIER.match(column):
            raise ConfigError(f"expected a column name, got {column!r}", key=f"{where}.{key}")
    if jdbc.incremental:
        try:
            parse_lookback(jdbc.incremental.lookback)
        except ValueError as exc:
            raise ConfigError(str(exc), key=f"{where}.incremental.lookback") from None


def _relation(jdbc: JdbcConfig) -> str:
    return jdbc.table if jdbc.table else f"({jdbc.query}) src"


def _reader(spark: SparkSession, jdbc: JdbcConfig, user: str, password: str) -> Any:
    return (
        spark.read.format("jdbc")
        .options(**jdbc.options)
        .option("url", jdbc.url)
        .option("driver", jdbc.driver)
        .option("user", user)
        .option("password", password)
        .option("fetchsize", str(jdbc.fetch_size))
    )


def read_jdbc(
    spark: SparkSession,
    jdbc: JdbcConfig,
    *,
    source_name: str,
    watermark: Watermark | None = None,
    environ: Mapping[str, str] | None = None,
) -> JdbcExtract:
    """Read a JDBC source: in full, or (with ``jdbc.incremental``) the rows past ``watermark``.

    Arguments are checked before any connection is made. The returned frame is lazy; the
    watermark range is fixed here (one bounds query), so reading the frame later never returns
    rows past ``high``. Failures raise `SourceError` naming the source.
    """
    _check_identifiers(source_name, jdbc)
    user, password = resolve_credentials(source_name, jdbc.credentials, environ)
    relation = _relation(jdbc)
    predicate: str | None = None
    range_: WatermarkRange | None = None
    bounds: dict[str, Any] = {}
    try:
        if jdbc.incremental:
            column = jdbc.incremental.column
            low = None
            if watermark is not None:
                if watermark.column != column:
                    raise SourceError(
                        f"source {source_name}: the stored watermark is on column "
                        f"{watermark.column!r}, the configuration names {column!r} "
                        f"(reset it with `etl state reset`)"
                    )
                low = _lower_bound(watermark.value, parse_lookback(jdbc.incremental.lookback))
            predicate = f"{column} > {sql_literal(low)}" if low is not None else None
            bounds = _bounds(spark, jdbc, user, password, relation, predicate, column)
            high = bounds.get("high")
            range_ = WatermarkRange(column=column, low=low, high=high)
            if high is None:
                predicate = "1 = 0"
            else:
                upper = f"{column} <= {sql_literal(high)}"
                predicate = f"{predicate} AND {upper}" if predicate else upper
        elif jdbc.partitioning:
            bounds = _bounds(spark, jdbc, user, password, relation, None, None)
        query = f"SELECT * FROM {relation}" + (f" WHERE {predicate}" if predicate else "")
        reader = _reader(spark, jdbc, user, password).option("dbtable", f"({query}) extract")
        partitions = 1
        if jdbc.partitioning and bounds.get("pmin") is not None:
            lower, upper = bounds["pmin"], bounds["pmax"]
            partitions = jdbc.partitioning.num_partitions
            if isinstance(lower, int) and not isinstance(lower, bool):
                partitions = max(1, min(partitions, upper - lower + 1))
            reader = (
                reader.option("partitionColumn", jdbc.partitioning.column)
                .option("lowerBound", str(lower))
                .option("upperBound", str(upper))
                .option("numPartitions", str(partitions))
            )
        df = reader.load()
    except (SourceError, ConfigError):
        raise
    except Exception as exc:
        raise SourceError(f"source {source_name}: JDBC read failed: {jvm_error_text(exc)}") from None
    return JdbcExtract(
        source=source_name, df=df, query=query, watermark=range_, partitions=partitions
    )


def _bounds(
    spark: SparkSession,
    jdbc: JdbcConfig,
    user: str,
    password: str,
    relation: str,
    predicate: str | None,
    watermark_column: str | None,
) -> dict[str, Any]:
    """One query for the watermark's maximum and the partition column's min and max."""
    selects = []
    if watermark_column:
        selects.append(f"MAX({watermark_column}) AS high")
    if jdbc.partitioning:
        column = jdbc.partitioning.column
        selects += [f"MIN({column}) AS pmin", f"MAX({column}) AS pmax"]
    sql = f"SELECT {', '.join(selects)} FROM {relation}" + (
        f" WHERE {predicate}" if predicate else ""
    )
    row = _reader(spark, jdbc, user, password).option("query", sql).load().first()
    return row.asDict() if row is not None else {}


__all__ = [
    "JdbcExtract",
    "WatermarkRange",
    "parse_lookback",
    "read_jdbc",
    "read_secret",
    "resolve_credentials",
]
