"""Targets from YAML (TargetConfig keys of etl.config) to writers (etl.writers.targets): the keys
are typed and checked at load time; write_target commits with the run's identity, records the
write and the evolved schema on the run, sets table properties and registers the catalog name."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from etl.config import TargetConfig, load_job_config
from etl.context import RunContext, Warehouse, WriteMetrics
from etl.errors import ConfigError
from etl.tables import read_delta
from etl.writers.targets import input_digest, write_target

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
