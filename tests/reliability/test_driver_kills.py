"""Scenarios 1 and 2: the driver of a real ``etl run flights`` process is killed with SIGKILL
(1) after silver's data files are written and before its Delta commit, (2) after silver and gold
committed and before the file ledger and the run record. Each rerun must leave exactly one copy of
every landed flight, and the ledger must advance only with a run that finished."""

from __future__ import annotations

import csv
import sys

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.config import load_job_config
from etl.runner import run_job
from tests.reliability.harness import KILLED, ROOT, finish, kill_before_commit, start_run

sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

pytestmark = pytest.mark.e2e
KEY = ["carrier", "flight", "time_hour"]


def landed_keys(landing):
    keys = []
    for path in sorted((landing / "flights").glob("*.csv")):
        with path.open() as f:
            reader = csv.DictReader(f)
            keys.extend((r["carrier"], int(r["flight"]), r["time_hour"]) for r in reader)
    return keys


def ledger_files(spark, warehouse):
    ledger = spark.read.format("delta").load(str(warehouse / "_etl" / "state" / "files"))
    return sorted(r.path.rsplit("/", 1)[-1] for r in ledger.where("source = 'flights'").collect())


def run_records(spark, warehouse):
    runs = spark.read.format("delta").load(str(warehouse / "_etl" / "runs"))
    return [(r.run_id, r.status) for r in runs.where("record_type = 'run'").collect()]


def test_killed_drivers_lose_and_duplicate_nothing(spark, tmp_path):
    warehouse, landing = tmp_path / "warehouse", tmp_path / "landing"
    silver = warehouse / "silver" / "flights"
    land_flights.land(landing, [1], [1])
    config = load_job_config("flights", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}"])
    first = run_job(config, spark=spark)
    version = spark.sql(f"DESCRIBE HISTORY delta.`{silver}`").agg(F.max("version")).first()[0]
    land_flights.land(landing, [1, 2], [1])

    # 1: killed between silver's data files and its commit
    kill = kill_before_commit(start_run(warehouse, landing), silver)
    assert kill is not None and kill.in_window, kill
    assert kill.version_after == version
    assert spark.read.format("delta").load(str(silver)).count() == 842  # Jan 1 only
    assert ledger_files(spark, warehouse) == ["flights_2013_01.csv"]

    # 2: killed after silver and gold committed, before the ledger and the run record
    code, output = finish(start_run(warehouse, landing, fault="after_publish"))
    assert code == KILLED, output
    assert ledger_files(spark, warehouse) == ["flights_2013_01.csv"]
    assert [status for _, status in run_records(spark, warehouse)] == ["succeeded"]

    # the next run catches up: its MERGE changes nothing, the ledger and run record advance
    last = run_job(config, spark=spark)
    merge = next(w for w in last.writes if w.table == "silver/flights")
    assert (merge.rows_inserted, merge.rows_updated, merge.rows_deleted) == (0, 0, 0)
    assert ledger_files(spark, warehouse) == ["flights_2013_01.csv", "flights_2013_02.csv"]
    assert sorted(run_records(spark, warehouse)) == sorted(
        [(first.run_id, "succeeded"), (last.run_id, "succeeded")])

    expected = spark.createDataFrame(landed_keys(landing), "carrier string, flight int, "
                                     "time_hour string").select(
        "carrier", "flight", F.to_timestamp("time_hour").alias("time_hour"))
    table = spark.read.format("delta").load(str(silver))
    assert table.count() == 842 + 926
    assert_df_equality(table.select(*KEY), expected, ignore_row_order=True, ignore_nullable=True)
    gold = spark.read.format("delta").load(str(warehouse / "gold" / "carrier_daily_performance"))
    assert gold.agg(F.sum("flights")).first()[0] == 842 + 926
