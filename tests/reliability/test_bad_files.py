"""Scenario 5: odd files landed next to good ones — a byte-order mark, the wrong encoding, a
truncated last record, an empty file, a header-only file. One run of the flights job: good rows
load, bad rows are quarantined with their reasons and file, and the counts reconcile."""

from __future__ import annotations

import sys

import pytest
from chispa import assert_df_equality

from etl.config import load_job_config
from etl.runner import run_job
from tests.reliability.harness import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

pytestmark = pytest.mark.e2e
HEADER = ("year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,"
          "carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour\n")


def row(flight: int, tailnum: str = "N14228") -> str:
    return (f"2013,1,1,517,515,2,830,819,11,UA,{flight},{tailnum},EWR,IAH,227,1400,5,15,"
            "2013-01-01T10:00:00Z\n")


def test_odd_files_load_their_good_rows_and_quarantine_the_rest(spark, tmp_path):
    warehouse, landing = tmp_path / "warehouse", tmp_path / "landing"
    land_flights.land(landing, [1], [1])
    (landing / "flights" / "flights_2013_01.csv").write_text(HEADER + row(9001))
    folder = landing / "flights"
    (folder / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + row(9002)).encode())
    (folder / "latin1.csv").write_bytes((HEADER + row(9003, "N\xe9")).encode("latin-1"))
    (folder / "truncated.csv").write_text(HEADER + row(9004) + row(9005)[:40])
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text(HEADER)
    config = load_job_config("flights", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}"])

    ctx = run_job(config, spark=spark)

    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        5, 3, 2, 0)
    silver = spark.read.format("delta").load(str(warehouse / "silver" / "flights"))
    assert_df_equality(
        silver.select("flight", "tailnum"),
        spark.createDataFrame([(9001, "N14228"), (9002, "N14228"), (9004, "N14228")],
                              "flight int, tailnum string"),
        ignore_row_order=True, ignore_nullable=True)
    quarantine = spark.read.format("delta").load(str(warehouse / "quarantine" / "flights"))
    rows = {r.source_file.rsplit("/", 1)[-1]: r for r in quarantine.collect()}
    assert sorted(rows) == ["latin1.csv", "truncated.csv"]
    assert rows["latin1.csv"].reasons == ["tailnum: bytes not valid in the file's encoding"]
    assert '"tailnum":"N\ufffd"' in rows["latin1.csv"].record
    assert rows["truncated.csv"].reasons == [
        "malformed record: wrong number of fields", "time_hour: required value missing",
        "origin: required value missing"]
    assert '"flight":"9005","tailnum":"N1"}' in rows["truncated.csv"].record
    ledger = spark.read.format("delta").load(str(warehouse / "_etl" / "state" / "files"))
    assert sorted(r.path.rsplit("/", 1)[-1] for r in ledger.where("source = 'flights'").collect()) == [
        "bom.csv", "empty.csv", "flights_2013_01.csv", "header_only.csv", "latin1.csv",
        "truncated.csv"]
