"""etl.readers.jdbc against the real PostgreSQL: full and incremental extracts (with a look-back
window), parallel reads, credentials from the environment and from Secrets Manager."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from chispa import assert_df_equality

from etl.config import JdbcConfig, JdbcCredentials, JdbcIncremental, JdbcPartitioning
from etl.errors import SourceError
from etl.readers.jdbc import WatermarkRange, read_jdbc
from etl.watermarks import Watermark

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 1, 1, 0, 0)
SCHEMA = "id bigint, name string, updated_at timestamp"
ENV_CREDENTIALS = JdbcCredentials(user_env="ETL_PG_USER", password_env="ETL_PG_PASSWORD")


def jdbc(table: str, **kwargs) -> JdbcConfig:
    url = f"jdbc:postgresql://{os.environ['ETL_PG_HOST']}:{os.environ['ETL_PG_PORT']}/" \
          f"{os.environ['ETL_PG_DB']}"
    kwargs.setdefault("credentials", ENV_CREDENTIALS)
    return JdbcConfig(url=url, driver="org.postgresql.Driver", table=table, **kwargs)


def hours(n: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


@pytest.fixture()
def events(pg, pg_schema):
    """Four rows, one an hour: ids 1..4 at 00:00, 01:00, 02:00, 03:00."""
    table = f"{pg_schema}.events"
    pg.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, name text, updated_at timestamp)")
    with pg.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                        [(i, f"event {i}", hours(i - 1)) for i in range(1, 5)])
    return table


def test_full_extract_reads_every_row(spark, events):
    extract = read_jdbc(spark, jdbc(events), source_name="events")

    expected = spark.createDataFrame([(i, f"event {i}", hours(i - 1)) for i in range(1, 5)], SCHEMA)
    assert_df_equality(extract.df, expected, ignore_row_order=True, ignore_nullable=True,
                       ignore_metadata=True)
    assert (extract.query, extract.watermark, extract.partitions) == (
        f"SELECT * FROM {events}", None, 1)


def test_first_incremental_extract_reads_everything_up_to_the_maximum(spark, events):
    config = jdbc(events, incremental=JdbcIncremental(column="updated_at", lookback="10 minutes"))

    extract = read_jdbc(spark, config, source_name="events")

    assert extract.df.count() == 4
    assert extract.watermark == WatermarkRange(column="updated_at", low=None, high=hours(3))
    assert extract.query == (
        f"SELECT * FROM {events} WHERE updated_at <= TIMESTAMP '2026-01-01 03:00:00'")


def test_incremental_extract_reads_exactly_the_rows_past_the_watermark_and_lookback(
    spark, pg, events
):
    stored = Watermark(job="j", source="events", column="updated_at", value=hours(3))
    pg.execute(f"INSERT INTO {events} VALUES (5, 'new', %s)", (hours(4),))
    # a late commit: updated after the last extract but stamped 5 minutes before the watermark
    pg.execute(f"UPDATE {events} SET name = 'late', updated_at = %s WHERE id = 2",
               (hours(3) - dt.timedelta(minutes=5),))
    # stamped 20 minutes before the watermark: outside a 10-minute look-back
    pg.execute(f"UPDATE {events} SET name = 'too late', updated_at = %s WHERE id = 1",
               (hours(3) - dt.timedelta(minutes=20),))
    config = jdbc(events, incremental=JdbcIncremental(column="updated_at", lookback="10 minutes"))

    extract = read_jdbc(spark, config, source_name="events", watermark=stored)

    expected = spark.createDataFrame(
        [(2, "late", hours(3) - dt.timedelta(minutes=5)), (4, "event 4", hours(3)),
         (5, "new", hours(4))], SCHEMA)
    assert_df_equality(extract.df, expected, ignore_row_order=True, ignore_nullable=True,
                       ignore_metadata=True)
    assert extract.watermark == WatermarkRange(
        column="updated_at", low=hours(3) - dt.timedelta(minutes=10), high=hours(4))
    assert extract.query == (
        f"SELECT * FROM {events} WHERE updated_at > TIMESTAMP '2026-01-01 02:50:00' "
        "AND updated_at <= TIMESTAMP '2026-01-01 04:00:00'")

    without_lookback = read_jdbc(spark, jdbc(events, incremental=JdbcIncremental("updated_at")),
                                 source_name="events", watermark=stored)
    assert [r.id for r in without_lookback.df.collect()] == [5]


def test_incremental_extract_with_nothing_new_reads_nothing_and_keeps_no_high_mark(spark, events):
    stored = Watermark(job="j", source="events", column="updated_at", value=hours(3))
    config = jdbc(events, incremental=JdbcIncremental(column="updated_at"))

    extract = read_jdbc(spark, config, source_name="events", watermark=stored)

    assert extract.df.count() == 0
    assert extract.watermark == WatermarkRange(column="updated_at", low=hours(3), high=None)


def test_parallel_read_returns_the_same_rows_as_a_single_read(spark, pg, pg_schema):
    table = f"{pg_schema}.numbers"
    pg.execute(f"CREATE TABLE {table} AS SELECT g::bigint AS id, 'n' || g AS name, "
               f"TIMESTAMP '2026-01-01' + g * INTERVAL '1 second' AS updated_at "
               f"FROM generate_series(1, 50) g")
    incremental = JdbcIncremental(column="id", lookback="5")
    stored = Watermark(job="j", source="numbers", column="id", value=25)

    single = read_jdbc(spark, jdbc(table, incremental=incremental), source_name="numbers",
                       watermark=stored)
    parallel = read_jdbc(
        spark, jdbc(table, incremental=incremental,
                    partitioning=JdbcPartitioning(column="id", num_partitions=4)),
        source_name="numbers", watermark=stored)

    assert (single.partitions, single.df.rdd.getNumPartitions()) == (1, 1)
    assert (parallel.partitions, parallel.df.rdd.getNumPartitions()) == (4, 4)
    assert parallel.watermark == WatermarkRange(column="id", low=20, high=50)
    assert sorted(r.id for r in parallel.df.collect()) == list(range(21, 51))
    assert_df_equality(parallel.df, single.df, ignore_row_order=True, ignore_metadata=True)


def test_missing_credentials_are_named_before_connecting(spark, events, monkeypatch):
    monkeypatch.delenv("ETL_PG_PASSWORD")

    with pytest.raises(SourceError) as info:
        read_jdbc(spark, jdbc(events), source_name="events")

    assert str(info.value) == (
        "source events: environment variable ETL_PG_PASSWORD (the password) is not set")


def test_a_wrong_password_fails_naming_the_source_but_never_the_password(
    spark, events, monkeypatch
):
    monkeypatch.setenv("ETL_PG_PASSWORD", "not-the-Password-42")

    with pytest.raises(SourceError) as info:
        read_jdbc(spark, jdbc(events), source_name="events")

    assert str(info.value).startswith("source events: JDBC read failed: ")
    assert 'password authentication failed for user "etl"' in str(info.value)
    assert "not-the-Password-42" not in str(info.value)


def test_credentials_from_secrets_manager(spark, events, monkeypatch):
    import boto3

    endpoint = os.environ["ETL_S3_ENDPOINT"]  # moto's server answers every AWS API
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    secret = f"etl/test/{events}"
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=secret, SecretString=json.dumps({"username": os.environ["ETL_PG_USER"],
                                              "password": os.environ["ETL_PG_PASSWORD"]}))
    config = jdbc(events, credentials=JdbcCredentials(secret_id=secret, region="us-east-1"))

    assert read_jdbc(spark, config, source_name="events").df.count() == 4

    missing = jdbc(events, credentials=JdbcCredentials(secret_id=secret + "-nope",
                                                       region="us-east-1"))
    with pytest.raises(SourceError) as info:
        read_jdbc(spark, missing, source_name="events")
    assert str(info.value) == (
        f"source events: cannot read secret {secret}-nope: ResourceNotFoundException")
