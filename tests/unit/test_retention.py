"""Retention (`etl.config.retention`, `etl.retention`, ``etl maintain --retention JOB``): rows of
known ingestion times in staging, bronze, a silver target, quarantine and dead letters; after
enforcement exactly the rows older than each window are gone, and so are the files that held
them (read with pyarrow, independently of Spark); the report and the record are exact, a second
run removes nothing, and a dry run changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from chispa import assert_df_equality

from etl.cli import main
from etl.context import utcnow
from etl.records import DEAD_LETTERS
from etl.staging import Staging
from etl.tables import latest_version, read_delta

ROOT = Path(__file__).resolve().parents[2]
PYARROW_PYTHON = Path(os.environ.get("ETL_AIRFLOW_PYTHON",
                                     ROOT / ".venv-airflow" / "bin" / "python"))

#: The time every cutoff counts back from (``--now``), and the cutoffs of the job below.
NOW = dt.datetime(2026, 6, 1)
CUTOFF = {"staging": dt.datetime(2026, 5, 22), "bronze": dt.datetime(2026, 5, 2),
          "silver": dt.datetime(2026, 2, 21), "quarantine": dt.datetime(2026, 5, 12),
          "dead_letters": dt.datetime(2026, 4, 22)}

JOB = """\
job: {{name: ret, entrypoint: 'x:y'}}
paths: {{warehouse: {warehouse}}}
staging: {staging}
sources:
  orders: {{path: orders, pattern: "*.csv", columns: [id, v], bronze: bronze_orders}}
targets:
  bronze_orders: {{layer: bronze, table: orders}}
  silver_orders: {{layer: silver, table: orders}}
{retention}"""
RETENTION = """\
retention:
  staging: 10 days
  bronze: 30 days
  quarantine: 20 days
  dead_letters: 40 days
  tables:
    silver_orders: {keep: 100 days, column: updated_at}
"""

# pyarrow is not in the library's virtualenv: it runs in .venv-airflow, as the DAG tests do
COLUMN_PER_FILE = r"""
import json, os, sys
import pyarrow.parquet as pq

root, column = sys.argv[1], sys.argv[2]
found = {}
for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d != "_delta_log"]
    for name in files:
        if name.endswith(".parquet"):
            path = os.path.join(folder, name)
            table = pq.read_table(path)
            jobs = table["job"].to_pylist() if "job" in table.column_names else [None] * len(table)
            # Spark writes INT96 (read as naive UTC), delta-rs UTC-adjusted micros (aware)
            found[path] = [[job, None if v is None else v.replace(tzinfo=None).isoformat(sep=" ")]
                           for job, v in zip(jobs, table[column].to_pylist())]
print(json.dumps(found))
"""

#: Per file: its rows' job (None in tables without the column) and time.
Files = dict[str, list[tuple[str | None, dt.datetime | None]]]


def column_per_file(root: str, column: str) -> Files:
    """Every Parquet data file under the table ``root`` (every version, change data too) and
    its rows' ``job`` and ``column``, read with pyarrow."""
    assert PYARROW_PYTHON.exists(), f"no Python with pyarrow at {PYARROW_PYTHON}"
    done = subprocess.run([str(PYARROW_PYTHON), "-c", COLUMN_PER_FILE, root, column],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return {path: [(job, None if v is None else dt.datetime.fromisoformat(v))
                   for job, v in rows] for path, rows in json.loads(done.stdout).items()}


def holding(files: Files, before: dt.datetime) -> set[str]:
    """The files holding a row of job ``ret`` (or of no job) older than ``before``."""
    return {path for path, rows in files.items()
            if any(job in ("ret", None) and v is not None and v < before for job, v in rows)}


def staged_files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()
            and not p.name.startswith(("_", "."))}


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def write_conf(tmp_path: Path, retention: str = RETENTION,
               staging: str = "{enabled: true}") -> Path:
    conf = tmp_path / "conf"
    (conf / "jobs").mkdir(parents=True, exist_ok=True)
    for name in ("base.yml", "local.yml"):
        shutil.copyfile(ROOT / "conf" / name, conf / name)
    (conf / "jobs" / "ret.yml").write_text(
        JOB.format(warehouse=tmp_path / "wh", retention=retention, staging=staging))
    return conf


def append(spark, path: str, rows: list[tuple], schema: str,
           properties: dict[str, str] | None = None) -> None:
    """One commit of one file."""
    writer = spark.createDataFrame(rows, schema).coalesce(1).write.format("delta").mode("append")
    for key, value in (properties or {}).items():
        writer = writer.option(key, value)
    writer.save(path)


BRONZE = "id int, v string, _ingested_at timestamp"
SILVER = "id int, status string, updated_at timestamp"
QUARANTINE = "job string, table string, record string, quarantined_at timestamp"


@pytest.fixture()
def warehouse(spark, tmp_path) -> Path:
    """Each layer with rows on both sides of its cutoff, some in files of older versions."""
    wh = tmp_path / "wh"
    bronze = str(wh / "bronze" / "orders")
    append(spark, bronze, [(1, "a", ts("2026-04-01 10:00:00")), (2, "b", ts("2026-04-02 00:00:00"))],
           BRONZE)
    append(spark, bronze, [(3, "c", ts("2026-05-01 23:59:59")), (4, "d", ts("2026-05-02 00:00:00")),
                           (5, "e", ts("2026-05-20 00:00:00"))], BRONZE)
    append(spark, bronze, [(6, "f", ts("2026-05-31 00:00:00"))], BRONZE)
    append(spark, bronze, [(0, "z", ts("2026-03-01 00:00:00"))], BRONZE)
    spark.sql(f"DELETE FROM delta.`{bronze}` WHERE id = 0")  # its file is only in older versions

    silver = str(wh / "silver" / "orders")  # with deletion vectors: the erase purges them too
    append(spark, silver, [(1, "old", ts("2025-12-01 00:00:00")),
                           (2, "edge", ts("2026-02-20 23:59:59")),
                           (3, "kept", ts("2026-02-21 00:00:00"))], SILVER)
    spark.sql(f"ALTER TABLE delta.`{silver}` SET TBLPROPERTIES "
              "('delta.enableDeletionVectors' = 'true')")
    append(spark, silver, [(4, "new", ts("2026-05-01 00:00:00")), (5, "undated", None)], SILVER)

    orders_q = str(wh / "quarantine" / "orders")
    append(spark, orders_q, [("ret", "orders", '{"id": 1}', ts("2026-05-01 00:00:00")),
                             ("other", "orders", '{"id": 2}', ts("2026-05-01 00:00:00"))],
           QUARANTINE)
    append(spark, orders_q, [("ret", "orders", '{"id": 3}', ts("2026-05-12 00:00:00"))],
           QUARANTINE)
    append(spark, str(wh / "quarantine" / "customers"),
           [("other", "customers", '{"id": 9}', ts("2026-01-01 00:00:00"))], QUARANTINE)

    DEAD_LETTERS.append(spark, str(wh / "_etl" / "dead_letters"), [
        ("ret", "r1", "orders", "SetAside", "bad header", ts("2026-04-01 00:00:00"), "a.csv", 1, 1),
        ("ret", "r2", "orders", "SetAside", "bad header", ts("2026-05-01 00:00:00"), "b.csv", 1, 1),
        ("other", "r3", "x", "SetAside", "bad header", ts("2026-01-01 00:00:00"), "c.csv", 1, 1),
    ])

    staging = Staging(spark, str(wh / "staging"))
    rows = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    staging.stage("orders", "run-a", dt.date(2026, 5, 21), rows, {})
    staging.stage("orders", "run-b", dt.date(2026, 5, 21), rows.limit(1), {})
    staging.stage("orders", "run-c", dt.date(2026, 5, 22), rows.limit(1), {})
    staging.stage("elsewhere", "run-d", dt.date(2026, 1, 1), rows, {})  # not the job's source
    return wh


def cells(out: str, header: str) -> list[tuple[str, ...]]:
    """The rows of the printed table whose header line is ``header`` (its words separated by
    runs of spaces), each split into its cells (separated by two spaces or more)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if [w.strip() for w in line.split("  ") if w.strip()] == header.split(", "))
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        rows.append(tuple(c.strip() for c in line.split("  ") if c.strip()))
    return rows


def test_retention_removes_exactly_the_rows_and_files_older_than_each_window(
        spark, tmp_path, warehouse, capsys):
    conf = write_conf(tmp_path)
    tables = {"bronze": (str(warehouse / "bronze" / "orders"), "_ingested_at"),
              "silver": (str(warehouse / "silver" / "orders"), "updated_at"),
              "quarantine": (str(warehouse / "quarantine" / "orders"), "quarantined_at"),
              "dead_letters": (str(warehouse / "_etl" / "dead_letters"), "recorded_at")}
    files_before = {layer: column_per_file(path, column) for layer, (path, column) in tables.items()}
    expired = {layer: holding(files, CUTOFF[layer]) for layer, files in files_before.items()}
    # bronze: the first commit's file, the mixed one, and the deleted row's (older versions)
    assert {layer: len(found) for layer, found in expired.items()} == {
        "bronze": 3, "silver": 1, "quarantine": 1, "dead_letters": 1}
    staging = warehouse / "staging"
    staged = staged_files(staging)
    expired_staged = staged_files(staging / "orders" / "2026-05-21")
    versions = {layer: latest_version(spark, path) for layer, (path, _) in tables.items()}
    customers_q = str(warehouse / "quarantine" / "customers")
    counts = {"staging": (3, len(expired_staged)), "bronze": (3, 3), "silver": (2, 1),
              "quarantine/customers": (0, 0), "quarantine": (1, 1), "dead_letters": (1, 1)}

    def expected(numbers: dict[str, tuple[int, int]]) -> list[tuple[str, ...]]:
        return [
            ("staging", "staging/orders", "2026-05-22 00:00:00", *map(str, numbers["staging"])),
            ("bronze", "bronze/orders", "2026-05-02 00:00:00", *map(str, numbers["bronze"])),
            ("silver", "silver/orders", "2026-02-21 00:00:00", *map(str, numbers["silver"])),
            ("quarantine", "quarantine/customers", "2026-05-12 00:00:00",
             *map(str, numbers["quarantine/customers"])),
            ("quarantine", "quarantine/orders", "2026-05-12 00:00:00",
             *map(str, numbers["quarantine"])),
            ("dead_letters", "_etl/dead_letters", "2026-04-22 00:00:00",
             *map(str, numbers["dead_letters"])),
        ]

    # a run's stored typed references (`TypedReferences`): rows of bronze as it is now
    stored = warehouse / "_etl" / "typed_references" / "ret"
    (stored / "orders" / "a-state").mkdir(parents=True)
    (stored / "orders" / "a-state" / "_schema.json").write_text("{}")

    # a dry run says what would go and changes nothing
    args = ["--conf-dir", str(conf), "maintain", "--retention", "ret", "--now", "2026-06-01"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "ret: retention (dry run, nothing changed)"
    assert cells(out, "layer, table, cutoff, rows to remove, files to purge") == expected(counts)
    assert {layer: latest_version(spark, path) for layer, (path, _) in tables.items()} == versions
    assert {layer: column_per_file(path, column)
            for layer, (path, column) in tables.items()} == files_before
    assert staged_files(staging) == staged
    assert not (warehouse / "_etl" / "retention").exists()
    assert (stored / "orders" / "a-state" / "_schema.json").read_text() == "{}"

    started = utcnow()
    assert main(args) == 0
    ended = utcnow()
    out = capsys.readouterr().out
    run_id = out.splitlines()[0].removeprefix("ret: retention (run ").removesuffix(")")
    header = "layer, table, cutoff, rows removed, files purged"
    assert cells(out, header) == expected(counts)

    # exactly the rows older than each window are gone
    assert_df_equality(read_delta(spark, tables["bronze"][0]), spark.createDataFrame(
        [(4, "d", ts("2026-05-02 00:00:00")), (5, "e", ts("2026-05-20 00:00:00")),
         (6, "f", ts("2026-05-31 00:00:00"))], BRONZE), ignore_row_order=True)
    assert_df_equality(read_delta(spark, tables["silver"][0]), spark.createDataFrame(
        [(3, "kept", ts("2026-02-21 00:00:00")), (4, "new", ts("2026-05-01 00:00:00")),
         (5, "undated", None)], SILVER), ignore_row_order=True)
    assert_df_equality(read_delta(spark, tables["quarantine"][0]), spark.createDataFrame(
        [("other", "orders", '{"id": 2}', ts("2026-05-01 00:00:00")),
         ("ret", "orders", '{"id": 3}', ts("2026-05-12 00:00:00"))], QUARANTINE),
        ignore_row_order=True)
    assert_df_equality(read_delta(spark, customers_q), spark.createDataFrame(
        [("other", "customers", '{"id": 9}', ts("2026-01-01 00:00:00"))], QUARANTINE))
    assert sorted((r.job, r.run_id) for r in read_delta(spark, tables["dead_letters"][0])
                  .collect()) == [("other", "r3"), ("ret", "r2")]
    assert staged_files(staging) == staged - expired_staged
    assert not stored.exists()  # the next run types bronze again
    assert sorted(p.name for p in (staging / "orders").iterdir()) == ["2026-05-22"]

    # and so are the files that held them, in every version; the other files are all there
    for layer, (path, column) in tables.items():
        files_after = column_per_file(path, column)
        assert holding(files_after, CUTOFF[layer]) == set(), layer
        assert set(files_before[layer]) - set(files_after) == expired[layer], layer

    # the record says when each table was last enforced, with what it removed
    enforced = read_delta(spark, str(warehouse / "_etl" / "retention"))
    assert_df_equality(enforced.drop("enforced_at"), spark.createDataFrame(
        [("ret", layer, table, ts(cutoff), int(rows), int(files), run_id)
         for layer, table, cutoff, rows, files in expected(counts)],
        "job string, layer string, table string, cutoff timestamp, rows_deleted long, "
        "files_purged long, run_id string"), ignore_row_order=True, ignore_nullable=True)
    (enforced_at,) = {r.enforced_at for r in enforced.collect()}
    assert started <= enforced_at <= ended

    # a second run finds nothing more to remove
    assert main(args) == 0
    out = capsys.readouterr().out
    assert cells(out, header) == expected({k: (0, 0) for k in counts})

    assert main(["--conf-dir", str(conf), "state", "show", "ret"]) == 0
    shown = cells(capsys.readouterr().out, "layer, table, retention last enforced, cutoff, "
                                           "rows removed, files purged, run_id")
    second = shown[0][-1]
    assert second != run_id
    assert [(r[0], r[1], r[3], r[4], r[5], r[6]) for r in shown] == sorted(
        (layer, table, cutoff, "0", "0", second) for layer, table, cutoff, *_ in expected(counts))


def test_the_old_staging_retention_key_is_refused_naming_the_new_one(tmp_path, capsys):
    conf = write_conf(tmp_path, staging="{enabled: true, retention_days: 30}")

    code = main(["--conf-dir", str(conf), "maintain", "--retention", "ret"])

    assert (code, capsys.readouterr().err) == (
        2, f"etl: error: {conf}/jobs/ret.yml: staging.retention_days: "
           "this key moved: write retention.staging (e.g. retention: {staging: 30 days})\n")


@pytest.mark.parametrize(("retention", "key", "message"), [
    ("retention: {bronze: 30}\n", "retention.bronze",
     "expected a duration of whole days such as '30 days', got '30'"),
    ("retention: {quarantine: 0 days}\n", "retention.quarantine",
     "expected a duration of whole days such as '30 days', got '0 days'"),
    ("retention: {tables: {silver_orders: {keep: 2 weeks, column: updated_at}}}\n",
     "retention.tables.silver_orders.keep",
     "expected a duration of whole days such as '30 days', got '2 weeks'"),
    ("retention: {tables: {gold_x: {keep: 5 days, column: d}}}\n", "retention.tables.gold_x",
     "'gold_x' is not a target (targets: ['bronze_orders', 'silver_orders'])"),
    ("retention: {tables: {silver_orders: {keep: 5 days}}}\n",
     "retention.tables.silver_orders.column", "required value missing (expected str)"),
    ("", "retention", "the job declares no retention"),
])
def test_bad_retention_is_refused_before_spark_starts(tmp_path, capsys, retention, key, message):
    conf = write_conf(tmp_path, retention)

    code = main(["--conf-dir", str(conf), "maintain", "--retention", "ret"])

    assert (code, capsys.readouterr().err) == (2, f"etl: error: {conf}/jobs/ret.yml: {key}: {message}\n")


@pytest.mark.parametrize(("args", "message"), [
    ([], "TABLE: give a TABLE or --retention JOB (one of them)"),
    (["silver/orders", "--retention", "ret"], "TABLE: give a TABLE or --retention JOB (one of them)"),
    (["silver/orders", "--dry-run"], "--dry-run: --dry-run and --now go with --retention JOB"),
    (["--retention", "ret", "--zorder-by", "id"],
     "--zorder-by: --zorder-by goes with a TABLE, not --retention JOB"),
    (["--retention", "ret", "--no-vacuum"],
     "--no-vacuum: --no-vacuum goes with a TABLE, not --retention JOB"),
])
def test_maintain_takes_a_table_or_a_job(conf_dir, capsys, args, message):
    code = main(["--conf-dir", str(conf_dir), "maintain", *args])

    assert (code, capsys.readouterr().err) == (2, f"etl: error: {message}\n")


def test_a_retention_column_that_is_not_a_time_is_refused_naming_the_key(spark, tmp_path, capsys):
    conf = write_conf(tmp_path)
    silver = tmp_path / "wh" / "silver" / "orders"
    append(spark, str(silver), [(1, "old", "2025-12-01")], "id int, status string, updated_at string")

    code = main(["--conf-dir", str(conf), "maintain", "--retention", "ret", "--now", "2026-06-01"])

    assert (code, capsys.readouterr().err) == (2, (
        f"etl: error: {conf}/jobs/ret.yml: retention.tables.silver_orders: column 'updated_at' "
        "of silver/orders is string, not a date or timestamp\n"))
    assert read_delta(spark, str(silver)).count() == 1
