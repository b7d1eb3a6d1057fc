"""The flights job's quality rules end to end on the landed slice: warn rules report the real
defects with exact counts, a quarantine rule moves its rows out of the batch, and an error rule
stops the run with exit code 3 leaving every target unchanged."""

from __future__ import annotations

import csv
import json

import pytest
from pyspark.sql import functions as F

from etl.cli import main
from tests.e2e.test_flights_job import HEADER, ROOT, Flights, landed_rows

pytestmark = pytest.mark.e2e
DISTANCE, ORIGIN, DEST, TAILNUM = (HEADER.index(c) for c in ("distance", "origin", "dest", "tailnum"))


def reference_column(landing, name: str, column: str) -> set[str]:
    with (landing / name / f"{name}.csv").open() as f:
        return {row[column] for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    flights = Flights(spark, tmp_path_factory.mktemp("quality"))
    sample = landed_rows(flights.landing)[0]
    zero = [*sample[:DISTANCE], "0", *sample[DISTANCE + 1:]]
    zero[HEADER.index("flight")] = "9999"  # a key of its own
    flights.land_file("flights_2013_zero.csv", [zero])
    return flights, flights.run()


def test_warn_rules_report_the_real_defects_exactly(first_run):
    flights, ctx = first_run
    rows = landed_rows(flights.landing)
    airports = reference_column(flights.landing, "airports", "faa")
    planes = reference_column(flights.landing, "planes", "tailnum")
    results = {q["rule"]: q for q in ctx.quality}
    expected = {
        "dest_in_airports": sum(r[DEST] not in airports for r in rows),
        "tailnum_in_planes": sum(r[TAILNUM] not in ("NA", "") and r[TAILNUM] not in planes for r in rows),
        "departed": sum(r[HEADER.index("dep_time")] == "NA" for r in rows),
    }
    assert {name: results[name]["rows_failed"] for name in expected} == expected
    assert all(results[name]["passed"] is False for name in expected)
    assert expected["dest_in_airports"] > 0 and expected["tailnum_in_planes"] > 0
    assert (results["flight_key_unique"]["passed"], results["origin_is_nyc"]["passed"]) == (
        True, True)
    assert results["row_count_stable"]["message"] == "not enough history: 0 of 1 runs"


def test_quarantine_rule_moves_rows_and_counts_reconcile(first_run):
    flights, ctx = first_run
    read = len(landed_rows(flights.landing))
    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        read, read - 1, 1, 0)
    quarantine = flights.spark.read.format("delta").load(
        str(flights.warehouse / "quarantine" / "flights"))
    (row,) = quarantine.collect()
    assert (row.run_id, row.rules, row.reasons) == (
        ctx.run_id, ["distance_positive"],
        ["distance_positive: a flight covers a positive distance; other rows are quarantined"])
    assert json.loads(row.record)["distance"] == 0 and json.loads(row.record)["flight"] == 9999
    silver = flights.table("silver", "flights")
    assert silver.count() == read - 1
    assert silver.where(F.col("flight") == 9999).count() == 0


def test_error_rule_stops_the_run_with_exit_code_3_and_publishes_nothing(first_run, capsys):
    flights, _ = first_run
    sample = landed_rows(flights.landing)[1]
    bad = [*sample[:ORIGIN], "BOS", *sample[ORIGIN + 1:]]
    flights.land_file("flights_2013_bad_origin.csv", [bad])
    tables = [("silver", "flights"), ("gold", "carrier_daily_performance")]
    before = {t: flights.version(*t) for t in tables}
    ledger = str(flights.warehouse / "_etl" / "state" / "files")
    ledger_rows = flights.spark.read.format("delta").load(ledger).count()

    code = main(["--conf-dir", str(ROOT / "conf"), "run", "flights",
                 "--set", f"paths.warehouse={flights.warehouse}",
                 "--set", f"paths.landing={flights.landing}"])

    assert code == 3
    err = capsys.readouterr().err
    assert ("etl: QualityGateError: quality gate failed for silver/flights: origin_is_nyc [error] "
            "ComplianceConstraint(Compliance(origin contained in EWR,JFK,LGA,`origin` IS NULL OR "
            "`origin` IN ('EWR','JFK','LGA'),None,List(origin),None)) (observed 0)") in err
    assert {t: flights.version(*t) for t in tables} == before
    assert flights.spark.read.format("delta").load(ledger).count() == ledger_rows
    runs = flights.spark.read.format("delta").load(str(flights.warehouse / "_etl" / "runs")).where(
        "record_type = 'run'")
    assert [r.status for r in runs.orderBy("started_at").collect()] == [
        "succeeded", "quality_failed"]
    metrics = flights.spark.read.format("delta").load(
        str(flights.warehouse / "_etl" / "quality_metrics"))
    failed = metrics.where("rule = 'origin_is_nyc' AND NOT passed").collect()
    assert [(r.value, r.gate_passed) for r in failed] == [(0.0, False)]
