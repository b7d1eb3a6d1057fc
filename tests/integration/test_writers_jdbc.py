"""Warehouse loads (etl.writers.jdbc) against the real PostgreSQL of scripts/services.sh:
upsert, full load, DDL check, a failure in the middle of a load that leaves the target
unchanged, the duplicate policy of the redshift dialect (its SQL runs on PostgreSQL), empty full
loads, and credentials from the environment or Secrets Manager that never reach an error or a
log. Needs `scripts/services.sh start postgres s3` (the AWS API server answers Secrets Manager)."""

from __future__ import annotations

import json
import os
import uuid

import pytest
import structlog

from etl import logs
from etl.config import JdbcCredentials
from etl.errors import SchemaPolicyError, WriteError
from etl.writers.jdbc import JdbcConnection, WarehouseLoad, jdbc_transaction
from tests.services import require_service

pytestmark = pytest.mark.integration

SCHEMA = "id int, name string, amount bigint"


@pytest.fixture()
def connection(monkeypatch) -> JdbcConnection:
    # the defaults of scripts/services.sh, unless `eval "$(scripts/services.sh env)"` set them
    for name, default in (("ETL_PG_PASSWORD", "etl"), ("ETL_PG_HOST", "127.0.0.1"),
                          ("ETL_PG_PORT", "25432"), ("ETL_PG_DB", "etl"), ("ETL_PG_USER", "etl")):
        monkeypatch.setenv(name, os.environ.get(name, default))
    return JdbcConnection.from_env()


@pytest.fixture()
def table(spark, connection):
    name = f"public.t_{uuid.uuid4().hex[:10]}"
    yield name
    with jdbc_transaction(spark, connection) as conn:
        statement = conn.createStatement()
        statement.executeUpdate(f"DROP TABLE IF EXISTS {name}")
        statement.close()


def target_rows(spark, connection, table) -> list[tuple]:
    return [
        (r.id, r.name, r.amount)
        for r in spark.read.format("jdbc").option("url", connection.url)
        .option("dbtable", table).options(**connection.properties()).load().orderBy("id").collect()
    ]


def staging_tables(spark, connection, table) -> list[str]:
    name = table.split(".")[1]
    return [
        r.tablename for r in spark.read.format("jdbc").option("url", connection.url)
        .option("query", f"SELECT tablename FROM pg_tables WHERE tablename LIKE '{name}__stage%'")
        .options(**connection.properties()).load().collect()
    ]


def execute_sql(spark, connection, sql: str) -> None:
    with jdbc_transaction(spark, connection) as conn:
        statement = conn.createStatement()
        statement.executeUpdate(sql)
        statement.close()


def test_upsert_creates_the_table_inserts_and_updates(spark, connection, table):
    load = WarehouseLoad(spark, connection, table).keys("id")

    first = load.execute(spark.createDataFrame([(1, "a", 10), (2, "b", 20)], SCHEMA))
    second = load.execute(spark.createDataFrame([(2, "b2", 21), (3, "c", 30)], SCHEMA))

    assert (first.operation, first.rows_inserted, first.rows_updated) == ("UPSERT", 2, 0)
    assert (second.operation, second.rows_inserted, second.rows_updated) == ("UPSERT", 1, 1)
    assert target_rows(spark, connection, table) == [(1, "a", 10), (2, "b2", 21), (3, "c", 30)]
    assert staging_tables(spark, connection, table) == []
    assert load.create_sql(spark.createDataFrame([], SCHEMA).schema) == (
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(id integer NOT NULL, name text, amount bigint, PRIMARY KEY (id))"
    )


def test_a_failure_in_the_middle_of_a_load_leaves_the_target_unchanged(spark, connection, table):
    load = WarehouseLoad(spark, connection, table).keys("id")
    load.execute(spark.createDataFrame([(1, "a", 10), (2, "b", 20)], SCHEMA))
    # rows are checked one by one as the transaction moves them: the third one fails
    execute_sql(spark, connection, f"ALTER TABLE {table} ADD CONSTRAINT positive CHECK (amount >= 0)")
    batch = spark.createDataFrame([(1, "a2", 11), (3, "c", 30), (4, "bad", -1), (5, "e", 50)], SCHEMA)

    with pytest.raises(WriteError) as info:
        load.execute(batch)

    assert str(info.value).startswith(
        f"{table}: load failed, the target is unchanged: org.postgresql.util.PSQLException: "
        f'ERROR: new row for relation "{table.split(".")[1]}" violates check constraint "positive"'
    )
    assert target_rows(spark, connection, table) == [(1, "a", 10), (2, "b", 20)]
    assert staging_tables(spark, connection, table) == []


def test_full_load_replaces_the_contents(spark, connection, table):
    load = WarehouseLoad(spark, connection, table).keys("id").full_load()
    load.execute(spark.createDataFrame([(1, "a", 10), (2, "b", 20)], SCHEMA))

    metrics = load.execute(spark.createDataFrame([(3, "c", 30)], SCHEMA))

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_deleted) == ("FULL LOAD", 1, 2)
    assert target_rows(spark, connection, table) == [(3, "c", 30)]


def test_a_target_with_other_types_is_refused_before_loading(spark, connection, table):
    execute_sql(spark, connection, f"CREATE TABLE {table} (id integer PRIMARY KEY, name text, amount integer)")

    with pytest.raises(SchemaPolicyError) as info:
        WarehouseLoad(spark, connection, table).keys("id").execute(
            spark.createDataFrame([(1, "a", 10)], SCHEMA)
        )

    assert str(info.value) == (
        f"{table}: the target does not match the batch: amount is integer, the batch has bigint; "
        "nothing was loaded"
    )
    assert target_rows(spark, connection, table) == []


def test_the_password_comes_only_from_the_environment(monkeypatch):
    monkeypatch.setenv("ETL_PG_USER", "etl")
    monkeypatch.delenv("ETL_PG_PASSWORD", raising=False)
    connection = JdbcConnection("jdbc:postgresql://127.0.0.1:25432/etl",
                                JdbcCredentials(user_env="ETL_PG_USER", password_env="ETL_PG_PASSWORD"))

    with pytest.raises(WriteError) as info:
        connection.properties()

    assert str(info.value) == (
        "jdbc:postgresql://127.0.0.1:25432/etl: environment variable ETL_PG_PASSWORD (the password) "
        "is not set"
    )


def table_exists(spark, connection, table) -> bool:
    schema, name = table.split(".")
    return bool(
        spark.read.format("jdbc").option("url", connection.url)
        .option("query", "SELECT 1 FROM information_schema.tables "
                         f"WHERE table_schema = '{schema}' AND table_name = '{name}'")
        .options(**connection.properties()).load().collect()
    )


def test_redshift_upsert_rejects_duplicate_keys_before_anything_is_written(spark, connection, table):
    load = WarehouseLoad(spark, connection, table).keys("id").with_dialect("redshift")
    batch = spark.createDataFrame([(1, "a", 10), (2, "b", 20), (1, "a2", 11)], SCHEMA)

    with pytest.raises(WriteError) as info:
        load.execute(batch)

    assert str(info.value) == f"{table}: the batch holds keys ['id'] more than once, e.g. [(1,)]"
    assert not table_exists(spark, connection, table)
    assert staging_tables(spark, connection, table) == []


def test_redshift_upsert_keeps_the_latest_row_per_key_even_without_an_enforced_key(
    spark, connection, table
):
    # Redshift accepts a PRIMARY KEY but does not enforce it: a target without one stands for it
    execute_sql(spark, connection, f"CREATE TABLE {table} (id integer, name text, amount bigint)")
    execute_sql(spark, connection, f"INSERT INTO {table} VALUES (1, 'a', 10), (3, 'c', 30)")
    load = (WarehouseLoad(spark, connection, table).keys("id").with_dialect("redshift")
            .on_duplicates("latest").sequence_by("amount"))
    # key 1: amount 12 is the latest; key 2: a tie on amount 20, broken by the rows' content
    rows = [(1, "b", 12), (2, "d", 20), (1, "c", 11), (2, "e", 20)]

    metrics = load.execute(spark.createDataFrame(rows, SCHEMA))
    load.execute(spark.createDataFrame(list(reversed(rows)), SCHEMA).repartition(3))

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated) == ("UPSERT", 1, 1)
    assert target_rows(spark, connection, table) == [(1, "b", 12), (2, "d", 20), (3, "c", 30)]


def test_an_empty_full_load_is_refused_unless_the_caller_allows_it(spark, connection, table):
    load = WarehouseLoad(spark, connection, table).keys("id").full_load()
    load.execute(spark.createDataFrame([(1, "a", 10), (2, "b", 20)], SCHEMA))
    empty = spark.createDataFrame([], SCHEMA)

    with pytest.raises(WriteError) as info:
        load.execute(empty)

    assert str(info.value) == (
        f"{table}: refusing to replace the contents (2 rows) with an empty batch; the target is "
        "unchanged. If an empty table is intended, call allow_empty() on the load or set "
        "allow_empty: true on the target"
    )
    assert target_rows(spark, connection, table) == [(1, "a", 10), (2, "b", 20)]
    assert staging_tables(spark, connection, table) == []

    metrics = load.allow_empty().execute(empty)

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_deleted) == ("FULL LOAD", 0, 2)
    assert target_rows(spark, connection, table) == []


@pytest.fixture()
def secrets(monkeypatch):
    """A Secrets Manager client on the local AWS API server, and a fresh secret name."""
    import boto3

    endpoint = os.environ["ETL_S3_ENDPOINT"]
    host, port = endpoint.split("//", 1)[1].split(":")
    require_service("AWS API (moto)", host, int(port))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    return boto3.client("secretsmanager", region_name="us-east-1"), f"etl/test/{uuid.uuid4().hex[:8]}"


def test_credentials_from_a_secrets_manager_secret(spark, connection, table, secrets, monkeypatch):
    client, name = secrets
    client.create_secret(Name=name, SecretString=json.dumps(
        {"username": os.environ["ETL_PG_USER"], "password": os.environ["ETL_PG_PASSWORD"]}))
    from_secret = JdbcConnection(connection.url, JdbcCredentials(secret_id=name, region="us-east-1"))

    with monkeypatch.context() as env:
        env.delenv("ETL_PG_PASSWORD")  # only the secret can give it
        metrics = WarehouseLoad(spark, from_secret, table).keys("id").execute(
            spark.createDataFrame([(1, "a", 10)], SCHEMA))
        rows = target_rows(spark, from_secret, table)

    assert (metrics.operation, metrics.rows_inserted) == ("UPSERT", 1)
    assert rows == [(1, "a", 10)]
    with pytest.raises(WriteError) as info:
        JdbcConnection(connection.url, JdbcCredentials(secret_id=f"{name}-gone",
                                                       region="us-east-1")).properties(table)
    assert str(info.value) == f"{table}: cannot read secret {name}-gone: ResourceNotFoundException"


def test_a_password_from_the_environment_never_reaches_an_error_or_a_log(
    spark, connection, table, monkeypatch, capfd
):
    saved = structlog.get_config()
    logs.configure("json")
    password = "Zq7-wr0ng-" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("WAREHOUSE_PASSWORD", password)
    wrong = JdbcConnection(connection.url, JdbcCredentials(user_env="ETL_PG_USER",
                                                           password_env="WAREHOUSE_PASSWORD"))
    try:
        with pytest.raises(WriteError) as info:
            WarehouseLoad(spark, wrong, table).keys("id").execute(
                spark.createDataFrame([(1, "a", 10)], SCHEMA))
        # a load logs its URL; a secret in the URL (an SSL key's password, unused here) is masked
        in_url = JdbcConnection(f"{connection.url}?sslpassword={password}", connection.credentials)
        WarehouseLoad(spark, in_url, table).keys("id").execute(
            spark.createDataFrame([(2, "b", 20)], SCHEMA))
    finally:
        structlog.configure(**saved)

    assert str(info.value) == (
        f"{table}: cannot connect to {connection.url}: org.postgresql.util.PSQLException: FATAL: "
        f'password authentication failed for user "{os.environ["ETL_PG_USER"]}"'
    )
    captured = capfd.readouterr()
    assert password not in captured.out + captured.err
    load_lines = [json.loads(line) for line in captured.err.splitlines()
                  if line.startswith("{") and '"warehouse load"' in line]
    assert [(e["table"], e["url"]) for e in load_lines] == [(table, f"{connection.url}?sslpassword=***")]
