"""Delta and CSV through s3a:// against the local S3 API (moto), with boto3 on the other side."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from chispa import assert_df_equality

from etl.cli import main
from etl.config import S3Settings, SourceConfig, load_job_config
from etl.lineage import RunLineage, lineage_run_id, read_events
from etl.readers.files import list_files, read_landed
from etl.runner import new_context
from etl.writers.delta import DeltaMerge, DeltaOverwrite
from tests.unit.test_lineage_events import validate_event

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


def test_lineage_events_of_a_run_on_s3_are_one_object_each(spark, s3, monkeypatch, capsys):
    """The file transport cannot append on an object store: each event is an object, written by
    the session's s3a:// FileSystem (no fsspec), named by its time, type and run; `read_events`
    and ``etl lineage`` read them back with boto3."""
    client, bucket = s3
    monkeypatch.setenv("ETL_WAREHOUSE", f"s3a://{bucket}/warehouse")
    monkeypatch.setenv("ETL_LANDING", f"s3a://{bucket}/landing")
    config = load_job_config("flights", env="local")
    ctx = new_context(config)
    lineage = RunLineage(config, ctx)
    lineage.start()
    table = spark.createDataFrame([(1, "kettle", T0)], SCHEMA)
    ctx.record_write(DeltaOverwrite(spark, ctx.warehouse.table("silver", "flights")).execute(table))
    lineage.complete(spark)

    keys = sorted(o["Key"] for o in client.list_objects_v2(
        Bucket=bucket, Prefix="warehouse/_etl/lineage/")["Contents"])
    events = [json.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
    for event in events:
        validate_event(event)
    run = lineage_run_id(ctx.run_id)
    assert [(e["eventType"], e["run"]["runId"]) for e in events] == [
        ("START", run), ("COMPLETE", run)]
    # "2026-12-07T10:48:16.123+00:00" names the object 20261207T104816.123Z-...
    assert keys == [
        "warehouse/_etl/lineage/flights/"
        + e["eventTime"].replace("+00:00", "Z").replace("-", "").replace(":", "")
        + f"-{e['eventType']}-{run}.json" for e in events]
    assert lineage.emitted == 2

    settings = S3Settings(endpoint=os.environ["ETL_S3_ENDPOINT"], path_style_access=True)
    assert read_events(ctx.warehouse, settings) == events
    # an object of another run's START that is not JSON: only a read that fetches it fails
    other = lineage_run_id("another-run")
    client.put_object(Bucket=bucket, Key=f"warehouse/_etl/lineage/flights/20260101T000000.000Z"
                      f"-START-{other}.json", Body=b"not an event")
    with pytest.raises(json.JSONDecodeError):
        read_events(ctx.warehouse, settings)
    assert read_events(ctx.warehouse, settings, types=["COMPLETE"]) == [events[1]]
    assert read_events(ctx.warehouse, settings, runs=[run]) == events
    assert read_events(ctx.warehouse, settings, types=["COMPLETE"], runs=[other]) == []
    assert main(["lineage", "silver/flights", "--upstream"]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        [f"landing/{source.path} -> job flights" for source in config.sources.values()]
        + ["job flights -> silver/flights"])


def test_typed_references_are_stored_on_s3_and_read_back_by_a_later_process(spark, s3):
    from pathlib import Path

    from etl.context import RunContext, Warehouse
    from etl.flow.build import STORED_SCHEMA, TypedReferences
    from etl.flow.plan import make_plan
    from tests.unit.test_typed_references import read_from

    client, bucket = s3
    root = f"s3a://{bucket}/warehouse"
    config = load_job_config("flights", directory=Path(__file__).resolve().parents[2] / "conf",
                             overrides=[f"paths.warehouse={root}"])
    plan = make_plan(config)
    ctx = RunContext(job="flights", env="test", warehouse=Warehouse.at(root), landing="",
                     run_id="r1")
    path = f"{root}/bronze/airlines"
    spark.createDataFrame([("AA", "American"), ("NA", "not a carrier"), ("UA", "United")],
                          "carrier string, name string").write.format("delta").save(path)

    first = TypedReferences().get(spark, plan, ctx, "airlines", path)
    assert read_from(first, "/warehouse/") == {"bronze"}
    stored = client.list_objects_v2(Bucket=bucket, Prefix="warehouse/_etl/typed_references/")
    names = sorted(o["Key"].split("/", 4)[4] for o in stored["Contents"])
    state = names[0].split("/")[1]
    assert [n.split("/")[0] for n in names] == ["airlines"] * len(names)
    assert {n.removeprefix(f"airlines/{state}/").split("-")[0] for n in names} == {
        "_SUCCESS", STORED_SCHEMA, "part"}

    later = TypedReferences().get(spark, plan, ctx, "airlines", path)  # another process
    assert read_from(later, "/warehouse/") == {"_etl"}
    assert sorted(r.carrier for r in later.collect()) == ["AA", "UA"]
