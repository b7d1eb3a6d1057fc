"""Names that become paths, files, DAG ids or SQL identifiers are checked when read: a bad
environment, pipeline, table or column name exits 2 with a message naming the key."""

from __future__ import annotations

import pytest

from etl.cli import main
from etl.config import load_job_config
from etl.errors import ConfigError
from tests.orchestration_conf import ROOT, make_conf

NAME_RULE = "(letters, digits, '_' and '-', starting with a letter)"


@pytest.mark.parametrize("env", ["../../tmp/x", "prod/../local", "local`", ".hidden", ""])
def test_environment_names(env, capsys):
    assert main(["--conf-dir", str(ROOT / "conf"), "run", "flights", "--env", env]) == 2
    assert capsys.readouterr().err == (
        f"etl: error: --env: {env!r} is not an environment name {NAME_RULE}\n")


def test_environment_names_of_submit_and_export(capsys, tmp_path):
    assert main(["--conf-dir", str(ROOT / "conf"), "submit", "flights", "--target", "emr", "--env", "../prod",
                 "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        f"etl: error: --env: '../prod' is not an environment name {NAME_RULE}\n")
    conf = make_conf(tmp_path, tmp_path / "w", {"a": {}},
                     {"daily": {"pipeline": {"name": "daily"}, "jobs": {"a": {}}}})
    assert main(["--conf-dir", str(conf), "pipeline", "export", "daily", "--target", "airflow",
                 "--env", "x/../local", "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        f"etl: error: --env: 'x/../local' is not an environment name {NAME_RULE}\n")


@pytest.mark.parametrize("name", ["../daily", "daily.py", "a b", "`daily`"])
def test_pipeline_names(name, capsys):
    assert main(["--conf-dir", str(ROOT / "conf"), "pipeline", "export", name,
                 "--target", "airflow", "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        f"etl: error: pipeline: {name!r} is not a pipeline name {NAME_RULE}\n")


@pytest.mark.parametrize(("override", "key", "message"), [
    ("targets.silver_flights.table=../../etc", "targets.silver_flights.table",
     "'../../etc' is not a table name (letters, digits and '_')"),
    ("targets.silver_flights.table=flights`; DROP", "targets.silver_flights.table",
     "'flights`; DROP' is not a table name (letters, digits and '_')"),
    ("targets.silver_flights.catalog_name=db.t` x", "targets.silver_flights.catalog_name",
     "'db.t` x' is not a table name (NAME or SCHEMA.NAME of letters, digits and '_')"),
    ("targets.silver_flights.keys=[carrier, 'a` OR 1=1 --']", "targets.silver_flights.keys",
     "'a` OR 1=1 --' is not a column name (no backtick, not empty)"),
    ("targets.silver_flights.partition_by=['year`']", "targets.silver_flights.partition_by",
     "'year`' is not a column name (no backtick, not empty)"),
])
def test_table_and_column_names(override, key, message):
    with pytest.raises(ConfigError) as raised:
        load_job_config("flights", overrides=[override], directory=ROOT / "conf")
    assert str(raised.value) == f"--set: {key}: {message}"


def test_the_repositorys_jobs_pass():
    for job in ("flights", "shop", "tpch"):
        load_job_config(job, directory=ROOT / "conf")
