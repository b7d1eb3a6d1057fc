"""`etl new` scaffolds a job from a landed folder that `etl run` runs with no edit and no Python;
changing a key or a partition column in the YAML only changes the table accordingly; what
`etl new` refuses, it refuses with one message and exit 2."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from delta.tables import DeltaTable

from etl.cli import main
from etl.config import load_job_config
from etl.runner import run_job

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
HEADER = ["station_id", "name", "region", "elevation", "opened", "ratio"]
ROWS = [
    ["1", "Alpha", "north", "120", "2020-01-03", "0.5"],
    ["2", "Bravo", "south", "NA", "2021-06-30", "1.25"],
    ["3", "Charlie", "north", "7", "", "2"],
    ["4", "Alpha", "east", "300", "2019-11-11", "0.75"],
]


def project(tmp_path: Path) -> tuple[Path, Path]:
    """A project of its own: conf/ (base and local overlays, no job) and a landing folder."""
    conf = tmp_path / "project" / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copyfile(ROOT / "conf" / name, conf / name)
    return conf, tmp_path / "landing"


def land(landing: Path, name: str, rows: list[list[str]], hours: int = 0) -> Path:
    folder = landing / "stations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    stamp = (dt.datetime(2026, 1, 1) + dt.timedelta(hours=hours)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def cli(conf: Path, landing: Path, *args: str) -> int:
    os.environ["ETL_LANDING"] = str(landing)
    try:
        return main(["--conf-dir", str(conf), *args])
    finally:
        del os.environ["ETL_LANDING"]


def config(conf: Path, warehouse: Path, landing: Path, *overrides: str):
    return load_job_config("stations", directory=conf, overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}", "lineage.enabled=false",
        *overrides])


def test_a_scaffolded_job_runs_with_no_edit_and_no_python(spark, tmp_path, capsys):
    conf, landing = project(tmp_path)
    land(landing, "stations_1.csv", ROWS)

    assert cli(conf, landing, "new", "stations", "--from", "stations", "--keys", "station_id") == 0

    assert capsys.readouterr().out.splitlines() == [
        f"wrote {conf / 'jobs' / 'stations.yml'}", "next: etl run stations"]
    document = yaml.safe_load((conf / "jobs" / "stations.yml").read_text())
    assert document["sources"]["stations"] == {
        "path": "stations", "format": "csv", "pattern": "*.csv", "kind": "append",
        "columns": HEADER, "bronze": "bronze_stations", "options": {"header": "true"},
        # the types every value of the file's first rows parses as ("NA" and "" are missing)
        "types": {"station_id": "int", "name": "string", "region": "string",
                  "elevation": "int", "opened": "date", "ratio": "double"},
        "na_values": ["", "NA"], "required": ["station_id"],
    }
    assert document["targets"]["stations"] == {
        "layer": "silver", "table": "stations", "inputs": ["stations"], "mode": "merge",
        "keys": ["station_id"], "sequence_by": ["_source_modified", "_source_file"],
        "duplicates": "latest"}
    assert [r["type"] for r in document["quality"]["stations"]] == ["unique", "complete"]
    assert not (conf.parent / "jobs").exists()  # no Python unless asked for

    warehouse = tmp_path / "warehouse"
    ctx = run_job(config(conf, warehouse, landing), spark=spark)

    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        len(ROWS), len(ROWS), 0, 0)
    silver = spark.read.format("delta").load(str(warehouse / "silver" / "stations"))
    expected = spark.createDataFrame(
        [(1, "Alpha", "north", 120, dt.date(2020, 1, 3), 0.5),
         (2, "Bravo", "south", None, dt.date(2021, 6, 30), 1.25),
         (3, "Charlie", "north", 7, None, 2.0),
         (4, "Alpha", "east", 300, dt.date(2019, 11, 11), 0.75)],
        "station_id int, name string, region string, elevation int, opened date, ratio double")
    assert_df_equality(silver.select(*HEADER), expected, ignore_row_order=True,
                       ignore_nullable=True)
    assert [q["rule"] for q in ctx.quality] == [
        "stations_key_unique", "stations_key_complete"]

    # a later file with a newer version of station 2 and a row that does not type
    land(landing, "stations_2.csv", [["2", "Bravo", "west", "40", "2021-06-30", "1"],
                                     ["x", "Delta", "west", "1", "2022-01-01", "1"]], hours=1)
    again = run_job(config(conf, warehouse, landing), spark=spark)

    assert (again.rows_read, again.rows_loaded, again.rows_quarantined) == (2, 1, 1)
    silver = spark.read.format("delta").load(str(warehouse / "silver" / "stations"))
    assert silver.where("station_id = 2").select("region", "elevation").first() == ("west", 40)
    quarantined = spark.read.format("delta").load(str(warehouse / "quarantine" / "stations"))
    assert [r["reasons"] for r in quarantined.collect()] == [
        ["station_id: cannot parse 'x' as int", "station_id: required value missing"]]


def test_keys_and_partitions_changed_in_yaml_only_change_the_table(spark, tmp_path):
    conf, landing = project(tmp_path)
    land(landing, "stations_1.csv", ROWS)
    assert cli(conf, landing, "new", "stations", "--from", "stations", "--keys",
               "station_id") == 0

    by_name = tmp_path / "by_name"
    ctx = run_job(config(conf, by_name, landing, "targets.stations.keys=[name]",
                         "targets.stations.partition_by=[region]"), spark=spark)

    names = {r[1] for r in ROWS}
    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_filtered) == (
        len(ROWS), len(names), len(ROWS) - len(names))
    path = str(by_name / "silver" / "stations")
    silver = spark.read.format("delta").load(path)
    assert sorted(r["name"] for r in silver.collect()) == sorted(names)
    detail = DeltaTable.forPath(spark, path).detail().first()
    assert list(detail["partitionColumns"]) == ["region"]


@pytest.mark.parametrize("args, message", [
    (("--keys", "code"), "key 'code' is not a column of {file} (columns: station_id, name, "
                         "region, elevation, opened, ratio)"),
    (("--keys", "station_id", "--from", "empty"), "no *.csv file in landing folder {empty}"),
    (("--keys", "station_id", "--from", "../etc"),
     "--from is a folder under the landing root, got '../etc'"),
])
def test_etl_new_refuses_with_one_message(tmp_path, capsys, args, message):
    conf, landing = project(tmp_path)
    file = land(landing, "stations_1.csv", ROWS)
    (landing / "empty").mkdir()
    options = {"--from": "stations", **dict(zip(args[::2], args[1::2], strict=True))}

    code = cli(conf, landing, "new", "stations", *[x for kv in options.items() for x in kv])

    assert code == 2
    assert capsys.readouterr().err == "etl: error: " + message.format(
        file=file, empty=landing / "empty") + "\n"
    assert not (conf / "jobs" / "stations.yml").exists()


def test_etl_new_refuses_an_existing_job_and_writes_a_page_when_asked(tmp_path, capsys):
    conf, landing = project(tmp_path)
    land(landing, "stations_1.csv", ROWS)
    args = ["new", "stations", "--from", "stations", "--keys", "station_id", "--transforms"]

    assert cli(conf, landing, *args) == 0
    page = conf.parent / "jobs" / "stations.py"
    assert "def silver(stations: DataFrame) -> DataFrame:" in page.read_text()
    written = yaml.safe_load((conf / "jobs" / "stations.yml").read_text())
    assert (written["job"]["transforms"], written["targets"]["stations"]["transform"]) == (
        "jobs.stations", "silver")
    capsys.readouterr()

    assert cli(conf, landing, *args) == 2
    assert capsys.readouterr().err == (
        f"etl: error: {conf / 'jobs' / 'stations.yml'}: job 'stations' exists already\n")
