"""Delta and CSV through s3a:// against the local S3 API (moto), with boto3 on the other side."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from etl.config import SourceConfig
from etl.readers.files import list_files, read_landed
from etl.writers.delta import DeltaMerge, DeltaOverwrite

pytestmark = pytest.mark.integration
SCHEMA = "id long, name string, updated_at timestamp"
T0 = dt.datetime(2026, 1, 1, 8, 0)


def test_delta_tables_written_and_merged_on_s3(spark, s3):
    _, bucket = s3
    path = f"s3a://{bucket}/warehouse/silver/things"
    first = spark.createDataFrame([(1, "kettle", T0), (2, "mug", T0)], SCHEMA)
    DeltaOverwrite(spark, path).execute(first)

    batch = spark.createDataFrame(
        [(2, "big mug", T0 + dt.timedelta(hours=1)), (3, "teapot", T0)], SCHEMA)
    metrics = DeltaMerge(spark, path).keys("id").sequence_by("updated_at").execute(batch)

    assert (metrics.operation, metrics.version, metrics.rows_inserted, metrics.rows_updated) == (
        "MERGE", 1, 1, 1)
    expected = spark.createDataFrame(
        [(1, "kettle", T0), (2, "big mug", T0 + dt.timedelta(hours=1)), (3, "teapot", T0)], SCHEMA)
    assert_df_equality(spark.read.format("delta").load(path), expected, ignore_row_order=True)


def test_csv_landed_with_boto3_read_by_spark_and_written_back(spark, s3):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="landing/things/a.csv",
                      Body=b"id,name\n1,kettle\n2,mug,extra\n")
    client.put_object(Bucket=bucket, Key="landing/things/b.csv", Body=b"id,name\n3,teapot\n")
    folder = f"s3a://{bucket}/landing/things"
    source = SourceConfig(path=folder, pattern="*.csv", columns=["id", "name"],
                          options={"header": "true"})

    files = list_files(spark, folder, source.pattern)
    raw = read_landed(spark, files, source, source_name="things", run_id="r1", ingested_at=T0)

    assert [(f.path, f.size) for f in files] == [(f"{folder}/a.csv", 29), (f"{folder}/b.csv", 17)]
    expected = spark.createDataFrame(
        [("1", "kettle", None, f"{folder}/a.csv"), ("2", "mug", "2,mug,extra", f"{folder}/a.csv"),
         ("3", "teapot", None, f"{folder}/b.csv")],
        "id string, name string, _corrupt_record string, _source_file string")
    assert_df_equality(raw.select(*expected.columns), expected, ignore_row_order=True,
                       ignore_nullable=True)

    raw.where("_corrupt_record IS NULL").select("id", "name").orderBy("id").coalesce(1).write \
        .option("header", "true").csv(f"s3a://{bucket}/exports/things")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="exports/things/")
            ["Contents"] if o["Key"].endswith(".csv")]
    assert len(keys) == 1
    body = client.get_object(Bucket=bucket, Key=keys[0])["Body"].read().decode()
    assert body == "id,name\n1,kettle\n3,teapot\n"
