"""The inspection commands (``etl runs``, ``etl state show``, ``etl quarantine``, ``etl
dead-letters``, ``etl report``) read the records the library's writers left, without a JVM:
delta-rs in a Python process that never imports PySpark, on a local warehouse and on an
``s3a://`` warehouse on the S3 API server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl.context import Warehouse
from etl.records import DEAD_LETTERS, FILES, QUALITY_METRICS, RUNS, WATERMARKS, RecordTable

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 2, 8, 0, 0)

#: Runs each command in-process, as ``etl`` would, and fails if PySpark was imported.
PROBE = """
import contextlib, io, json, sys
from etl.cli import main
out = {}
for args in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(args)
    out[" ".join(args)] = [code, text.getvalue()]
out["pyspark imported"] = "pyspark" in sys.modules
print(json.dumps(out))
"""


def row(record: RecordTable, **values):
    """A record row in the table's column order, null where not given."""
    names = record.schema.fieldNames()
    assert set(values) <= set(names), set(values) - set(names)
    return tuple(values.get(n) for n in names)


def write_records(spark, warehouse: Warehouse) -> None:
    run = dict(job="shop", env="local", mode="incremental", etl_version="0")
    RUNS.append(spark, warehouse.records("runs"), [
        row(RUNS, run_id="r1", record_type="run", status="failed", started_at=T0 - dt.timedelta(1),
            duration_s=3.0, error_class="SourceError", **run),
        row(RUNS, run_id="r2", record_type="run", status="succeeded", started_at=T0,
            ended_at=T0 + dt.timedelta(seconds=12), duration_s=12.5, rows_read=5, rows_loaded=4,
            rows_quarantined=1, rows_written=4, quality="[]", spark_jobs=7, spark_tasks=9, **run),
        row(RUNS, run_id="r2", record_type="step", step="extract", step_index=0,
            status="succeeded", started_at=T0, duration_s=2.5, rows_written=5, spark_jobs=3,
            spark_tasks=4, **run),
        row(RUNS, run_id="r2", record_type="step", step="publish", step_index=1,
            status="succeeded", started_at=T0, duration_s=10.0, rows_read=4, rows_written=4,
            spark_jobs=4, spark_tasks=5, **run),
    ])
    WATERMARKS.append(spark, warehouse.records("state/watermarks"), [
        row(WATERMARKS, job="shop", source="orders", column="updated_at", kind="timestamp",
            value="2026-11-02 07:59:00", run_id="r2", updated_at=T0)])
    FILES.append(spark, warehouse.records("state/files"), [
        row(FILES, job="shop", source="customers", path=f"file:/landing/c{i}.csv", size=10,
            modified_ms=0, run_id="r2", ingested_at=T0 + dt.timedelta(minutes=i),
            status="ingested") for i in (1, 2)])
    DEAD_LETTERS.append(spark, warehouse.records("dead_letters"), [
        row(DEAD_LETTERS, job="shop", run_id="r1", source="orders", error_class="SourceError",
            reason="source orders: connection refused", recorded_at=T0 - dt.timedelta(1))])
    QUALITY_METRICS.append(spark, warehouse.records("quality_metrics"), [
        row(QUALITY_METRICS, job="shop", table="silver/orders", run_id="r2",
            logical_date=T0.date(), kind="rule", rule="order_key_unique", severity="error",
            passed=True, constraint="UniquenessConstraint(order_id)", value=1.0,
            gate_passed=True, checked_at=T0)])
    spark.createDataFrame(
        [("r2", "shop", "silver/orders", "file:/landing/o.csv", ["amount: cannot parse 'x'"],
          '{"amount":"x"}', T0)],
        "run_id string, job string, table string, source_file string, reasons array<string>, "
        "record string, quarantined_at timestamp",
    ).write.format("delta").save(warehouse.quarantine("orders"))


def inspect(warehouse: str, commands: list[list[str]]) -> dict:
    env = {**os.environ, "ETL_WAREHOUSE": warehouse, "ETL_ENV": "local"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], check=False, cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def expected_outputs() -> dict:
    return {
        "runs": [0, (
            "run_id  job   status     mode         dates  read  loaded  quarantined  written  "
            "seconds  error\n"
            "------  ----  ---------  -----------  -----  ----  ------  -----------  -------  "
            "-------  -----------\n"
            "r2      shop  succeeded  incremental         5     4       1            4        "
            "12.5\n"
            "r1      shop  failed     incremental                                             "
            "3.0      SourceError\n")],
        "runs --steps": [0, (
            "run_id  job   step     status     rows_in  rows_out  seconds  spark_jobs  tasks\n"
            "------  ----  -------  ---------  -------  --------  -------  ----------  -----\n"
            "r2      shop  extract  succeeded           5         2.5      3           4\n"
            "r2      shop  publish  succeeded  4        4         10.0     4           5\n")],
        "state show shop": [0, (
            "source  column      kind       value                run_id  updated_at\n"
            "------  ----------  ---------  -------------------  ------  -------------------\n"
            "orders  updated_at  timestamp  2026-11-02 07:59:00  r2      2026-11-02 08:00:00\n"
            "\n"
            "source     files ingested  last ingested\n"
            "---------  --------------  -------------------\n"
            "customers  2               2026-11-02 08:02:00\n")],
        "dead-letters shop": [0, (
            "recorded_at          job   run_id  source  file  error_class  reason\n"
            "-------------------  ----  ------  ------  ----  -----------  "
            f"{'-' * len('source orders: connection refused')}\n"
            "2026-11-01 08:00:00  shop  r1      orders        SourceError  "
            "source orders: connection refused\n")],
        "quarantine orders": [0, (
            "run_id  reason                    rows  replayed\n"
            "------  ------------------------  ----  --------\n"
            "r2      amount: cannot parse 'x'  1     0\n")],
        "pyspark imported": False,
    }


COMMANDS = [["runs"], ["runs", "--steps"], ["state", "show", "shop"], ["dead-letters", "shop"],
            ["quarantine", "orders"]]


@pytest.mark.integration
def test_local_warehouse_is_inspected_without_a_jvm(spark, tmp_path):
    warehouse = Warehouse.at(str(tmp_path / "wh"))
    write_records(spark, warehouse)
    out = tmp_path / "report.html"

    shown = inspect(warehouse.root, [*COMMANDS, ["report", "--run", "r2", "--out", str(out)]])

    report = shown.pop(f"report --run r2 --out {out}")
    assert shown == expected_outputs()
    assert report == [0, f"{out}\n"]
    page = out.read_text()
    assert all(text in page for text in ("r2", "succeeded", "extract", "publish"))


@pytest.mark.integration
def test_s3_warehouse_is_inspected_without_a_jvm(spark, s3):
    _, bucket = s3
    warehouse = Warehouse.at(f"s3a://{bucket}/wh")
    write_records(spark, warehouse)

    assert inspect(warehouse.root, COMMANDS) == expected_outputs()
