"""JDBC sources without a database: their configuration (checked before Spark starts), the
look-back syntax, and credentials from the environment."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from etl.config import (
    JdbcConfig,
    JdbcCredentials,
    JdbcIncremental,
    JdbcPartitioning,
    JdbcRetry,
    load_job_config,
)
from etl.errors import ConfigError, SourceError
from etl.readers.jdbc import parse_lookback, redact_url, resolve_credentials, retry_disconnects


@pytest.fixture()
def conf(tmp_path, conf_dir) -> Path:
    return Path(shutil.copytree(conf_dir, tmp_path / "conf"))


def edit_shop(conf: Path, old: str, new: str) -> Path:
    path = conf / "jobs" / "shop.yml"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    return path


def test_the_shop_sources_are_typed(conf_dir):
    config = load_job_config("shop", directory=conf_dir, environ={"ETL_SHOP_SCHEMA": "s1"})

    orders = config.source("orders")
    assert (orders.type, orders.path) == ("jdbc", "")
    assert orders.jdbc.url == "jdbc:postgresql://127.0.0.1:25432/etl"
    assert (orders.jdbc.driver, orders.jdbc.table) == ("org.postgresql.Driver", "s1.orders")
    assert orders.jdbc.credentials == JdbcCredentials(user_env="ETL_PG_USER",
                                                      password_env="ETL_PG_PASSWORD")
    assert orders.jdbc.incremental == JdbcIncremental(column="updated_at", lookback="10 minutes")
    assert orders.jdbc.partitioning == JdbcPartitioning(column="id", num_partitions=2)
    assert config.source("customers").jdbc.partitioning is None
    assert (config.staging.enabled, config.retention.staging) == (True, "30 days")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("      table: ${ETL_SHOP_SCHEMA:-shop}.orders\n",
         "      table: ${ETL_SHOP_SCHEMA:-shop}.orders\n      query: SELECT 1\n",
         "sources.orders.jdbc.table: give exactly one of table and query"),
        ("  orders:\n    type: jdbc\n", "  orders:\n    type: files\n",
         "sources.orders.jdbc: only a source of type jdbc or pg_logical has a jdbc section"),
        ("order_items\n      partitioning: {column: id, num_partitions: 2}",
         "order_items\n      partitioning: {column: id, num_partitions: 0}",
         "sources.order_items.jdbc.partitioning.num_partitions: expected at least 1, got 0"),
        ("credentials: {user_env: ETL_PG_USER, password_env: ETL_PG_PASSWORD}",
         "credentials: {user_env: ETL_PG_USER, password_env: ETL_PG_PASSWORD, secret_id: s}",
         ("sources.customers.jdbc.credentials: give either secret_id or user_env and "
         "password_env")),
        ("credentials: {user_env: ETL_PG_USER, password_env: ETL_PG_PASSWORD}",
         "credentials: {user_env: ETL_PG_USER}",
         "sources.customers.jdbc.credentials: give both user_env and password_env"),
        ("credentials: {user_env: ETL_PG_USER, password_env: ETL_PG_PASSWORD}",
         "credentials: {user_env: ETL_PG_USER, password: hunter2}",
         ("sources.customers.jdbc.credentials.password: unknown key (allowed: password_env, "
         "region, secret_id, user_env)")),
    ],
)
def test_broken_jdbc_sources_are_named_with_file_and_key(conf, old, new, message):
    path = edit_shop(conf, old, new)

    with pytest.raises(ConfigError) as info:
        load_job_config("shop", directory=conf, environ={})

    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "value"),
    [("", None), ("500", 500), ("10 minutes", dt.timedelta(minutes=10)),
     ("1 day", dt.timedelta(days=1)), ("2 Hours", dt.timedelta(hours=2)),
     ("30 seconds", dt.timedelta(seconds=30))],
)
def test_lookback_syntax(text, value):
    assert parse_lookback(text) == value


def test_lookback_that_is_not_a_duration():
    with pytest.raises(ValueError) as info:
        parse_lookback("a while")
    assert str(info.value) == (
        "lookback 'a while': expected a number (id columns) or 'N seconds|minutes|hours|days'")


def test_credentials_from_the_environment_and_what_is_missing():
    creds = JdbcCredentials(user_env="DB_USER", password_env="DB_PASSWORD")

    assert resolve_credentials("orders", creds, {"DB_USER": "u", "DB_PASSWORD": "p"}) == ("u", "p")
    with pytest.raises(SourceError) as info:
        resolve_credentials("orders", creds, {"DB_PASSWORD": "p"})
    assert str(info.value) == (
        "source orders: environment variable DB_USER (the user) is not set")


@pytest.mark.parametrize("retry, message", [
    (JdbcRetry(attempts=0), "sources.orders.jdbc.retry.attempts: expected an integer >= 1, got 0"),
    (JdbcRetry(backoff_s=-1), "sources.orders.jdbc.retry.backoff_s: expected a number >= 0, got -1"),
])
def test_retry_settings_are_checked_before_anything_runs(retry, message):
    jdbc = JdbcConfig(url="jdbc:postgresql://h/db", driver="org.postgresql.Driver",
                      table="shop.orders", retry=retry)
    calls = []
    with pytest.raises(ConfigError) as info:
        retry_disconnects("orders", jdbc, lambda: calls.append(1))
    assert (str(info.value), calls) == (message, [])


def test_a_failure_that_is_not_a_lost_connection_is_not_retried():
    jdbc = JdbcConfig(url="jdbc:postgresql://h/db", driver="org.postgresql.Driver",
                      table="shop.orders", retry=JdbcRetry(attempts=3, backoff_s=0))
    calls = []

    def action():
        calls.append(1)
        raise SourceError("source orders: no such table")

    with pytest.raises(SourceError) as info:
        retry_disconnects("orders", jdbc, action)
    assert (str(info.value), calls) == ("source orders: no such table", [1])


@pytest.mark.parametrize("url, shown", [
    ("jdbc:postgresql://h:5432/db", "jdbc:postgresql://h:5432/db"),
    ("jdbc:postgresql://h/db?user=u&password=secret&ssl=true",
     "jdbc:postgresql://h/db?user=u&password=***&ssl=true"),
    ("jdbc:mysql://u:secret@h/db", "jdbc:mysql://u:***@h/db"),
    ("jdbc:sqlserver://h;user=u;Password=secret", "jdbc:sqlserver://h;user=u;Password=***"),
])
def test_urls_in_messages_never_show_a_password(url, shown):
    assert redact_url(url) == shown
