"""Log-based CDC from the real PostgreSQL (wal2json slot) into Delta: a first run with the
snapshot, inserts/updates/deletes made after it, and a failed apply that leaves the slot where it
was so the next run applies the same changes again."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.config import CdcConfig, JdbcConfig, JdbcCredentials, SourceConfig
from etl.context import RunContext, Warehouse
from etl.errors import SourceError
from etl.flow.cdc import sync_source
from etl.readers.pg_logical import PgLogicalReader, lsn_number
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
