"""Warehouse loads over JDBC (PostgreSQL; the SQL of the ``redshift`` dialect also runs on
Amazon Redshift): readers never see a half-loaded table.

A load runs in these steps:

0. with ``keys``, the batch gets the same duplicate policy as the Delta writers (Redshift, like
   the staging table, does not enforce a primary key, so a duplicate key would be inserted
   twice): ``on_duplicates("reject")`` (the default) raises `WriteError` with sample keys before
   anything is written; ``on_duplicates("latest")`` keeps the latest row per key by
   ``sequence_by`` (ties broken by the row's content, so the pick is deterministic), see
   `etl.writers.delta.dedupe_keys`;
1. the target's DDL is created from the batch's schema when the table is missing (primary key
   on ``keys``), or checked against it: a missing column or a different type raises
   `SchemaPolicyError` naming columns and types, before any data moves;
2. Spark bulk-loads the batch in parallel into a fresh staging table shaped like the target
   (``<table>__stage_<id>``);
3. ONE transaction moves the rows into the target: ``upsert`` runs
   ``INSERT … SELECT … ON CONFLICT (keys) DO UPDATE`` (``redshift``: ``DELETE … USING`` then
   ``INSERT``), ``full`` replaces the contents (``TRUNCATE`` + ``INSERT`` on PostgreSQL, where
   TRUNCATE is transactional; ``DELETE`` + ``INSERT`` on Redshift). A ``full`` load of an
   empty batch would empty the table: it is refused with `WriteError` (the target unchanged)
   unless the caller said it means it (``allow_empty()``; ``allow_empty: true`` on the target).
   Any failure rolls the transaction back: the target is exactly as before. The staging table
   is always dropped.

The transaction uses the JVM's JDBC driver through py4j (the ``org.postgresql`` jar Spark uses
for the bulk load), not a Python driver: one driver, one URL and one set of connection
properties for both steps, nothing to install on cluster nodes, and the Redshift JDBC driver
works the same way.

Credentials are resolved as for the JDBC readers (`etl.readers.jdbc.resolve_credentials`): a
`JdbcCredentials` names two environment variables (``user_env``, ``password_env``) or an AWS
Secrets Manager secret (``secret_id``: JSON with ``username`` and ``password``), resolved once
per load. Older configurations give the user name itself and only the password's variable
(`JdbcConnection.legacy`). The password goes to the driver as a connection property, never into
the URL, the SQL, a log line or an error message (messages are scrubbed of it).

Example::

    WarehouseLoad(spark, JdbcConnection.from_env(), "public.flights") \
        .keys("carrier", "flight", "time_hour").with_dialect("redshift") \
        .on_duplicates("latest").sequence_by("updated_at").execute(batch)
"""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from etl.config import JdbcCredentials
from etl.context import WriteMetrics
from etl.errors import SchemaPolicyError, SourceError, WriteError
from etl.logs import get_logger, redact
from etl.readers.jdbc import resolve_credentials
from etl.writers.delta import DUPLICATE_POLICIES, DuplicatePolicy, check_choice, dedupe_keys

LoadMode = Literal["upsert", "full"]
Dialect = Literal["postgres", "redshift"]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_log = get_logger("etl.writers")

#: Spark type -> (DDL type, information_schema.columns.data_type)
_TYPES: Mapping[str, tuple[str, str]] = {
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "smallint"),
    "int": ("integer", "integer"),
    "bigint": ("bigint", "bigint"),
    "float": ("real", "real"),
    "double": ("double precision", "double precision"),
    "boolean": ("boolean", "boolean"),
    "string": ("text", "text"),
    "date": ("date", "date"),
    "timestamp": ("timestamp", "timestamp without time zone"),
    "timestamp_ntz": ("timestamp", "timestamp without time zone"),
}


def sql_type(data_type: T.DataType) -> tuple[str, str]:
    """The warehouse column type for a Spark type: ``(DDL, information_schema name)``."""
    if isinstance(data_type, T.DecimalType):
        return f"numeric({data_type.precision},{data_type.scale})", "numeric"
    try:
        return _TYPES[data_type.simpleString()]
    except KeyError:
        raise WriteError(f"no warehouse type for Spark type {data_type.simpleString()}") from None


@dataclass(frozen=True)
class JdbcConnection:
    """Where the warehouse is and where its credentials come from (never the values): the
    user and password are resolved from ``credentials`` when a load starts (`resolve`)."""

    url: str
    credentials: JdbcCredentials
    #: Older configurations (``jdbc_user``): the user name itself; the password then comes from
    #: ``credentials.password_env``. Prefer ``credentials.user_env`` or ``secret_id``.
    user: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JdbcConnection:
        """PostgreSQL from ``ETL_PG_HOST``/``PORT``/``DB`` (``scripts/services.sh env``); the
        user and password from ``ETL_PG_USER`` and ``ETL_PG_PASSWORD`` when the load starts."""
        env = os.environ if environ is None else environ
        host, port = env.get("ETL_PG_HOST", "127.0.0.1"), env.get("ETL_PG_PORT", "5432")
        return cls(f"jdbc:postgresql://{host}:{port}/{env.get('ETL_PG_DB', 'etl')}",
                   JdbcCredentials(user_env="ETL_PG_USER", password_env="ETL_PG_PASSWORD"))

    @classmethod
    def legacy(cls, url: str, user: str, password_env: str = "ETL_PG_PASSWORD") -> JdbcConnection:
        """The older form: a user name as is and the variable holding the password."""
        return cls(url, JdbcCredentials(password_env=password_env), user=user)

    def resolve(self, label: str | None = None,
                environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """``(user, password)``; `WriteError` naming ``label`` (default: the URL) and the
        variable or secret, never a value, when they cannot be read."""
        label = label or redact(self.url)
        creds = self.credentials
        if self.user and not creds.secret_id:
            password = (os.environ if environ is None else environ).get(creds.password_env, "")
            if not password:
                raise WriteError(f"{label}: environment variable {creds.password_env} "
                                 "(the password) is not set")
            return self.user, password
        if not creds.secret_id and not (creds.user_env and creds.password_env):
            raise WriteError(f"{label}: credentials need user_env and password_env, or secret_id")
        try:
            return resolve_credentials(label, creds, environ)
        except SourceError as exc:
            raise WriteError(f"{label}: {str(exc).removeprefix(f'source {label}: ')}") from None

    def properties(self, label: str | None = None,
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The connection properties of the driver: ``user``, ``password``, ``driver``."""
        user, password = self.resolve(label, environ)
        return {"user": user, "password": password, "driver": _driver_class(self.url)}


def _driver_class(url: str) -> str:
    if url.startswith("jdbc:postgresql:"):
        return "org.postgresql.Driver"
    if url.startswith("jdbc:redshift:"):
        return "com.amazon.redshift.jdbc42.Driver"
    raise WriteError(f"unsupported JDBC URL {url.split('?')[0]!r} (postgresql or redshift)")


@contextmanager
def jdbc_transaction(
    spark: SparkSession, connection: JdbcConnection, properties: Mapping[str, str] | None = None,
    *, label: str | None = None,
) -> Iterator[Any]:
    """A JVM ``java.sql.Connection`` in one transaction: committed when the block ends, rolled
    back when it raises; always closed. ``properties`` are the resolved
    `JdbcConnection.properties` (resolved here when not given); a connection that cannot be made
    raises `WriteError` naming ``label`` (default: the URL, redacted) and the driver's message."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    props = dict(properties) if properties is not None else connection.properties(label)
    where = label or redact(connection.url)
    info = jvm.java.util.Properties()
    for key in ("user", "password"):
        info.setProperty(key, props[key])
    try:
        # instantiate the driver directly: DriverManager does not see jars added by spark.jars
        driver = getattr(jvm, props["driver"])()
        conn = driver.connect(connection.url, info)
    except Exception as exc:
        raise WriteError(f"{where}: cannot connect to {redact(connection.url)}: "
                         f"{scrub(_first_line(exc), props['password'])}") from None
    if conn is None:
        raise WriteError(f"{where}: the JDBC driver refused the URL {redact(connection.url)}")
    try:
        conn.setAutoCommit(False)
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def _update(conn: Any, sql: str) -> int:
    statement = conn.createStatement()
    try:
        return int(statement.executeUpdate(sql))
    finally:
        statement.close()


def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    statement = conn.createStatement()
    try:
        result = statement.executeQuery(sql)
        width = result.getMetaData().getColumnCount()
        rows = []
        while result.next():
            rows.append(tuple(result.getString(i + 1) for i in range(width)))
        return rows
    finally:
        statement.close()


def scrub(text: str, secret: str) -> str:
    """``text`` with ``secret`` (a resolved password) and any credential `etl.logs.redact`
    recognises masked: what a load puts in an error message."""
    if secret:
        text = text.replace(secret, "***")
    return redact(text)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class WarehouseLoad:
    """Load a batch into a warehouse table (see the module docstring for the guarantees)."""

    spark: SparkSession
    connection: JdbcConnection
    table: str
    key_columns: tuple[str, ...] = ()
    mode: LoadMode = "upsert"
    dialect: Dialect = "postgres"
    batch_size: int = 10_000
    duplicates: DuplicatePolicy = "reject"
    sequence_columns: tuple[str, ...] = ()
    empty_allowed: bool = False

    def keys(self, *columns: str) -> WarehouseLoad:
        return dataclasses.replace(self, key_columns=tuple(columns))

    def full_load(self, enabled: bool = True) -> WarehouseLoad:
        return dataclasses.replace(self, mode="full" if enabled else "upsert")

    def on_duplicates(self, policy: DuplicatePolicy) -> WarehouseLoad:
        """Duplicate keys in a batch: ``reject`` (`WriteError` with sample keys, nothing
        written) or keep the ``latest`` by `sequence_by`."""
        check_choice(policy, DUPLICATE_POLICIES, "on_duplicates", self.table)
        return dataclasses.replace(self, duplicates=policy)

    def sequence_by(self, *columns: str) -> WarehouseLoad:
        """The columns ordering a key's rows for ``on_duplicates("latest")`` (greatest wins)."""
        return dataclasses.replace(self, sequence_columns=tuple(columns))

    def allow_empty(self, enabled: bool = True) -> WarehouseLoad:
        """Let a full load of an empty batch empty the table (refused otherwise)."""
        return dataclasses.replace(self, empty_allowed=enabled)

    def with_dialect(self, dialect: Dialect) -> WarehouseLoad:
        if dialect not in ("postgres", "redshift"):
            raise WriteError(f"{self.table}: dialect must be postgres or redshift, got {dialect!r}")
        return dataclasses.replace(self, dialect=dialect)

    def _validate(self, df: DataFrame) -> None:
        if not _IDENTIFIER.match(self.table):
            raise WriteError(f"table name {self.table!r} must be name or schema.name")
        bad = [c for c in df.columns if not _IDENTIFIER.match(c) or "." in c]
        if bad:
            raise WriteError(f"{self.table}: column names {bad} are not plain SQL identifiers")
        if self.mode == "upsert" and not self.key_columns:
            raise WriteError(f"{self.table}: an upsert needs keys()")
        for argument, columns in (("keys", self.key_columns), ("sequence_by", self.sequence_columns)):
            missing = [k for k in columns if k not in df.columns]
            if missing:
                raise WriteError(f"{self.table}: {argument} {missing} not in the batch's columns "
                                 f"{df.columns}")
        for field in df.schema.fields:
            sql_type(field.dataType)

    def create_sql(self, schema: T.StructType) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for ``schema`` (keys NOT NULL, the primary key)."""
        columns = [
            f"{f.name} {sql_type(f.dataType)[0]}{' NOT NULL' if f.name in self.key_columns else ''}"
            for f in schema.fields
        ]
        if self.key_columns:
            columns.append(f"PRIMARY KEY ({', '.join(self.key_columns)})")
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({', '.join(columns)})"

    def _check_target(self, conn: Any, schema: T.StructType) -> None:
        table_schema, _, name = self.table.rpartition(".")
        where = f"table_name = {_literal(name)}"
        where += f" AND table_schema = {_literal(table_schema or 'public')}"
        found = dict(_rows(conn, "SELECT column_name, data_type FROM information_schema.columns "
                                 f"WHERE {where}"))  # fmt: skip
        problems = []
        for field in schema.fields:
            expected = sql_type(field.dataType)[1]
            actual = found.get(field.name)
            if actual is None:
                problems.append(f"missing {field.name} {expected}")
            elif actual != expected:
                problems.append(f"{field.name} is {actual}, the batch has {expected}")
        if problems:
            raise SchemaPolicyError(
                f"{self.table}: the target does not match the batch: {'; '.join(problems)}; "
                "nothing was loaded"
            )

    def _move_sql(self, staging: str, columns: Sequence[str]) -> list[str]:
        cols = ", ".join(columns)
        insert = f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {staging}"
        if self.mode == "full":
            clear = "DELETE FROM" if self.dialect == "redshift" else "TRUNCATE TABLE"
            return [f"{clear} {self.table}", insert]
        if self.dialect == "redshift":
            match = " AND ".join(f"{self.table}.{k} = s.{k}" for k in self.key_columns)
            return [f"DELETE FROM {self.table} USING {staging} s WHERE {match}", insert]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in self.key_columns)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return [f"{insert} ON CONFLICT ({', '.join(self.key_columns)}) {action}"]

    def execute(self, df: DataFrame) -> WriteMetrics:
        """Apply the duplicate policy, create or check the target, bulk-load the staging table,
        move the rows in one transaction; returns the rows inserted and updated (or replaced,
        for a full load)."""
        self._validate(df)
        if self.key_columns:
            df = dedupe_keys(df, self.key_columns, self.sequence_columns, self.duplicates,
                             self.table)
        props = self.connection.properties(self.table)
        password = props["password"]
        staging = f"{self.table}__stage_{uuid.uuid4().hex[:12]}"
        with jdbc_transaction(self.spark, self.connection, props, label=self.table) as conn:
            _update(conn, self.create_sql(df.schema))
            self._check_target(conn, df.schema)
            _update(conn, f"CREATE TABLE {staging} (LIKE {self.table})")
        try:
            (
                df.write.format("jdbc").mode("append")
                .option("url", self.connection.url).option("dbtable", staging)
                .option("batchsize", str(self.batch_size))
                .options(**props).save()
            )
            with jdbc_transaction(self.spark, self.connection, props, label=self.table) as conn:
                before = int(_rows(conn, f"SELECT count(*) FROM {self.table}")[0][0])
                staged = int(_rows(conn, f"SELECT count(*) FROM {staging}")[0][0])
                if self.mode == "full" and staged == 0 and not self.empty_allowed:
                    raise WriteError(
                        f"{self.table}: refusing to replace the contents ({before} rows) with an "
                        "empty batch; the target is unchanged. If an empty table is intended, "
                        "call allow_empty() on the load or set allow_empty: true on the target"
                    )
                for statement in self._move_sql(staging, df.columns):
                    _update(conn, statement)
                after = int(_rows(conn, f"SELECT count(*) FROM {self.table}")[0][0])
        except Exception as exc:
            if isinstance(exc, WriteError):
                raise
            raise WriteError(f"{self.table}: load failed, the target is unchanged: "
                             f"{scrub(_first_line(exc), password)}") from None
        finally:
            with jdbc_transaction(self.spark, self.connection, props, label=self.table) as conn:
                _update(conn, f"DROP TABLE IF EXISTS {staging}")
        if self.mode == "full":
            metrics = WriteMetrics(table=self.table, operation="FULL LOAD", rows_inserted=after,
                                   rows_deleted=before)
        else:
            inserted = after - before
            metrics = WriteMetrics(table=self.table, operation="UPSERT", rows_inserted=inserted,
                                   rows_updated=staged - inserted)
        _log.info("warehouse load", table=self.table, url=self.connection.url,
                  dialect=self.dialect, operation=metrics.operation,
                  rows_inserted=metrics.rows_inserted, rows_updated=metrics.rows_updated,
                  rows_deleted=metrics.rows_deleted)
        return metrics


def _first_line(exc: BaseException) -> str:
    """The first line of an error; for a JVM error, the Java exception's own message."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


__all__ = ["JdbcConnection", "WarehouseLoad", "jdbc_transaction", "scrub", "sql_type"]
