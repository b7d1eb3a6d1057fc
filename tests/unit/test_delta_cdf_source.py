"""An upstream Delta table's Change Data Feed as an incremental source (etl.readers.delta_cdf):
snapshot on the first run, the versions after the stored one next, nothing when nothing is
new; the version is stored in the watermarks after the target commit."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.config import CdcConfig, SourceConfig
from etl.context import RunContext, Warehouse
from etl.errors import SourceError
from etl.flow.cdc import sync_source
from etl.readers.delta_cdf import VERSION_COLUMN, read_change_feed
from etl.tables import read_delta
from etl.watermarks import WatermarkStore

SOURCE = SourceConfig(type="delta_cdf", path="bronze/customers",
                      cdc=CdcConfig(keys=["id"], deletes="soft"))
ROWS = "id int, name string, _cdc_op string, position bigint, _deleted boolean"


def run(spark, warehouse, run_id):
    """One run of a job with the source ``customers`` into silver/customers."""
    ctx = RunContext(job="sync", env="test", warehouse=warehouse, landing="", run_id=run_id)
    return sync_source(spark, ctx, "customers", SOURCE, warehouse.table("silver", "customers"))


def test_change_feed_snapshot_then_new_versions_then_nothing(spark, tmp_path):
    warehouse = Warehouse.at(str(tmp_path))
    upstream, target = f"{warehouse.root}/bronze/customers", f"{warehouse.root}/silver/customers"
    store = WatermarkStore(spark, warehouse.records("state/watermarks"))
    spark.sql(f"CREATE TABLE delta.`{upstream}` (id INT, name STRING) USING DELTA "
              "TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    spark.sql(f"INSERT INTO delta.`{upstream}` VALUES (1, 'Ann'), (2, 'Bob')")  # version 1

    first = run(spark, warehouse, "run-1")
    # version 2: one MERGE updates 1, deletes 2 and inserts 3
    spark.sql(f"""MERGE INTO delta.`{upstream}` t
        USING (SELECT * FROM VALUES (1, 'Anna', false), (2, 'Bob', true), (3, 'Cy', false)
               AS v(id, name, gone)) s
        ON t.id = s.id
        WHEN MATCHED AND s.gone THEN DELETE
        WHEN MATCHED THEN UPDATE SET name = s.name
        WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)""")
    second = run(spark, warehouse, "run-2")
    third = run(spark, warehouse, "run-3")  # nothing new: nothing written, nothing stored

    assert [(r.metrics.operation if r.metrics else None, r.position) for r in
            (first, second, third)] == [("WRITE", 1), ("MERGE", 2), (None, 2)]
    assert (second.metrics.rows_inserted, second.metrics.rows_updated) == (1, 2)
    stored = store.get("sync", "customers")
    assert (stored.column, stored.value, stored.run_id) == (VERSION_COLUMN, 2, "run-2")
    assert_df_equality(
        read_delta(spark, target).select("id", "name", "_cdc_op",
                                         F.col("_cdc_seq.position").alias("position"),
                                         "_deleted"),
        spark.createDataFrame(
            [(1, "Anna", "u", 2, False), (2, "Bob", "d", 2, True), (3, "Cy", "c", 2, False)],
            ROWS),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_change_feed_of_a_missing_table_names_the_source(spark, tmp_path):
    with pytest.raises(SourceError) as err:
        read_change_feed(spark, str(tmp_path / "none"), source_name="customers", last_version=3)
    assert str(err.value) == f"source customers: {tmp_path / 'none'} is not a Delta table"
