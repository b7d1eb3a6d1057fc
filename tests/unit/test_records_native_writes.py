"""A run's books written without Spark: `RecordTable.append` and `merge` of rows given as
tuples commit through delta-rs on the local file system (`etl.native`). The tables they leave
must be the ones Spark would have left (schema, rows, the run id in the commit), and either
engine must be able to go on writing a table the other began."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from etl import native
from etl.records import BACKFILLS, FILES, RUNS, WATERMARKS

AT = dt.datetime(2026, 3, 1, 12, 30, 15, 250000)
DAY = dt.date(2026, 3, 1)


def run_rows():
    """A run row and a step row: arrays of structs and of strings, nulls, dates, timestamps."""
    common = {"run_id": "r1", "job": "flights", "env": "dev", "mode": "incremental",
              "date_from": DAY, "date_to": None, "etl_version": "1.0", "git_commit": None}
    run = {**common, "record_type": "run", "status": "succeeded", "started_at": AT,
           "ended_at": AT + dt.timedelta(seconds=9.5), "duration_s": 9.5, "rows_read": 6,
           "writes": [("silver/flights", "MERGE", 3, 2, 4, 0, 1, 1),
                      ("gold/daily", "WRITE", 1, 5, None, None, 2, 0)],
           "schema_changes": [], "notes": ["a note", None], "files_set_aside": None,
           "spark_jobs": 7, "spark_tasks": 11}
    step = {**common, "record_type": "step", "step": "extract", "step_index": 0,
            "status": "succeeded", "started_at": AT, "ended_at": None, "duration_s": 1.25}
    return [tuple(r.get(f.name) for f in RUNS.schema.fields) for r in (run, step)]


def spark_only(monkeypatch):
    """delta-rs steps aside: the record tables are written by Spark, as on S3."""
    monkeypatch.setattr(native, "append", lambda *_, **__: False)
    monkeypatch.setattr(native, "upsert", lambda *_, **__: False)


def history(spark, path, column):
    """``column`` of each commit of the table, oldest first."""
    return [r[column] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`")
            .orderBy("version").collect()]


def user_metadata(spark, path):
    return history(spark, path, "userMetadata")


def engines(spark, path):
    return [info.split(":")[0].split("/")[0] for info in history(spark, path, "engineInfo")]


def test_the_run_record_written_by_delta_rs_is_the_one_spark_writes(spark, tmp_path, monkeypatch):
    by_delta_rs, by_spark = str(tmp_path / "native"), str(tmp_path / "spark")
    RUNS.append(spark, by_delta_rs, run_rows(), run_id="r1")
    with monkeypatch.context() as patch:
        spark_only(patch)
        RUNS.append(spark, by_spark, run_rows(), run_id="r1")

    written = spark.read.format("delta").load(by_delta_rs)
    expected = spark.read.format("delta").load(by_spark)
    assert written.schema == expected.schema  # every column nullable, as Spark creates them
    assert written.schema.names == RUNS.schema.names
    assert_df_equality(written, expected, ignore_row_order=True)
    assert [r.asDict(recursive=True)["writes"] for r in written.where("record_type = 'run'")
            .collect()] == [[
                {"table": "silver/flights", "operation": "MERGE", "version": 3,
                 "rows_inserted": 2, "rows_updated": 4, "rows_deleted": 0, "files_added": 1,
                 "files_removed": 1},
                {"table": "gold/daily", "operation": "WRITE", "version": 1, "rows_inserted": 5,
                 "rows_updated": None, "rows_deleted": None, "files_added": 2,
                 "files_removed": 0}]]
    assert user_metadata(spark, by_delta_rs) == user_metadata(spark, by_spark) == ["r1"]
    assert (engines(spark, by_delta_rs), engines(spark, by_spark)) == (["delta-rs"],
                                                                       ["Apache-Spark"])


def test_each_engine_goes_on_with_a_table_the_other_began(spark, tmp_path, monkeypatch):
    path = str(tmp_path / "files")
    spark.createDataFrame(  # a ledger written by Spark before `status` and `reason` existed
        [("flights", "flights", "file:/landing/a.csv", 10, 1000, "r1", AT)],
        "job string, source string, path string, size long, modified_ms long, run_id string, "
        "ingested_at timestamp").write.format("delta").save(path)
    FILES.append(spark, path, [("flights", "flights", "file:/landing/b.csv", 20, 2000, "r2",
                                AT, "set_aside", "no header")], run_id="r2")
    with monkeypatch.context() as patch:
        spark_only(patch)
        FILES.append(spark, path, [("flights", "flights", "file:/landing/c.csv", 30, 3000, "r3",
                                    AT, "ingested", None)], run_id="r3")
    FILES.append(spark, path, [("shop", "orders", "file:/landing/d.csv", 40, 4000, "r4", AT,
                                "readmitted", None)], run_id="r4")

    expected = spark.createDataFrame([
        ("flights", "flights", "file:/landing/a.csv", 10, 1000, "r1", AT, None, None),
        ("flights", "flights", "file:/landing/b.csv", 20, 2000, "r2", AT, "set_aside",
         "no header"),
        ("flights", "flights", "file:/landing/c.csv", 30, 3000, "r3", AT, "ingested", None),
        ("shop", "orders", "file:/landing/d.csv", 40, 4000, "r4", AT, "readmitted", None),
    ], spark.read.format("delta").load(path).schema)
    assert_df_equality(spark.read.format("delta").load(path), expected, ignore_row_order=True)
    assert user_metadata(spark, path) == [None, "r2", "r3", "r4"]
    assert engines(spark, path) == ["Apache-Spark", "delta-rs", "Apache-Spark", "delta-rs"]


def test_a_table_with_a_feature_delta_rs_does_not_write_is_appended_by_spark(spark, tmp_path):
    path = str(tmp_path / "backfills")
    first = ("flights", DAY, "succeeded", "r1", None, AT)
    BACKFILLS.frame(spark, [first]).write.format("delta").save(path)
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableTypeWidening' = 'true')")
    second = ("flights", DAY + dt.timedelta(days=1), "failed", "r2", "boom", AT)

    BACKFILLS.append(spark, path, [second], run_id="r2")

    assert_df_equality(spark.read.format("delta").load(path),
                       BACKFILLS.frame(spark, [first, second]), ignore_row_order=True,
                       ignore_nullable=True)
    assert engines(spark, path)[-1] == "Apache-Spark"
    assert user_metadata(spark, path)[-1] == "r2"


@pytest.mark.parametrize("engine", ["delta-rs", "spark"])
def test_a_watermark_upsert_replaces_its_key_and_adds_new_ones(spark, tmp_path, monkeypatch,
                                                                engine):
    if engine == "spark":
        spark_only(monkeypatch)
    path = str(tmp_path / "watermarks")
    WATERMARKS.merge(spark, path, [
        ("flights", "flights", "ts", "timestamp", "2026-03-01T00:00:00", "r1", AT),
        ("flights", "weather", "ts", "timestamp", "2026-03-01T01:00:00", "r1", AT),
    ], run_id="r1")
    later = AT + dt.timedelta(hours=1)
    WATERMARKS.merge(spark, path, [
        ("flights", "weather", "ts", "timestamp", "2026-03-02T01:00:00", "r2", later),
        ("shop", "orders", "id", "integer", "42", "r2", later),
    ], run_id="r2")

    expected = spark.createDataFrame([
        ("flights", "flights", "ts", "timestamp", "2026-03-01T00:00:00", "r1", AT),
        ("flights", "weather", "ts", "timestamp", "2026-03-02T01:00:00", "r2", later),
        ("shop", "orders", "id", "integer", "42", "r2", later),
    ], WATERMARKS.schema)
    assert_df_equality(spark.read.format("delta").load(path), expected, ignore_row_order=True,
                       ignore_nullable=True)
    assert user_metadata(spark, path) == ["r1", "r2"]


def test_a_value_that_does_not_fit_its_column_is_refused_as_spark_refuses_it(spark, tmp_path):
    path = tmp_path / "files"
    with pytest.raises(TypeError, match=r"^\[CANNOT_ACCEPT_OBJECT_IN_TYPE\] `LongType\(\)` can not "
                                        r"accept object `ten` in type `str`\.$"):
        FILES.append(spark, str(path), [("flights", "flights", "file:/landing/a.csv", "ten",
                                         1000, "r1", AT, "ingested", None)], run_id="r1")
    assert not path.exists()  # nothing written by either engine
