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

import dataclasses
import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from py4j.protocol import Py4JError
from pyspark.sql import DataFrame, SparkSession

from etl import storage
from etl.config import JdbcConfig, JdbcCredentials
from etl.errors import ConfigError, SourceError, jvm_error_text
from etl.logs import get_logger
from etl.staging import StagedExtract, Staging
from etl.tables import sql_literal
from etl.watermarks import Watermark, WatermarkValue, format_value, kind_of

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
_DURATION = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>second|minute|hour|day)s?\s*$")
_UNITS = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days"}
#: SQLStates of a connection that failed or went away, besides class 08 (connection exception):
#: PostgreSQL's admin_shutdown, crash_shutdown and cannot_connect_now.
_DISCONNECT_STATES = ("57P01", "57P02", "57P03")
#: ``password=...`` in a URL's parameters, and ``user:password@`` before its host.
_URL_PASSWORD = re.compile(r"(?i)(password=)[^&;]*")
_URL_USERINFO = re.compile(r"(//[^/:@]+:)[^/@]*@")
_log = get_logger("etl.readers")
T = TypeVar("T")


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
    """What `read_jdbc` read: the rows (lazy), the SQL sent, the watermark range, partitions,
    and the rows past the watermark's bound (``beyond``: ``_errors``, ``_record``; see
    `read_jdbc`)."""

    source: str
    df: DataFrame
    query: str
    watermark: WatermarkRange | None
    partitions: int
    beyond: DataFrame | None = None


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
    if not isinstance(jdbc.retry.attempts, int) or jdbc.retry.attempts < 1:
        raise ConfigError(f"expected an integer >= 1, got {jdbc.retry.attempts!r}",
                          key=f"{where}.retry.attempts")
    if jdbc.retry.backoff_s < 0:
        raise ConfigError(f"expected a number >= 0, got {jdbc.retry.backoff_s!r}",
                          key=f"{where}.retry.backoff_s")


def _relation(jdbc: JdbcConfig) -> str:
    return jdbc.table if jdbc.table else f"({jdbc.query}) src"


def jdbc_reader(spark: SparkSession, jdbc: JdbcConfig, user: str, password: str) -> Any:
    """A ``DataFrameReader`` of the database of ``jdbc`` with the credentials as properties."""
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
    started_at: dt.datetime | None = None,
) -> JdbcExtract:
    """Read a JDBC source: in full, or (with ``jdbc.incremental``) the rows past ``watermark``.

    Arguments are checked before any connection is made. The returned frame is lazy; the
    watermark range is fixed here (one bounds query), so reading the frame later never returns
    rows past ``high``. With ``started_at`` (the run's start, UTC), a time watermark never
    moves past ``started_at + incremental.max_skew``: rows beyond that bound are not in ``df``
    but in ``beyond``, each with the reason, for the quarantine. Failures raise `SourceError`
    naming the source.
    """
    _check_identifiers(source_name, jdbc)
    user, password = resolve_credentials(source_name, jdbc.credentials, environ)
    relation = _relation(jdbc)
    predicate: str | None = None
    range_: WatermarkRange | None = None
    beyond: DataFrame | None = None
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
            limit = _time_bound(high, started_at, jdbc.incremental.max_skew)
            if limit is not None:
                past = f"{column} > {sql_literal(limit)}"
                beyond_sql = f"SELECT * FROM {relation} WHERE " + (
                    f"{predicate} AND {past}" if predicate else past)
                beyond = _with_reason(
                    jdbc_reader(spark, jdbc, user, password).option("query", beyond_sql).load(),
                    column, limit, jdbc.incremental.max_skew)
                within = f"{column} <= {sql_literal(limit)}"
                predicate = f"{predicate} AND {within}" if predicate else within
                high = _bounds(spark, jdbc, user, password, relation, predicate, column).get(
                    "high")
            range_ = WatermarkRange(column=column, low=low, high=high)
            if high is None:
                predicate = "1 = 0"
            else:
                upper = f"{column} <= {sql_literal(high)}"
                predicate = f"{predicate} AND {upper}" if predicate else upper
        elif jdbc.partitioning:
            bounds = _bounds(spark, jdbc, user, password, relation, None, None)
        query = f"SELECT * FROM {relation}" + (f" WHERE {predicate}" if predicate else "")
        reader = jdbc_reader(spark, jdbc, user, password).option("dbtable", f"({query}) extract")
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
        raise SourceError(f"source {source_name}: JDBC read failed: {jvm_error_text(exc)}") from exc
    return JdbcExtract(
        source=source_name, df=df, query=query, watermark=range_, partitions=partitions,
        beyond=beyond,
    )


def _time_bound(high: Any, started_at: dt.datetime | None, skew: str) -> Any:
    """The greatest watermark value a run starting at ``started_at`` accepts, when ``high`` (the
    column's maximum) is past it; ``None`` when everything read is within it (or the column is
    not a time)."""
    if started_at is None or high is None or not isinstance(high, (dt.date, dt.datetime)):
        return None
    allowed = parse_lookback(skew)
    if not isinstance(allowed, dt.timedelta):
        raise ConfigError(f"expected a duration such as '1 day', got {skew!r}",
                          key="incremental.max_skew")
    limit = started_at + allowed
    if isinstance(high, dt.datetime):
        return limit if high > limit else None
    return limit.date() if high > limit.date() else None


def _with_reason(rows: DataFrame, column: str, limit: Any, skew: str) -> DataFrame:
    """``rows`` as rejected rows: the reason (the value, the bound) and the row as JSON."""
    from pyspark.sql import functions as F

    from etl.transforms.cleaning import ERRORS, RAW_RECORD

    reason = F.format_string(
        f"{column}: %s is after the run's start plus the allowed skew of {skew} "
        f"({format_value(limit)}): not loaded, and the watermark does not move past it",
        F.col(column).cast("string"))
    return rows.select("*", F.array(reason).alias(ERRORS),
                       F.to_json(F.struct(*rows.columns)).alias(RAW_RECORD))


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
    row = jdbc_reader(spark, jdbc, user, password).option("query", sql).load().first()
    return row.asDict() if row is not None else {}


def redact_url(url: str) -> str:
    """``url`` with any password in it (``password=`` parameter, ``user:password@``) as ``***``."""
    return _URL_USERINFO.sub(r"\1***@", _URL_PASSWORD.sub(r"\1***", url))


def _sql_state(throwable: Any) -> str | None:
    try:
        state = throwable.getSQLState()
    except Py4JError:  # not a java.sql.SQLException
        return None
    return str(state) if state is not None else None


def connection_failure(exc: BaseException) -> tuple[str, str] | None:
    """``(SQLState, message)`` of the first ``java.sql.SQLException`` in ``exc``'s cause chain
    (Python ``__cause__`` links, then each Py4J error's Java ``getCause()`` links) whose state
    says the connection failed or went away: class 08, or 57P01/57P02/57P03. None otherwise."""
    current: BaseException | None = exc
    while current is not None:
        throwable = getattr(current, "java_exception", None)
        for _ in range(32):  # a cause chain is short; a cycle must not hang the driver
            if throwable is None:
                break
            state = _sql_state(throwable)
            if state and (state.startswith("08") or state in _DISCONNECT_STATES):
                message = str(throwable.getMessage() or "").strip().splitlines()
                return state, message[0] if message else str(throwable.toString())
            throwable = throwable.getCause()
        current = current.__cause__
    return None


def retry_disconnects(source_name: str, jdbc: JdbcConfig, action: Callable[[], T],
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action`` (an extract that reads ``jdbc``), again when it fails because the database
    connection failed or went away (`connection_failure`), at most ``jdbc.retry.attempts`` times
    in all, waiting ``backoff_s * 2^(n-1)`` before retry n. ``action`` must be idempotent. Any
    other failure is raised at once; after the last attempt `SourceError` names the source, the
    URL (password redacted), the attempts and the last SQLState and message."""
    _check_identifiers(source_name, jdbc)
    retry = jdbc.retry
    for attempt in range(1, retry.attempts + 1):
        try:
            return action()
        except SourceError as exc:
            failure = connection_failure(exc)
            if failure is None:
                raise
            state, message = failure
            if attempt == retry.attempts:
                raise SourceError(
                    f"source {source_name}: {redact_url(jdbc.url)} failed {attempt} time(s) in a "
                    f"row; last: SQLState {state}: {message}"
                ) from exc
            delay = retry.backoff_s * 2 ** (attempt - 1)
            _log.warning("database connection failed; retrying the extract", source=source_name,
                         sql_state=state, attempt=attempt, delay_s=delay)
            sleep(delay)
    raise AssertionError("unreachable: attempts >= 1")


def stage_extract(
    spark: SparkSession,
    jdbc: JdbcConfig,
    staging: Staging,
    *,
    source_name: str,
    run_id: str,
    ingest_date: dt.date,
    watermark: Watermark | None = None,
    started_at: dt.datetime | None = None,
) -> StagedExtract:
    """Read ``jdbc`` past ``watermark`` (`read_jdbc`) and stage the rows under the run's folder,
    the step where the lazy extract is actually read. A lost connection retries the whole step
    (`retry_disconnects`): the run's staged folder is cleared first, so the staged copy holds
    every row once. The manifest records the query, partitions and watermark range; rows past
    the watermark's bound (see `read_jdbc`) are not staged but kept as the extract's
    ``rejected``, for the quarantine."""

    def attempt() -> StagedExtract:
        # what a failed attempt may have left in the run's own folder
        storage.delete(spark, staging.path(source_name, ingest_date, run_id))
        extract = read_jdbc(spark, jdbc, source_name=source_name, watermark=watermark,
                            started_at=started_at)
        manifest: dict[str, Any] = {"type": "jdbc", "query": extract.query,
                                    "partitions": extract.partitions}
        if extract.watermark is not None:
            mark = extract.watermark
            manifest["watermark"] = {
                "column": mark.column,
                "low": None if mark.low is None else format_value(mark.low),
                "high": None if mark.high is None else format_value(mark.high),
                "kind": None if mark.high is None else kind_of(mark.high),
            }
        staged = staging.stage(source_name, run_id, ingest_date, extract.df, manifest)
        return dataclasses.replace(staged, rejected=extract.beyond)

    return retry_disconnects(source_name, jdbc, attempt)


__all__ = [
    "JdbcExtract",
    "WatermarkRange",
    "connection_failure",
    "parse_lookback",
    "read_jdbc",
    "read_secret",
    "redact_url",
    "resolve_credentials",
    "retry_disconnects",
    "stage_extract",
]
