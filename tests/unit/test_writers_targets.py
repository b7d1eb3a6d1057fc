"""Targets from YAML (TargetConfig keys of etl.config) to writers (etl.writers.targets): the keys
are typed and checked at load time; write_target commits with the run's identity, records the
write and the evolved schema on the run, sets table properties and registers the catalog name."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from etl.config import JdbcCredentials, TargetConfig, load_job_config
from etl.context import RunContext, Warehouse, WriteMetrics
from etl.errors import ConfigError
from etl.tables import read_delta
from etl.writers.jdbc import JdbcConnection, WarehouseLoad
from etl.writers.targets import input_digest, target_writer, write_target

JOB = """\
job: {name: shop, entrypoint: "x:y"}
targets:
  customers:
    layer: silver
    table: customers
    mode: merge
    keys: [id]
    sequence_by: [seq]
    duplicates: latest
    schema_policy: evolve
    delete_column: op
    delete_values: [D, X]
    properties: {delta.enableChangeDataFeed: "true", delta.checkpointInterval: "5"}
    catalog_name: shop_silver.customers
    max_retries: 5
"""


def write_conf(tmp_path, job: str):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "base.yml").write_text("paths: {warehouse: ./wh}\n")
    (tmp_path / "local.yml").write_text("")
    (tmp_path / "jobs" / "shop.yml").write_text(job)
    return tmp_path


def test_target_keys_are_read_as_typed_values(tmp_path):
    config = load_job_config("shop", directory=write_conf(tmp_path, JOB), environ={})

    assert config.target("customers") == TargetConfig(
        layer="silver", table="customers", mode="merge", keys=["id"], sequence_by=["seq"],
        duplicates="latest", schema_policy="evolve", delete_column="op", delete_values=["D", "X"],
        properties={"delta.enableChangeDataFeed": "true", "delta.checkpointInterval": "5"},
        catalog_name="shop_silver.customers", max_retries=5,
    )


def test_settings_that_do_not_fit_together_fail_at_load_time(tmp_path):
    job = JOB.replace("    keys: [id]\n", "")

    with pytest.raises(ConfigError) as info:
        load_job_config("shop", directory=write_conf(tmp_path, job), environ={})

    assert str(info.value) == f"{tmp_path}/jobs/shop.yml: targets.customers.keys: mode merge needs keys"


def test_write_target_commits_once_per_run_and_records_what_it_did(spark, tmp_path):
    target = load_job_config("shop", directory=write_conf(tmp_path, JOB), environ={}).target("customers")
    ctx = RunContext(job="shop", env="local", warehouse=Warehouse.at(str(tmp_path / "wh")), landing="")
    first = spark.createDataFrame([(1, "a", 1, "U")], "id int, v string, seq int, op string")
    write_target(spark, ctx, "customers", target, first)
    batch = spark.createDataFrame(
        [(1, "a2", 2, "U", 10), (1, "a1", 1, "U", 11)], "id int, v string, seq int, op string, n int"
    )
    rerun = RunContext(job="shop", env="local", warehouse=ctx.warehouse, landing="")
    retry = RunContext(job="shop", env="local", warehouse=ctx.warehouse, landing="")
    inputs = input_digest(["landing/customers/2.csv:120:1700000000"])

    metrics = write_target(spark, rerun, "customers", target, batch, logical_run=inputs)
    # the same inputs again (a retried run, with its own run id): nothing is written
    again = write_target(spark, retry, "customers", target, batch, logical_run=inputs)

    path = str(tmp_path / "wh" / "silver" / "customers")
    assert (metrics.operation, metrics.rows_updated) == ("MERGE", 1)
    assert again == WriteMetrics(table="silver/customers", operation="SKIPPED", version=metrics.version)
    assert (rerun.writes, retry.writes) == ([metrics], [again])
    assert rerun.notes == ["schema evolve: silver/customers: added n int"]
    assert_df_equality(
        read_delta(spark, path),
        spark.createDataFrame([(1, "a2", 2, "U", 10)], "id int, v string, seq int, op string, n int"),
        ignore_nullable=True,
    )
    properties = DeltaTable.forPath(spark, path).detail().first()["properties"]
    assert (properties["delta.enableChangeDataFeed"], properties["delta.checkpointInterval"]) == ("true", "5")
    assert spark.table("shop_silver.customers").count() == 1
    history = DeltaTable.forPath(spark, path).history().select("userMetadata").collect()
    assert {h.userMetadata for h in history} == {ctx.run_id, rerun.run_id}


JDBC_JOB = """\
job: {name: shop, entrypoint: "x:y"}
targets:
  orders:
    layer: gold
    table: orders
    format: jdbc
    mode: overwrite
    keys: [id]
    duplicates: latest
    sequence_by: [updated_at]
    jdbc_url: jdbc:redshift://dw.example.com:5439/dw
    jdbc_table: public.orders
    dialect: redshift
    jdbc_credentials: {secret_id: dw/loader, region: eu-west-1}
    allow_empty: true
"""


def test_a_jdbc_target_becomes_a_load_with_its_credentials_duplicates_and_empty_policy(spark, tmp_path):
    ctx = RunContext(job="shop", env="local", warehouse=Warehouse.at(str(tmp_path / "wh")), landing="")
    target = load_job_config("shop", directory=write_conf(tmp_path, JDBC_JOB), environ={}).target("orders")
    url = "jdbc:redshift://dw.example.com:5439/dw"

    assert target_writer(spark, ctx, "orders", target) == WarehouseLoad(
        spark, JdbcConnection(url, JdbcCredentials(secret_id="dw/loader", region="eu-west-1")),
        "public.orders", key_columns=("id",), mode="full", dialect="redshift",
        duplicates="latest", sequence_columns=("updated_at",), empty_allowed=True,
    )
    # the older form: the user name itself and the variable of the password
    legacy = TargetConfig(layer="gold", table="orders", format="jdbc", mode="merge", keys=["id"],
                          jdbc_url=url, jdbc_table="public.orders", jdbc_user="loader",
                          password_env="DW_PASSWORD")
    assert target_writer(spark, ctx, "orders", legacy) == WarehouseLoad(
        spark, JdbcConnection(url, JdbcCredentials(password_env="DW_PASSWORD"), user="loader"),
        "public.orders", key_columns=("id",),
    )


@pytest.mark.parametrize(("old", "new", "key", "message"), [
    ("    allow_empty: true\n", "    allow_empty: true\n    jdbc_user: loader\n", "jdbc_credentials",
     "give jdbc_credentials or jdbc_user, not both"),
    ("{secret_id: dw/loader, region: eu-west-1}", "{user_env: DW_USER}", "jdbc_credentials",
     "give either secret_id or both user_env and password_env"),
])
def test_jdbc_target_settings_that_do_not_fit_fail_at_load_time(tmp_path, old, new, key, message):
    with pytest.raises(ConfigError) as info:
        load_job_config("shop", directory=write_conf(tmp_path, JDBC_JOB.replace(old, new)), environ={})

    assert str(info.value) == f"{tmp_path}/jobs/shop.yml: targets.orders.{key}: {message}"
