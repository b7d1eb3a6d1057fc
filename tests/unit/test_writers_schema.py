"""Schema policies (etl.writers.schema) on real Delta tables: for each policy a batch with an
added column, a removed column, a widened type (int -> bigint), an incompatible type
(int -> string) and a new nested struct field; the table and the message are checked."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from etl.errors import SchemaPolicyError, exit_code
from etl.tables import read_delta
from etl.writers.delta import DeltaAppend, DeltaMerge
from etl.writers.schema import ColumnChange, diff_schemas

TABLE = "id int, v string, n int, code int, st struct<a:int>"
ALL_CHANGES = "id int, n bigint, code string, st struct<a:int,b:boolean>, extra string"
ADDITIVE = "id int, n bigint, code int, st struct<a:int,b:boolean>, extra string"


def ddl(text: str) -> T.StructType:
    return T._parse_datatype_string(text)


def test_diff_names_every_change_with_its_types():
    diff = diff_schemas(ddl(TABLE), ddl(ALL_CHANGES))

    assert diff.changes == (
        ColumnChange("v", "removed", "string", None),
        ColumnChange("n", "widened", "int", "bigint"),
        ColumnChange("code", "retyped", "int", "string"),
        ColumnChange("st.b", "added", None, "boolean"),
        ColumnChange("extra", "added", None, "string"),
    )
    assert not diff_schemas(ddl(TABLE), ddl(TABLE))


@pytest.fixture()
def table(spark, tmp_path) -> str:
    path = str(tmp_path / "silver" / "t")
    spark.createDataFrame([(1, "a", 10, 100, (1,))], TABLE).write.format("delta").save(path)
    return path


def test_fail_reports_every_difference_and_leaves_the_table_untouched(spark, table):
    batch = spark.createDataFrame([(2, 20, "x", (2, True), "e")], ALL_CHANGES)

    with pytest.raises(SchemaPolicyError) as info:
        DeltaAppend(spark, table).schema_policy("fail").execute(batch)

    assert str(info.value) == (
        f"{table}: schema policy 'fail': the batch differs from the table: removed v string; "
        "widened n int -> bigint; retyped code int -> string; added st.b boolean; "
        "added extra string; nothing was written"
    )
    assert exit_code(info.value) == 1
    assert_df_equality(read_delta(spark, table), spark.createDataFrame([(1, "a", 10, 100, (1,))], TABLE))


def test_evolve_refuses_an_incompatible_type_and_writes_nothing(spark, table):
    batch = spark.createDataFrame([(2, 20, "x", (2, True), "e")], ALL_CHANGES)

    with pytest.raises(SchemaPolicyError) as info:
        DeltaMerge(spark, table).keys("id").schema_policy("evolve").execute(batch)

    assert str(info.value) == (
        f"{table}: schema policy 'evolve': the batch has incompatible types for the table: "
        "retyped code int -> string; nothing was written"
    )
    assert read_delta(spark, table).schema == ddl(TABLE)


def test_evolve_adds_columns_and_nested_fields_widens_types_and_nulls_removed_columns(spark, table):
    batch = spark.createDataFrame([(1, 2**40, 101, (1, True), "e"), (2, 20, 200, None, None)], ADDITIVE)
    merge = DeltaMerge(spark, table).keys("id").schema_policy("evolve")

    assert merge.schema_diff(batch).describe() == (
        "removed v string; widened n int -> bigint; added st.b boolean; added extra string"
    )
    metrics = merge.execute(batch)

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated) == ("MERGE", 1, 1)
    assert_df_equality(
        read_delta(spark, table),
        spark.createDataFrame(
            [(1, None, 2**40, 101, (1, True), "e"), (2, None, 20, 200, None, None)],
            "id int, v string, n bigint, code int, st struct<a:int,b:boolean>, extra string",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_rescue_keeps_unknown_and_mistyped_values_as_json(spark, table):
    batch = spark.createDataFrame([(2, 20, "x", (2, True), "e"), (3, 30, "300", (3, None), None)], ALL_CHANGES)

    DeltaAppend(spark, table).schema_policy("rescue").execute(batch)

    assert_df_equality(
        read_delta(spark, table),
        spark.createDataFrame(
            [
                (1, "a", 10, 100, (1,), None),
                (2, None, 20, None, (2,), '{"n":20,"code":"x","st.b":true,"extra":"e"}'),
                (3, None, 30, 300, (3,), '{"n":30,"code":"300"}'),
            ],
            TABLE + ", _rescued_data string",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
