"""Scenario 10, permission denied on the warehouse: the tests run as root, which ignores file
modes, so the table's folder is bind-mounted read-only over itself (the kernel refuses writes
with EROFS, even to root; skipped where mounting is not allowed). A write fails with `WriteError`
naming the table's path and the cause, and the table, still readable, stays at its version.
A run on such a warehouse still sends its failure alert, though its run record cannot be written."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from chispa import assert_df_equality
from py4j.protocol import Py4JJavaError

from etl.config import load_job_config
from etl.errors import WriteError
from etl.runner import run_job
from etl.tables import latest_version, read_delta
from etl.writers.delta import DeltaAppend
from tests.reliability.harness import ROOT
from tests.unit.test_lineage_transports import Receiver

SCHEMA = "id int, v string"


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], check=False, capture_output=True, text=True)


@pytest.fixture()
def read_only(tmp_path):
    """``freeze(folder)`` makes ``folder`` read-only until the test ends."""
    frozen = []

    def freeze(folder):
        done = mount("--bind", str(folder), str(folder))
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        frozen.append(folder)
        done = mount("-o", "remount,ro,bind", str(folder))
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")

    yield freeze
    for folder in reversed(frozen):
        subprocess.run(["umount", "-l", str(folder)], check=False)  # lazy: the JVM may hold it


def test_a_write_to_a_read_only_warehouse_names_the_table_and_changes_nothing(
        spark, tmp_path, read_only):
    path = str(tmp_path / "silver" / "t")
    first = spark.createDataFrame([(1, "a")], SCHEMA)
    DeltaAppend(spark, path).execute(first)
    read_only(tmp_path / "silver")

    with pytest.raises(WriteError) as info:
        DeltaAppend(spark, path).execute(spark.createDataFrame([(2, "b")], SCHEMA))

    # the data file's name is Spark's (a random UUID): everything else is matched exactly
    assert re.fullmatch(
        rf"{re.escape(path)}: the write failed: java\.io\.FileNotFoundException: "
        rf"{re.escape(path)}/part-00000-[0-9a-f-]{{36}}-c000\.snappy\.parquet "
        r"\(Read-only file system\)", str(info.value)), str(info.value)
    assert latest_version(spark, path) == 0
    assert_df_equality(read_delta(spark, path), first)


def append_one_thing(spark, ctx, config) -> None:
    """The job of the alert test: append one row to ``silver/things``."""
    DeltaAppend(spark, ctx.warehouse.table("silver", "things")).execute(
        spark.createDataFrame([(2, "b")], SCHEMA))


def test_a_run_whose_warehouse_refuses_writes_still_alerts(spark, tmp_path, read_only):
    """The job's write fails on a read-only warehouse, and so do the writes of the run record:
    the failure alert still reaches the webhook, and the job's own error is the one raised."""
    warehouse = tmp_path / "warehouse"
    table = warehouse / "silver" / "things"
    DeltaAppend(spark, str(table)).execute(spark.createDataFrame([(1, "a")], SCHEMA))
    conf = tmp_path / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copy(ROOT / "conf" / name, conf / name)
    (conf / "jobs" / "things.yml").write_text(
        "job:\n  name: things\n"
        "  entrypoint: tests.reliability.test_warehouse_refused:append_one_thing\n")
    read_only(warehouse)

    with Receiver() as webhook:
        config = load_job_config("things", directory=conf, overrides=[
            f"paths.warehouse={warehouse}",
            f"alerts.channels=[{{type: webhook, url: '{webhook.url}/hooks/etl'}}]"])
        with pytest.raises(WriteError) as info:
            run_job(config, spark=spark, run_id="refused-1")
        received = list(webhook.received)

    # the run's own error, naming the table: not the error of the record that could not be written
    assert str(info.value).startswith(f"{table}: the write failed: java.io.FileNotFoundException")
    # one alert, the failure, carrying that error
    [(path, _, body)] = received
    assert path == "/hooks/etl"
    assert (body["alert"]["kind"], body["alert"]["run_id"], body["alert"]["details"]) == (
        "failure", "refused-1", {"error_class": "WriteError"})
    assert body["alert"]["summary"] == f"WriteError: {info.value}"[:1000]
    # the run record was refused too, and the error says so
    assert info.value.__notes__ == [
        "the failure could not be recorded: Py4JJavaError: org.apache.spark.sql.delta."
        "DeltaIOException: [DELTA_CANNOT_CREATE_LOG_PATH] Cannot create "
        f"file:{warehouse}/_etl/runs/_delta_log"]
    assert not (warehouse / "_etl" / "runs").exists()
    assert latest_version(spark, str(table)) == 0


def test_a_run_whose_record_is_refused_after_its_work_still_alerts(spark, tmp_path, read_only):
    """The job's write succeeds, then the records folder refuses the run record: the run fails
    with that error, after a failure alert saying so."""
    warehouse = tmp_path / "warehouse"
    table = warehouse / "silver" / "things"
    DeltaAppend(spark, str(table)).execute(spark.createDataFrame([(1, "a")], SCHEMA))
    (warehouse / "_etl").mkdir()
    conf = tmp_path / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copy(ROOT / "conf" / name, conf / name)
    (conf / "jobs" / "things.yml").write_text(
        "job:\n  name: things\n"
        "  entrypoint: tests.reliability.test_warehouse_refused:append_one_thing\n")
    read_only(warehouse / "_etl")

    with Receiver() as webhook:
        config = load_job_config("things", directory=conf, overrides=[
            f"paths.warehouse={warehouse}",
            f"alerts.channels=[{{type: webhook, url: '{webhook.url}/hooks/etl'}}]"])
        with pytest.raises(Py4JJavaError) as info:
            run_job(config, spark=spark, run_id="refused-2")
        received = list(webhook.received)

    cause = ("org.apache.spark.sql.delta.DeltaIOException: [DELTA_CANNOT_CREATE_LOG_PATH] Cannot "
             f"create file:{warehouse}/_etl/runs/_delta_log")
    assert str(info.value.java_exception.toString()).startswith(cause)
    [(_, _, body)] = received
    assert (body["alert"]["kind"], body["alert"]["run_id"], body["alert"]["summary"]) == (
        "failure", "refused-2", f"the run record could not be written: Py4JJavaError: {cause}")
    # the job's own write went through
    assert_df_equality(read_delta(spark, str(table)), spark.createDataFrame(
        [(1, "a"), (2, "b")], SCHEMA), ignore_row_order=True)
