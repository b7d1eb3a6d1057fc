"""Scenario 6, the case tests/unit/test_writers_schema.py does not cover: a nested field renamed
at the source (``st.a`` arrives as ``st.a2``). ``fail`` refuses it naming both fields and leaves
the table at its version; ``evolve`` keeps the old field (null for the new rows) and adds the new
one, so no value is lost."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from etl.errors import SchemaPolicyError
from etl.tables import latest_version, read_delta
from etl.writers.delta import DeltaMerge

TABLE = "id int, st struct<a:int>"
RENAMED = "id int, st struct<a2:int>"


@pytest.fixture()
def table(spark, tmp_path) -> str:
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, (10,))], TABLE).write.format("delta").save(path)
    return path


def test_fail_refuses_a_renamed_nested_field_and_leaves_the_table(spark, table):
    batch = spark.createDataFrame([(2, (20,))], RENAMED)
    with pytest.raises(SchemaPolicyError) as info:
        DeltaMerge(spark, table).keys("id").schema_policy("fail").execute(batch)
    assert str(info.value) == (
        f"{table}: schema policy 'fail': the batch differs from the table: removed st.a int; "
        "added st.a2 int; nothing was written")
    assert latest_version(spark, table) == 0
    assert_df_equality(read_delta(spark, table), spark.createDataFrame([(1, (10,))], TABLE))


def test_evolve_keeps_the_old_nested_field_and_adds_the_renamed_one(spark, table):
    batch = spark.createDataFrame([(2, (20,))], RENAMED)
    metrics = DeltaMerge(spark, table).keys("id").schema_policy("evolve").execute(batch)
    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated) == ("MERGE", 1, 0)
    assert_df_equality(
        read_delta(spark, table),
        spark.createDataFrame([(1, (10, None)), (2, (None, 20))], "id int, st struct<a:int,a2:int>"),
        ignore_row_order=True, ignore_nullable=True)
