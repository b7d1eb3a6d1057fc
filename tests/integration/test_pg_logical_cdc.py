"""Log-based CDC from the real PostgreSQL (wal2json slot) into Delta: a first run with the
snapshot, inserts/updates/deletes made after it, and a failed apply that leaves the slot where it
was so the next run applies the same changes again; a TOASTed value that an update of another
column leaves out of the change survives (mixed-case table name), a TRUNCATE is refused, and a
table without REPLICA IDENTITY FULL is refused before a slot exists."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import string
import uuid
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.config import CdcConfig, JdbcConfig, JdbcCredentials, SourceConfig
from etl.context import RunContext, Warehouse
from etl.errors import SourceError
from etl.flow.cdc import sync_source
from etl.readers.pg_logical import PgLogicalReader, lsn_number, lsn_text
from etl.staging import Staging
from etl.tables import read_delta
from etl.watermarks import WatermarkStore

pytestmark = pytest.mark.integration
ROWS = "id int, name string, city string, _cdc_op string, position bigint"


@pytest.fixture()
def slot(pg):
    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    yield name
    pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
               "WHERE slot_name = %s", (name,))


def jdbc(table: str) -> JdbcConfig:
    url = f"jdbc:postgresql://{os.environ['ETL_PG_HOST']}:{os.environ['ETL_PG_PORT']}/" \
          f"{os.environ['ETL_PG_DB']}"
    return JdbcConfig(url=url, driver="org.postgresql.Driver", table=table,
                      credentials=JdbcCredentials(user_env="ETL_PG_USER",
                                                  password_env="ETL_PG_PASSWORD"))


def confirmed(pg, slot: str) -> str:
    return pg.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                      "WHERE slot_name = %s", (slot,)).fetchone()[0]


def pending(pg, slot: str, table: str) -> list[int]:
    """The LSNs of the table's changes the slot holds (peeked, nothing consumed)."""
    rows = pg.execute(
        "SELECT data::json->>'lsn' FROM pg_logical_slot_peek_changes(%s, NULL, NULL, "
        "'format-version', '2', 'include-lsn', '1', 'include-transaction', '0', "
        "'add-tables', %s)", (slot, table)).fetchall()
    return [lsn_number(r[0]) for r in rows]


def read_manifest(warehouse, run_id):
    """The staged extract's manifest (slot, LSN range, rows) of one run."""
    (path,) = Path(warehouse.root).glob(f"staging/customers/*/{run_id}/_manifest.json")
    return json.loads(path.read_text())


def table_rows(spark, path):
    return read_delta(spark, path).select("id", "name", "city", "_cdc_op",
                                          F.col("_cdc_seq.position").alias("position"))


def test_slot_changes_after_the_first_run_reach_delta_and_a_failed_run_replays(
    spark, pg, pg_schema, slot, tmp_path
):
    table = f"{pg_schema}.customers"
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, city text)")
    pg.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
    pg.execute(f"INSERT INTO {table} VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome')")
    warehouse = Warehouse.at(str(tmp_path))
    source = SourceConfig(type="pg_logical", jdbc=jdbc(table), cdc=CdcConfig(keys=["id"], slot=slot))
    target = warehouse.table("silver", "customers")
    store = WatermarkStore(spark, warehouse.records("state/watermarks"))

    def run(run_id, path=target):
        ctx = RunContext(job="sync", env="test", warehouse=warehouse, landing="", run_id=run_id)
        return sync_source(spark, ctx, "customers", source, path)

    first = run("run-1")  # creates the slot; the table's rows as a snapshot
    snap = lsn_number(read_manifest(warehouse, "run-1")["from"]) - 1
    assert (first.metrics.rows_inserted, first.quarantined) == (2, 0)
    assert confirmed(pg, slot) == read_manifest(warehouse, "run-1")["upto"]
    assert_df_equality(
        table_rows(spark, target),
        spark.createDataFrame([(1, "Ann", "Oslo", "r", snap), (2, "Bob", "Rome", "r", snap)], ROWS),
        ignore_row_order=True, ignore_nullable=True,
    )

    pg.execute(f"INSERT INTO {table} VALUES (3, 'Cy', 'Nice')")
    pg.execute(f"UPDATE {table} SET city = 'Bergen' WHERE id = 1")
    pg.execute(f"DELETE FROM {table} WHERE id = 2")
    pg.execute(f"UPDATE {table} SET name = 'Cyd' WHERE id = 3")
    lsn = pending(pg, slot, table)
    # the target cannot be written (a file where the table should be): the run fails after
    # staging, before the commit; the slot and the stored position stay where they were
    blocked = tmp_path / "blocked"
    blocked.write_text("not a table")
    with pytest.raises(Exception):  # noqa: B017 - whatever Delta raises; the slot is the point
        run("run-2", str(blocked))
    assert confirmed(pg, slot) == read_manifest(warehouse, "run-1")["upto"]
    assert store.get("sync", "customers").value == first.position

    again = run("run-3")
    assert (again.metrics.rows_inserted, again.metrics.rows_updated,
            again.metrics.rows_deleted) == (1, 1, 1)
    assert [read_manifest(warehouse, r)["rows"] for r in ("run-2", "run-3")] == [4, 4]
    assert pending(pg, slot, table) == []
    assert store.get("sync", "customers").value == again.position
    assert_df_equality(
        table_rows(spark, target),
        spark.createDataFrame([(1, "Ann", "Bergen", "u", lsn[1]), (3, "Cyd", "Nice", "u", lsn[3])],
                              ROWS),
        ignore_row_order=True, ignore_nullable=True,
    )
    assert lsn == sorted(lsn) and lsn[0] > snap
    PgLogicalReader(spark, "customers", source.jdbc, slot).drop_slot()
    assert pg.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                      (slot,)).fetchone() == (0,)


def test_reader_checks_slot_and_table_names_before_connecting(spark):
    with pytest.raises(SourceError) as err:
        PgLogicalReader(spark, "customers", jdbc("s.customers"), "Bad-Slot")
    assert str(err.value) == ("source customers: slot 'Bad-Slot' must be lower-case letters, "
                              "digits and _ (at most 63)")
    with pytest.raises(SourceError) as err:
        PgLogicalReader(spark, "customers", jdbc("customers; drop"), "ok_slot")
    assert str(err.value) == "source customers: table must be schema.table, got 'customers; drop'"


def peeked(pg, slot: str, table: str) -> list[tuple[str, dict]]:
    """The table's changes the slot holds: (LSN text, wal2json change), nothing consumed."""
    rows = pg.execute(
        "SELECT lsn::text, data FROM pg_logical_slot_peek_changes(%s, NULL, NULL, "
        "'format-version', '2', 'include-transaction', '0', 'add-tables', %s)",
        (slot, table)).fetchall()
    return [(lsn, json.loads(data)) for lsn, data in rows]


DOCS = "id int, title string, body string, meta string, _cdc_op string"


def test_a_toasted_value_survives_an_update_of_another_column_and_a_truncate_is_refused(
    spark, pg, pg_schema, slot, tmp_path
):
    quoted = f'{pg_schema}."Docs"'  # a mixed-case name, as PostgreSQL stores it
    pg.execute(f"CREATE TABLE {quoted} (id int PRIMARY KEY, title text, body text, meta jsonb)")
    # out of line and uncompressed: a value over about 2 kB is TOASTed
    pg.execute(f"ALTER TABLE {quoted} ALTER COLUMN body SET STORAGE EXTERNAL, "
               "ALTER COLUMN meta SET STORAGE EXTERNAL, REPLICA IDENTITY FULL")
    chars = random.Random(19).choices(string.ascii_letters + string.digits, k=6000)
    body = "".join(chars[:3000])
    pg.execute(f"INSERT INTO {quoted} VALUES (1, 'draft', %s, %s::jsonb), "
               "(2, 'memo', 'short', '{\"a\": 1}')",
               (body, json.dumps({"notes": "".join(chars[3000:])})))
    (meta,) = pg.execute(f"SELECT meta::text FROM {quoted} WHERE id = 1").fetchone()
    warehouse = Warehouse.at(str(tmp_path))
    source = SourceConfig(type="pg_logical", jdbc=jdbc(f"{pg_schema}.Docs"),
                          cdc=CdcConfig(keys=["id"], slot=slot))
    target = warehouse.table("silver", "docs")
    store = WatermarkStore(spark, warehouse.records("state/watermarks"))

    def run(run_id):
        ctx = RunContext(job="sync", env="test", warehouse=warehouse, landing="", run_id=run_id)
        return sync_source(spark, ctx, "docs", source, target)

    def rows():
        return read_delta(spark, target).select("id", "title", "body", "meta", "_cdc_op")

    run("run-1")  # the snapshot
    pg.execute(f"UPDATE {quoted} SET title = 'final' WHERE id = 1")
    (_, change), = peeked(pg, slot, f"{pg_schema}.Docs")
    # what the slot holds: the update without body and meta (unchanged TOASTed values)
    assert (change["action"], [c["name"] for c in change["columns"]]) == ("U", ["id", "title"])

    second = run("run-2")

    assert (second.metrics.rows_inserted, second.metrics.rows_updated) == (0, 1)
    expected = spark.createDataFrame(
        [(1, "final", body, meta, "u"), (2, "memo", "short", '{"a": 1}', "r")], DOCS)
    assert_df_equality(rows(), expected, ignore_row_order=True, ignore_nullable=True)

    position = confirmed(pg, slot)
    pg.execute(f"TRUNCATE {quoted}")
    ((truncated_at, truncate),) = peeked(pg, slot, f"{pg_schema}.Docs")
    assert truncate["action"] == "T"

    with pytest.raises(SourceError) as caught:
        run("run-3")

    assert str(caught.value) == (
        f"source docs: table {pg_schema}.Docs was truncated at LSN {truncated_at} (1 TRUNCATE "
        f"event(s) in slot {slot}); a TRUNCATE cannot be applied key by key, so nothing was "
        "applied and the slot was not advanced. To resynchronise, drop the target table and the "
        f"slot (SELECT pg_drop_replication_slot('{slot}')) and reset the stored position (etl "
        "state reset JOB): the next run starts from a new snapshot"
    )
    assert lsn_text(lsn_number(truncated_at)) == truncated_at
    assert confirmed(pg, slot) == position
    assert store.get("sync", "docs").value == second.position
    assert_df_equality(rows(), expected, ignore_row_order=True, ignore_nullable=True)


def test_a_table_without_replica_identity_full_is_refused_before_a_slot_exists(
    spark, pg, pg_schema, slot, tmp_path
):
    pg.execute(f"CREATE TABLE {pg_schema}.orders (id int PRIMARY KEY, note text)")
    staging = Staging(spark, str(tmp_path / "staging"))

    def extract(table: str) -> str:
        reader = PgLogicalReader(spark, "orders", jdbc(table), slot)
        with pytest.raises(SourceError) as caught:
            reader.extract(staging, "run-1", dt.date(2026, 1, 1), snapshot=True)
        return str(caught.value)

    assert extract(f"{pg_schema}.orders") == (
        f"source orders: table {pg_schema}.orders has REPLICA IDENTITY DEFAULT; log-based CDC "
        "needs REPLICA IDENTITY FULL, or an update that leaves a TOASTed value unchanged would "
        f'write null over it: run ALTER TABLE "{pg_schema}"."orders" REPLICA IDENTITY FULL'
    )
    assert extract(f"{pg_schema}.Orders") == (
        f"source orders: no table {pg_schema}.Orders in the database (names are case-sensitive "
        f"as PostgreSQL stores them; found {pg_schema}.orders)"
    )
    assert pg.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                      (slot,)).fetchone() == (0,)
    assert not (tmp_path / "staging").exists()
