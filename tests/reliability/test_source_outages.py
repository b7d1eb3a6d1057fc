"""Scenario 8, the sources go away: a PostgreSQL backend terminated in the middle of an extract
(`pg_terminate_backend` from a second connection; the shared server keeps running) and a
database that cannot be reached at all (a closed port). The extract and its staging are retried
a bounded number of times on connection failures only; a source that stays away ends the run
with `SourceError` naming it, and leaves the targets and the watermarks as they were."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from chispa import assert_df_equality
from structlog.testing import capture_logs

from etl.config import JdbcConfig, JdbcCredentials, JdbcRetry, load_job_config
from etl.errors import SourceError
from etl.readers.jdbc import stage_extract
from etl.runner import run_job
from etl.staging import Staging
from etl.tables import latest_version, read_delta
from etl.watermarks import WatermarkStore
from etl.writers.delta import DeltaAppend

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import seed_shop

pytestmark = pytest.mark.integration
SCHEMA = "id bigint, name string"
ROWS = [(i, f"row {i}") for i in range(1, 7)]
TINY_BACKOFF = JdbcRetry(attempts=3, backoff_s=0.01)


def pg_url(**params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return (f"jdbc:postgresql://{os.environ['ETL_PG_HOST']}:{os.environ['ETL_PG_PORT']}/"
            f"{os.environ['ETL_PG_DB']}" + (f"?{query}" if query else ""))


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def slow_view(pg, pg_schema):
    """A view of six rows that takes ~0.25 s per row to read."""
    pg.execute(f"CREATE TABLE {pg_schema}.src (id bigint PRIMARY KEY, name text)")
    with pg.cursor() as cur:
        cur.executemany(f"INSERT INTO {pg_schema}.src VALUES (%s, %s)", ROWS)
    pg.execute(f"""CREATE FUNCTION {pg_schema}.slowly(i bigint) RETURNS bigint VOLATILE
                   LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.25); RETURN i; END $$""")
    pg.execute(f"CREATE VIEW {pg_schema}.slow AS "
               f"SELECT {pg_schema}.slowly(id) AS id, name FROM {pg_schema}.src")
    return f"{pg_schema}.slow"


def retries(logs: list[dict]) -> list[tuple[str, str, int]]:
    return [(e["source"], e["sql_state"], e["attempt"]) for e in logs
            if e["event"] == "database connection failed; retrying the extract"]


class Terminator(threading.Thread):
    """Terminates, once, the first backend of ``application`` that has been running a query for
    more than 0.3 s (the extract, not Spark's schema probe), from a connection of its own."""

    def __init__(self, application: str):
        super().__init__(daemon=True)
        self.application = application
        self.terminated: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with seed_shop.connect() as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND "
                    "state = 'active' AND now() - query_start > interval '300 milliseconds'",
                    (self.application,)).fetchone()
                if row is not None:
                    conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                    self.terminated.append(row[0])
                    return
                time.sleep(0.05)


def test_a_backend_terminated_mid_extract_is_retried_and_staged_once(
        spark, slow_view, tmp_path):
    application = f"etl-outage-{uuid.uuid4().hex[:8]}"
    jdbc = JdbcConfig(url=pg_url(ApplicationName=application), driver="org.postgresql.Driver",
                      table=slow_view, retry=TINY_BACKOFF,
                      credentials=JdbcCredentials(user_env="ETL_PG_USER",
                                                  password_env="ETL_PG_PASSWORD"))
    staging = Staging(spark, str(tmp_path / "staging"))
    terminator = Terminator(application)
    terminator.start()
    try:
        with capture_logs() as logs:
            staged = stage_extract(spark, jdbc, staging, source_name="slow", run_id="r1",
                                   ingest_date=dt.date(2026, 1, 1))
    finally:
        terminator.stop.set()
        terminator.join()

    assert len(terminator.terminated) == 1
    assert retries(logs) == [("slow", "57P01", 1)]
    assert staged.manifest["rows"] == 6
    assert_df_equality(staged.df, spark.createDataFrame(ROWS, SCHEMA), ignore_row_order=True,
                       ignore_nullable=True, ignore_metadata=True)
    assert [p.name for p in (tmp_path / "staging" / "slow" / "2026-01-01").iterdir()] == ["r1"]


def test_an_unreachable_database_fails_after_the_attempts_and_changes_nothing(
        spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    silver = str(warehouse / "silver" / "customers")
    DeltaAppend(spark, silver).execute(spark.createDataFrame([(1, "Ada")], "id long, name string"))
    store = WatermarkStore(spark, str(warehouse / "_etl" / "state" / "watermarks"))
    mark = dt.datetime(2026, 1, 1, 10, 0)
    store.advance("shop", {"customers": ("updated_at", mark)}, "earlier-run")
    port = closed_port()
    url = f"jdbc:postgresql://127.0.0.1:{port}/etl?password=not-in-the-message"
    config = load_job_config("shop", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"sources.customers.jdbc.url={url}",
        "sources.customers.jdbc.retry.attempts=3", "sources.customers.jdbc.retry.backoff_s=0.01"])

    with pytest.raises(SourceError) as info, capture_logs() as logs:
        run_job(config, spark=spark)

    assert str(info.value) == (
        f"source customers: jdbc:postgresql://127.0.0.1:{port}/etl?password=*** failed 3 time(s) "
        f"in a row; last: SQLState 08001: Connection to 127.0.0.1:{port} refused. Check that the "
        "hostname and port are correct and that the postmaster is accepting TCP/IP connections.")
    assert retries(logs) == [("customers", "08001", 1), ("customers", "08001", 2)]
    assert latest_version(spark, silver) == 0
    assert_df_equality(read_delta(spark, silver),
                       spark.createDataFrame([(1, "Ada")], "id long, name string"))
    assert [(w.source, w.column, w.value) for w in store.all("shop")] == [
        ("customers", "updated_at", mark)]
