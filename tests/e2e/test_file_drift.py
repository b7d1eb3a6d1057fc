"""Landed files that drift or break, on the flights job: columns are read by name; extra columns
are rescued, evolved, ignored or make the file be set aside (`schema_drift.extra`); a missing
column is null, unless the source requires it; a file that cannot be used is set aside, not the
batch, recorded as a dead letter and in the ledger (not read again), and readmitted by hand.
The same for JSON lines and Parquet files."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from etl.cli import main
from etl.config import load_job_config
from etl.errors import SourceError
from etl.runner import run_job

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

COLUMNS = ["year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
           "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
           "air_time", "distance", "hour", "minute", "time_hour"]
LATER = dt.datetime(2030, 1, 1)  # landed after the first load's files


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory):
    """The first load of 1 January 2013, and the first rows of 2 January to land later."""
    root = tmp_path_factory.mktemp("drift")
    land_flights.land(root / "landing", [1], [1])
    run_job(flights_config(root), spark=spark)
    scratch = root / "scratch"
    land_flights.land(scratch, [1], [2])
    with (scratch / "flights" / "flights_2013_01.csv").open() as f:
        rows = list(csv.DictReader(f))[:5]
    return root, rows


def flights_config(root: Path, *overrides: str):
    return load_job_config("flights", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={root / 'warehouse'}", f"paths.landing={root / 'landing'}",
        "lineage.enabled=false", *overrides])


@pytest.fixture()
def copy(loaded, tmp_path):
    """The first load's warehouse, copied for one test, and an empty landing area (the
    ledger knows the first load's files by their place, which a copy would not share)."""
    root, rows = loaded
    shutil.copytree(root / "warehouse", tmp_path / "warehouse")
    for folder in (root / "landing").iterdir():
        (tmp_path / "landing" / folder.name).mkdir(parents=True)
    return tmp_path, rows


def land(root: Path, name: str, columns: list[str], rows: list[dict], minutes: int = 0) -> Path:
    path = root / "landing" / "flights" / name
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[row.get(c, "") for c in columns] for row in rows])
    stamp = (LATER + dt.timedelta(minutes=minutes)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def bronze_rows(spark, root: Path, file: Path, *columns: str) -> list[tuple]:
    bronze = spark.read.format("delta").load(str(root / "warehouse" / "bronze" / "flights"))
    return sorted(tuple(r) for r in bronze.where(F.col("_source_file").endswith(file.name))
                  .select(*columns).collect())


def expected(rows: list[dict], *columns: str) -> list[tuple]:
    return sorted(tuple(r[c] if r[c] != "" else None for c in columns) for r in rows)


def test_reordered_columns_load_under_their_own_names(spark, copy):
    root, rows = copy
    file = land(root, "reordered.csv", list(reversed(COLUMNS)), rows)

    ctx = run_job(flights_config(root), spark=spark)

    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined) == (len(rows), len(rows), 0)
    assert bronze_rows(spark, root, file, *COLUMNS) == expected(rows, *COLUMNS)
    assert "source flights: file reordered.csv: columns in another order, read by name" in ctx.notes


def test_an_extra_column_is_rescued_by_default(spark, copy):
    root, rows = copy
    reasons = [{**r, "delay_reason": f"reason {i}"} for i, r in enumerate(rows)]
    file = land(root, "extra.csv", [*COLUMNS, "delay_reason"], reasons)

    ctx = run_job(flights_config(root), spark=spark)

    assert ctx.rows_loaded == len(rows)
    assert bronze_rows(spark, root, file, "flight", "_rescued_data") == sorted(
        (r["flight"], json.dumps({"delay_reason": f"reason {i}"}, separators=(",", ":")))
        for i, r in enumerate(rows))
    bronze = spark.read.format("delta").load(str(root / "warehouse" / "bronze" / "flights"))
    assert bronze.where(F.col("_rescued_data").isNull()).count() == 842  # the first load's
    assert ("source flights: file extra.csv: columns ['delay_reason'] not configured: kept in "
            "_rescued_data") in ctx.notes


@pytest.mark.parametrize("policy", ["evolve", "ignore"])
def test_an_extra_column_evolves_bronze_or_is_ignored(spark, copy, policy):
    root, rows = copy
    file = land(root, "extra.csv", [*COLUMNS, "delay_reason"],
                [{**r, "delay_reason": "fog"} for r in rows])

    ctx = run_job(flights_config(root, f"schema_drift.extra={policy}"), spark=spark)

    assert ctx.rows_loaded == len(rows)
    bronze = spark.read.format("delta").load(str(root / "warehouse" / "bronze" / "flights"))
    if policy == "evolve":
        assert bronze_rows(spark, root, file, "delay_reason") == [("fog",)] * len(rows)
    else:
        assert "delay_reason" not in bronze.columns and "_rescued_data" not in bronze.columns
    verb = {"evolve": "added to bronze", "ignore": "ignored"}[policy]
    assert f"source flights: file extra.csv: columns ['delay_reason'] not configured: {verb}" \
        in ctx.notes


def test_a_missing_nullable_column_is_null_for_that_file(spark, copy):
    root, rows = copy
    file = land(root, "no_air_time.csv", [c for c in COLUMNS if c != "air_time"], rows)

    ctx = run_job(flights_config(root), spark=spark)

    assert ctx.rows_loaded == len(rows)
    assert bronze_rows(spark, root, file, "air_time") == [(None,)] * len(rows)
    silver = spark.read.format("delta").load(str(root / "warehouse" / "silver" / "flights"))
    assert silver.where("day = 2").select("air_time").distinct().collect() == [(None,)]
    assert ("source flights: file no_air_time.csv: columns ['air_time'] missing: null for its "
            "rows") in ctx.notes


def ledger(spark, root: Path) -> dict[str, str]:
    """file name -> the status of its latest ledger row (the latest version, then the latest
    entry)."""
    files = spark.read.format("delta").load(str(root / "warehouse" / "_etl" / "state" / "files"))
    rows = sorted(files.where(F.col("source") == "flights").collect(),
                  key=lambda r: (r["modified_ms"], r["ingested_at"]))
    return {r["path"].rsplit("/", 1)[-1]: r["status"] for r in rows}


def test_files_that_cannot_be_used_are_set_aside_and_the_others_published(spark, copy, capsys):
    root, rows = copy
    good = land(root, "good.csv", COLUMNS, rows[:2])
    land(root, "no_carrier.csv", [c for c in COLUMNS if c != "carrier"], rows[2:3], 1)
    packed = root / "landing" / "flights" / "packed.csv"  # gzip under a name that hides it
    packed.write_bytes(gzip.compress(good.read_bytes()))
    (root / "landing" / "flights" / "binary.csv").write_bytes(b"\x00\x01\x02" * 100)

    ctx = run_job(flights_config(root), spark=spark)

    assert (ctx.rows_read, ctx.rows_loaded) == (2, 2)
    assert sorted(ctx.files_set_aside) == [
        "flights: binary.csv: binary content (NUL bytes) in a text file",
        "flights: no_carrier.csv: required columns ['carrier'] are missing (the file has: "
        + ", ".join(c for c in COLUMNS if c != "carrier") + ")",
        "flights: packed.csv: gzip-compressed content in a file whose name does not say so",
    ]
    status = ledger(spark, root)
    assert {n: status[n] for n in ("good.csv", "no_carrier.csv", "packed.csv", "binary.csv")} == {
        "good.csv": "ingested", "no_carrier.csv": "set_aside", "packed.csv": "set_aside",
        "binary.csv": "set_aside"}
    runs = spark.read.format("delta").load(str(root / "warehouse" / "_etl" / "runs"))
    recorded = runs.where((F.col("run_id") == ctx.run_id) & (F.col("record_type") == "run"))
    assert sorted(recorded.first()["files_set_aside"]) == sorted(ctx.files_set_aside)

    again = run_job(flights_config(root), spark=spark)  # nothing new: none is read again
    assert (again.rows_read, again.files_set_aside) == (0, [])

    os.environ["ETL_WAREHOUSE"] = str(root / "warehouse")
    try:
        assert main(["--conf-dir", str(ROOT / "conf"), "dead-letters", "flights"]) == 0
        listed = capsys.readouterr().out
        assert "no_carrier.csv" in listed and "SetAside" in listed
        # fixed in place (same name), then readmitted: loaded once
        land(root, "no_carrier.csv", COLUMNS, rows[2:3], 1)
        assert main(["--conf-dir", str(ROOT / "conf"), "state", "readmit", "flights", "flights",
                     "no_carrier.csv"]) == 0
    finally:
        del os.environ["ETL_WAREHOUSE"]
    # the fixed file changed (size) anyway; the ledger sees a new version to try
    readmitted = run_job(flights_config(root), spark=spark)
    assert (readmitted.rows_read, readmitted.rows_loaded, readmitted.files_set_aside) == (
        1, 1, [])
    assert ledger(spark, root)["no_carrier.csv"] == "ingested"


def test_readmitting_an_unchanged_file_tries_it_again(spark, copy, capsys):
    root, rows = copy
    land(root, "no_carrier.csv", [c for c in COLUMNS if c != "carrier"], rows[:1])
    first = run_job(flights_config(root), spark=spark)
    assert len(first.files_set_aside) == 1
    os.environ["ETL_WAREHOUSE"] = str(root / "warehouse")
    try:
        assert main(["--conf-dir", str(ROOT / "conf"), "state", "readmit", "flights", "flights",
                     "no_carrier.csv"]) == 0
        assert main(["--conf-dir", str(ROOT / "conf"), "state", "readmit", "flights", "flights",
                     "nothing.csv"]) == 1
    finally:
        del os.environ["ETL_WAREHOUSE"]
    assert "0 set-aside files match 'nothing.csv'" in capsys.readouterr().err

    again = run_job(flights_config(root), spark=spark)  # read again, and set aside again

    assert [f.split(":")[1].strip() for f in again.files_set_aside] == ["no_carrier.csv"]


def test_on_bad_file_fail_fails_the_run_and_publishes_nothing(spark, copy):
    root, rows = copy
    land(root, "good.csv", COLUMNS, rows[:2])
    (root / "landing" / "flights" / "binary.csv").write_bytes(b"\x00" * 64)
    silver = root / "warehouse" / "silver" / "flights"
    before = spark.read.format("delta").load(str(silver)).count()

    with pytest.raises(SourceError, match=r"source flights: files that cannot be used: .*"
                       r"binary.csv: binary content \(NUL bytes\) in a text file "
                       r"\(schema_drift.on_bad_file: fail\)"):
        run_job(flights_config(root, "sources.flights.schema_drift.on_bad_file=fail"),
                spark=spark)

    assert spark.read.format("delta").load(str(silver)).count() == before
    assert "binary.csv" not in ledger(spark, root)


# --------------------------------------------------------------------------------------------
# JSON lines and Parquet
# --------------------------------------------------------------------------------------------

EVENTS = """
job: {name: events}
sources:
  events:
    path: events
    format: %(format)s
    pattern: "*.%(format)s"
    columns: [id, kind, amount]
    bronze: bronze_events
    types: {id: bigint, amount: double}
    required: [id]
targets:
  bronze_events: {layer: bronze, table: events}
  events: {layer: silver, table: events, inputs: [events], mode: merge, keys: [id],
           sequence_by: [_source_modified, _source_file], duplicates: latest}
"""


def events_project(root: Path, fmt: str) -> Path:
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copyfile(ROOT / "conf" / name, conf / name)
    (conf / "jobs" / "events.yml").write_text(EVENTS % {"format": fmt})
    (root / "landing" / "events").mkdir(parents=True)
    return conf


def run_events(spark, root: Path, conf: Path):
    return run_job(load_job_config("events", directory=conf, overrides=[
        f"paths.warehouse={root / 'warehouse'}", f"paths.landing={root / 'landing'}",
        "lineage.enabled=false"]), spark=spark)


def test_json_lines_unknown_fields_are_rescued_and_bad_lines_quarantined(spark, tmp_path):
    conf = events_project(tmp_path, "jsonl")
    (tmp_path / "landing" / "events" / "a.jsonl").write_text(
        '{"id": 1, "kind": "click", "amount": 2.5, "browser": "lynx"}\n'
        '{"kind": "view", "id": 2}\n'
        "not json\n")

    ctx = run_events(spark, tmp_path, conf)

    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined) == (3, 2, 1)
    bronze = spark.read.format("delta").load(str(tmp_path / "warehouse" / "bronze" / "events"))
    assert sorted((r["id"], r["kind"], r["amount"], r["_rescued_data"])
                  for r in bronze.where(F.col("id").isNotNull()).collect()) == [
        ("1", "click", "2.5", '{"browser":"lynx"}'), ("2", "view", None, None)]
    silver = spark.read.format("delta").load(str(tmp_path / "warehouse" / "silver" / "events"))
    assert "_rescued_data" not in silver.columns  # rescued fields stay in bronze


def test_parquet_files_are_read_by_name_and_a_broken_one_is_set_aside(spark, tmp_path):
    conf = events_project(tmp_path, "parquet")
    folder = tmp_path / "landing" / "events"
    spark.createDataFrame([(2.0, "click", 1)], "amount double, kind string, id bigint") \
        .coalesce(1).write.parquet(str(tmp_path / "p1"))
    spark.createDataFrame([(2, "view", "mobile")], "id bigint, kind string, device string") \
        .coalesce(1).write.parquet(str(tmp_path / "p2"))
    for i, part in enumerate(("p1", "p2"), start=1):
        (data,) = (tmp_path / part).glob("part-*.parquet")
        shutil.copyfile(data, folder / f"e{i}.parquet")
    (folder / "broken.parquet").write_bytes(b"PAR1 not really")

    ctx = run_events(spark, tmp_path, conf)

    assert (ctx.rows_read, ctx.rows_loaded) == (2, 2)
    assert [f.split(":")[1].strip() for f in ctx.files_set_aside] == ["broken.parquet"]
    bronze = spark.read.format("delta").load(str(tmp_path / "warehouse" / "bronze" / "events"))
    assert sorted((r["id"], r["kind"], r["amount"], r["_rescued_data"])
                  for r in bronze.collect()) == [
        (1, "click", 2.0, None), (2, "view", None, '{"device":"mobile"}')]
    assert "source events: file e2.parquet: columns ['amount'] missing: null for its rows" \
        in ctx.notes
