"""Warehouse loads (etl.writers.jdbc) against the real PostgreSQL of scripts/services.sh:
upsert, full load, DDL check, and a failure in the middle of a load that leaves the target
unchanged. Needs `scripts/services.sh start postgres`."""

from __future__ import annotations

import os
import uuid

import pytest

from etl.errors import SchemaPolicyError, WriteError
from etl.writers.jdbc import JdbcConnection, WarehouseLoad, jdbc_transaction

pytestmark = pytest.mark.integration

SCHEMA = "id int, name string, amount bigint"


@pytest.fixture()
def connection(monkeypatch) -> JdbcConnection:
    # the defaults of scripts/services.sh, unless `eval "$(scripts/services.sh env)"` set them
    for name, default in (("ETL_PG_PASSWORD", "etl"), ("ETL_PG_HOST", "127.0.0.1"),
                          ("ETL_PG_PORT", "55432"), ("ETL_PG_DB", "etl"), ("ETL_PG_USER", "etl")):
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
    monkeypatch.delenv("ETL_PG_PASSWORD", raising=False)
    connection = JdbcConnection("jdbc:postgresql://127.0.0.1:55432/etl", "etl")

    with pytest.raises(WriteError) as info:
        connection.properties()

    assert str(info.value) == (
        "jdbc:postgresql://127.0.0.1:55432/etl: environment variable ETL_PG_PASSWORD is not set"
    )
