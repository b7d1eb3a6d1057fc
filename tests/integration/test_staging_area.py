"""The staging area on s3a://: stage an extract, find and read it back by run id, purge staged
days past retention."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from etl.errors import StateError
from etl.staging import Staging

pytestmark = pytest.mark.integration


def test_stage_read_back_and_purge_on_s3(spark, s3):
    client, bucket = s3
    staging = Staging(spark, f"s3a://{bucket}/warehouse/staging/")
    rows = spark.createDataFrame([(1, "kettle"), (2, "mug")], "id long, name string")

    staged = staging.stage("orders", "run-1", dt.date(2026, 1, 1), rows, {"query": "SELECT 1"})
    staging.stage("orders", "run-2", dt.date(2026, 1, 20), rows.limit(1), {})

    assert staged.path == f"s3a://{bucket}/warehouse/staging/orders/2026-01-01/run-1"
    assert staged.manifest == {"query": "SELECT 1", "source": "orders", "run_id": "run-1",
                               "rows": 2}
    again = staging.read("orders", "run-1")
    assert (again.path, again.manifest) == (staged.path, staged.manifest)
    assert_df_equality(again.df, rows, ignore_row_order=True)

    with pytest.raises(StateError) as info:
        staging.read("orders", "run-3")
    assert str(info.value) == (
        f"no staged extract of source orders for run run-3 under s3a://{bucket}/warehouse/staging")

    assert staging.purge(30, dt.date(2026, 1, 25)) == []
    assert staging.purge(10, dt.date(2026, 1, 25)) == [
        f"s3a://{bucket}/warehouse/staging/orders/2026-01-01"]
    left = {o["Key"].split("/")[3] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert left == {"2026-01-20"}
