"""What the flow needs of a job's YAML is checked before Spark starts: each mistake is one
message naming the file and the dotted key, and `etl run` exits 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from etl.cli import main
from etl.config import load_job_config
from etl.errors import ConfigError
from etl.flow.plan import ddl_columns, make_plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def conf(tmp_path: Path) -> Path:
    root = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def run_exit(conf: Path, capsys, job: str = "flights") -> tuple[int, str]:
    code = main(["--conf-dir", str(conf), "run", job])
    return code, capsys.readouterr().err


SILVER = "  silver_flights:\n    layer: silver\n    table: flights\n"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    transform: enrich\n", "    transform: enrich_all\n",
     "targets.silver_flights.transform: jobs.flights has no function 'enrich_all' (functions: "
     "carrier_daily_performance, enrich, flight_times)"),
    ("    references: [airlines, airports, planes, weather]\n",
     "    references: [airlines, airports, planes]\n",
     "targets.silver_flights.transform: jobs.flights.enrich cannot be called with flights, "
     "airlines, airports, planes: missing a required argument: 'weather'"),
    ("    derive: flight_times\n", "    derive: times\n",
     "sources.flights.derive: jobs.flights has no function 'times' (functions: "
     "carrier_daily_performance, enrich, flight_times)"),
    ("  transforms: jobs.flights\n", "  transforms: jobs.nowhere\n",
     "job.transforms: cannot import 'jobs.nowhere'"),
])
def test_the_functions_the_yaml_names_are_checked(conf, capsys, old, new, message):
    edit(conf / "jobs" / "flights.yml", old, new)

    code, err = run_exit(conf, capsys)

    assert code == 2
    assert err.startswith(f"etl: error: {conf / 'jobs' / 'flights.yml'}: {message}")


@pytest.mark.parametrize(("old", "new", "key", "message"), [
    ("    kind: append\n", "    kind: append\n    type: ftp\n", "sources.flights.type",
     "expected one of 'files', 'jdbc', 'rest', 'kafka', 'delta_cdf', 'pg_logical', got 'ftp' "
     "(str)"),
    ("    inputs: [flights]\n", "    inputs: [flight]\n", "targets.silver_flights.inputs",
     "'flight' is neither a source nor a target (sources: ['airlines', 'airports', 'flights', "
     "'planes', 'weather']; targets: ['bronze_airlines', 'bronze_airports', 'bronze_flights', "
     "'bronze_planes', 'bronze_weather', 'gold_performance', 'silver_flights'])"),
    ("    inputs: [flights]\n", "    inputs: [gold_performance]\n", "targets",
     "the targets' inputs form a cycle: silver_flights -> gold_performance -> silver_flights"),
    ("    mode: merge\n", "", "targets.silver_flights.mode",
     "required: how the flow writes the target (append, overwrite, overwrite_partitions, merge, "
     "insert_only or scd2)"),
    ("    mode: merge\n", "    mode: merge\n    format: parquet\n", "targets.silver_flights.mode",
     "format parquet supports append, overwrite, overwrite_partitions"),
    ("  bronze_airlines: {layer: bronze, table: airlines}",
     "  bronze_airlines: {layer: bronze, table: airlines, mode: append}",
     "targets.bronze_airlines.mode",
     "the bronze table of snapshot source 'airlines' is written in mode overwrite, got 'append' "
     "(remove the key or set overwrite)"),
    ("    references: [airlines, airports, planes, weather]\n",
     "    references: [airlines, airports, planes, weather, flights]\n",
     "targets.silver_flights.references", "'flights' is the target's input"),
    ("    bronze: bronze_flights\n", "    bronze: silver_flights\n", "sources.flights.bronze",
     "expected a bronze target, got 'silver_flights' (bronze targets: ['bronze_airlines', "
     "'bronze_airports', 'bronze_flights', 'bronze_planes', 'bronze_weather'])"),
])
def test_a_declaration_the_flow_cannot_run_fails_at_load(conf, capsys, old, new, key, message):
    edit(conf / "jobs" / "flights.yml", old, new)

    with pytest.raises(ConfigError) as caught:
        load_job_config("flights", directory=conf, environ={})
    code, err = run_exit(conf, capsys)

    expected = f"{conf / 'jobs' / 'flights.yml'}: {key}: {message}"
    assert str(caught.value) == expected
    assert (code, err) == (2, f"etl: error: {expected}\n")


YAML_ONLY = """\
job: {name: events}
sources:
  events:
    path: events
    columns: [id, kind, at]
    bronze: bronze_events
    types: {id: bigint, at: timestamp}
targets:
  bronze_events: {layer: bronze, table: events}
  events:
    layer: silver
    table: events
    inputs: [events]
    mode: merge
    keys: [event_id]
    sequence_by: [at]
    duplicates: latest
"""


def test_a_key_the_rows_of_a_yaml_only_job_lack_fails_before_spark(conf, capsys):
    (conf / "jobs" / "events.yml").write_text(YAML_ONLY)
    config = load_job_config("events", directory=conf, environ={})

    with pytest.raises(ConfigError) as caught:
        make_plan(config)
    code, err = run_exit(conf, capsys, "events")

    expected = (f"{conf / 'jobs' / 'events.yml'}: targets.events.keys: column 'event_id' is "
                "not a column of the rows of source 'events' (columns: id, kind, at, "
                "_source_file, _source_modified, _run_id, _ingested_at)")
    assert str(caught.value) == expected
    assert (code, err) == (2, f"etl: error: {expected}\n")


def test_the_column_names_of_a_ddl_are_read_without_spark():
    assert ddl_columns("id bigint, tags array<string>, m map<string,int>, d decimal(10,2), "
                       "`a b` int") == ["id", "tags", "m", "d", "a b"]
    assert ddl_columns("id bigint,, x int") == []


def test_the_plan_of_the_flights_job():
    plan = make_plan(load_job_config("flights", directory=ROOT / "conf", environ={}))

    assert plan.sources == ("airlines", "airports", "planes", "weather", "flights")
    assert plan.batch_sources == ("flights",)
    assert plan.references == ("airlines", "airports", "planes", "weather")
    assert [b.name for b in plan.from_targets] == ["gold_performance"]
    assert [b.name for b in plan.downstream("silver_flights")] == ["gold_performance"]
    assert plan.quarantine_table("flights") == "flights"
    assert plan.quarantine_table("planes") == "planes"
    assert plan.derive["flights"].__name__ == "flight_times"
