"""Jobs declared in YAML only, one per source type the flow runs (REST, Kafka, a Delta change
feed, PostgreSQL logical decoding; files and JDBC are the flights, tpch and shop jobs): each
lands its input, types it, quarantines what it cannot use, publishes by key, reconciles its
counts, and stores its position only after the publish, so the next run reads only what is
new."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.config import load_job_config
from etl.runner import run_job
from etl.watermarks import WatermarkStore
from tests.services import require_service

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("ETL_KAFKA_BOOTSTRAP", "127.0.0.1:29092")


class Project:
    """A conf/ folder with one job written by the test, and a warehouse."""

    def __init__(self, root: Path, job: str, document: str):
        self.job, self.root = job, root
        self.conf = root / "conf"
        (self.conf / "jobs").mkdir(parents=True)
        for name in ("base.yml", "local.yml"):
            shutil.copyfile(ROOT / "conf" / name, self.conf / name)
        (self.conf / "jobs" / f"{job}.yml").write_text(document)
        self.warehouse = root / "warehouse"

    def run(self, spark, **environ: str):
        config = load_job_config(self.job, directory=self.conf, environ={**os.environ, **environ},
                                 overrides=[f"paths.warehouse={self.warehouse}",
                                            "lineage.enabled=false"])
        return run_job(config, spark=spark)

    def table(self, spark, layer: str, name: str):
        return spark.read.format("delta").load(str(self.warehouse / layer / name))

    def watermark(self, spark, source: str):
        store = WatermarkStore(spark, str(self.warehouse / "_etl" / "state" / "watermarks"))
        mark = store.get(self.job, source)
        return None if mark is None else (mark.column, mark.value)


def counts(ctx) -> tuple[int, int, int, int]:
    return ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered


# --------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------

def ticket(i: int, status: str | None, hour: int) -> dict[str, object]:
    return {"id": i, "status": status, "updated_at": f"2026-01-01T{hour:02d}:00:00"}


@pytest.fixture()
def tickets_api() -> Iterator[tuple[list[object], str]]:
    """An API serving ``records`` page by page (``page``, ``per_page``), those updated after
    ``since`` only."""
    records: list[object] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            since = query.get("since", "")
            rows = [r for r in records
                    if not (since and isinstance(r, dict) and str(r["updated_at"]) <= since)]
            page, size = int(query["page"]), int(query["per_page"])
            body = json.dumps({"data": rows[(page - 1) * size:page * size]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield records, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


REST_JOB = """
job: {name: tickets}
staging: {enabled: true}
sources:
  tickets:
    type: rest
    rest:
      url: ${TICKETS_API}/tickets
      schema: "id bigint, status string, updated_at timestamp"
      records_path: data
      pagination: {style: page, page_size: 2, page_param: page, size_param: per_page}
      incremental: {param: since, field: updated_at}
    required: [status]
    bronze: bronze_tickets
targets:
  bronze_tickets: {layer: bronze, table: tickets}
  tickets:
    layer: silver
    table: tickets
    inputs: [tickets]
    mode: merge
    keys: [id]
    sequence_by: [updated_at]
    duplicates: latest
quality:
  tickets:
    - {name: ticket_id_unique, type: unique, columns: [id]}
"""


def test_a_rest_source_through_the_flow(spark, tmp_path, tickets_api):
    records, url = tickets_api
    records += [ticket(1, "open", 1), {**ticket(2, "open", 2), "priority": "high"},
                ticket(3, None, 3),
                {"id": "x", "status": "open", "updated_at": "2026-01-01T04:00:00"},
                ticket(1, "closed", 5),
                {"id": 9, "status": "open", "updated_at": "2099-01-01T00:00:00"}]
    project = Project(tmp_path, "tickets", REST_JOB)

    first = project.run(spark, TICKETS_API=url)

    # 6 records: one without a status, one of the wrong shape and one far in the future
    # quarantined; ticket 1's older version filtered
    assert counts(first) == (6, 2, 3, 1)
    assert_df_equality(
        project.table(spark, "silver", "tickets").select("id", "status"),
        spark.createDataFrame([(1, "closed"), (2, "open")], "id bigint, status string"),
        ignore_row_order=True, ignore_nullable=True)
    reasons = sorted(r["reasons"][0] for r in project.table(spark, "quarantine", "tickets")
                     .collect())
    assert reasons[0].startswith("record does not fit the schema")
    assert reasons[1] == "status: required value missing"
    assert reasons[2].startswith("updated_at: 2099-01-01 00:00:00 is after the run's start "
                                 "plus the allowed skew of 1 day (")
    # the future record does not move the watermark past the records read
    assert project.watermark(spark, "tickets") == ("updated_at", dt.datetime(2026, 1, 1, 5))
    assert any("records with updated_at after the run's start" in n for n in first.notes)
    # bronze keeps the field the schema does not know, as JSON; silver does not get it
    assert_df_equality(
        project.table(spark, "bronze", "tickets").where("_rescued_data IS NOT NULL")
        .select("id", "_rescued_data"),
        spark.createDataFrame([(2, '{"priority":"high"}')], "id bigint, _rescued_data string"),
        ignore_nullable=True)
    assert "_rescued_data" not in project.table(spark, "silver", "tickets").columns

    records.append(ticket(2, "closed", 6))
    second = project.run(spark, TICKETS_API=url)

    # only what changed since the stored watermark (and the future record, quarantined again)
    assert counts(second) == (2, 1, 1, 0)
    assert project.table(spark, "silver", "tickets").where("id = 2").first()["status"] == "closed"
    assert project.watermark(spark, "tickets") == ("updated_at", dt.datetime(2026, 1, 1, 6))


#: The REST job with tickets as a subject: `etl forget` erases one by id from the source's
#: places and from silver (named apart from the source, so the subject can name it).
SUBJECT_JOB = REST_JOB.replace("  tickets:\n    layer: silver", "  silver_tickets:\n    layer: silver") \
    .replace("quality:\n  tickets:", "quality:\n  silver_tickets:") + """
personal_data:
  subjects:
    ticket:
      found_in:
        tickets: {column: id}
        silver_tickets: {column: id}
"""


def staged_ids(project: Project) -> list[int]:
    """The ids of every record in the REST source's staged pages, of every run."""
    ids = []
    for pages in (project.warehouse / "staging" / "tickets").glob("*/*/pages.jsonl"):
        for line in pages.read_text().splitlines():
            ids += [r["id"] for r in json.loads(json.loads(line)["body"])["data"]]
    return sorted(ids)


def ids(spark, project: Project, layer: str) -> list[int]:
    return sorted(r.id for r in project.table(spark, layer, "tickets").select("id").collect())


def test_a_forgotten_rest_record_leaves_the_staged_pages_and_is_removed_on_ingest(
        spark, tmp_path, tickets_api, monkeypatch, capsys):
    from etl.cli import main

    records, url = tickets_api
    records += [ticket(1, "open", 1), ticket(2, "open", 2), ticket(3, "open", 3)]
    project = Project(tmp_path, "tickets", SUBJECT_JOB)
    project.run(spark, TICKETS_API=url)
    assert (staged_ids(project), ids(spark, project, "silver")) == ([1, 2, 3], [1, 2, 3])
    monkeypatch.setenv("TICKETS_API", url)
    monkeypatch.setenv("ETL_WAREHOUSE", str(project.warehouse))

    assert main(["--conf-dir", str(project.conf), "forget", "tickets", "--subject", "ticket",
                 "--value", "2"]) == 0

    changed = {tuple(line.split()[:3]) for line in capsys.readouterr().out.splitlines()[2:]}
    assert {("staged", "tickets", "1"), ("bronze", "tickets", "1"),
            ("silver", "silver_tickets", "1")} <= changed
    assert [staged_ids(project), ids(spark, project, "bronze"), ids(spark, project, "silver")] \
        == [[1, 3]] * 3

    # the API still serves ticket 2: its new version is removed from the pages before parsing
    records += [ticket(2, "closed", 6), ticket(4, "open", 7)]
    second = project.run(spark, TICKETS_API=url)

    assert counts(second) == (1, 1, 0, 0)
    assert ("source tickets: 1 records held erased values and were removed from the staged "
            "pages on ingest") in second.notes
    assert [staged_ids(project), ids(spark, project, "bronze"), ids(spark, project, "silver")] \
        == [[1, 3, 4]] * 3
    assert project.watermark(spark, "tickets") == ("updated_at", dt.datetime(2026, 1, 1, 7))


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------

KAFKA_JOB = """
job: {name: clicks}
sources:
  clicks:
    type: kafka
    kafka:
      bootstrap_servers: %(bootstrap)s
      topics: [%(topic)s]
      schema: "id bigint, page string, ts timestamp"
      required: [page]
    bronze: bronze_clicks
targets:
  bronze_clicks: {layer: bronze, table: clicks}
  clicks:
    layer: silver
    table: clicks
    inputs: [clicks]
    mode: merge
    keys: [id]
    sequence_by: [ts]
    duplicates: latest
"""


def click(i: int, page: str, minute: int) -> str:
    return json.dumps({"id": i, "page": page, "ts": f"2026-01-01T08:{minute:02d}:00"})


def produce(spark, topic: str, values: list[str]) -> None:
    (spark.createDataFrame([(v,) for v in values], "value string")
     .withColumn("topic", F.lit(topic)).coalesce(1)
     .write.format("kafka").option("kafka.bootstrap.servers", BOOTSTRAP).save())


@pytest.mark.integration
def test_a_kafka_source_through_bronze_and_the_flow(spark, tmp_path):
    host, port = BOOTSTRAP.rsplit(":", 1)
    require_service("Kafka", host, int(port))
    topic = f"clicks_{uuid.uuid4().hex[:10]}"
    project = Project(tmp_path, "clicks", KAFKA_JOB % {"bootstrap": BOOTSTRAP, "topic": topic})
    produce(spark, topic, [click(1, "/a", 1), click(2, "/b", 2), "not json", click(3, "/c", 3),
                           json.dumps({**json.loads(click(5, "/e", 5)), "ref": "mail"})])

    first = project.run(spark)

    assert counts(first) == (5, 4, 1, 0)
    assert project.table(spark, "silver", "clicks").count() == 4
    assert_df_equality(  # the field the schema does not know is kept in bronze
        project.table(spark, "bronze", "clicks").where("_rescued_data IS NOT NULL")
        .select("id", "_rescued_data"),
        spark.createDataFrame([(5, '{"ref":"mail"}')], "id bigint, _rescued_data string"),
        ignore_nullable=True)

    produce(spark, topic, [click(1, "/z", 9), click(4, "/d", 4)])
    second = project.run(spark)
    third = project.run(spark)

    assert counts(second) == (2, 2, 0, 0)  # the rows bronze gained since the last run only
    assert counts(third) == (0, 0, 0, 0)
    assert project.table(spark, "bronze", "clicks").count() == 6
    assert_df_equality(
        project.table(spark, "silver", "clicks").select("id", "page"),
        spark.createDataFrame([(1, "/z"), (2, "/b"), (3, "/c"), (4, "/d"), (5, "/e")],
                              "id bigint, page string"),
        ignore_row_order=True, ignore_nullable=True)


@pytest.mark.integration
def test_messages_of_an_erased_subject_never_reach_bronze(spark, tmp_path):
    """The ledger of `etl forget` names a click id: later messages holding it are dropped
    before bronze's write, each micro-batch's count noted."""
    from etl.privacy import keyed_hash
    from etl.records import ERASURES
    from tests.conftest import TEST_PII_KEY

    host, port = BOOTSTRAP.rsplit(":", 1)
    require_service("Kafka", host, int(port))
    topic = f"clicks_{uuid.uuid4().hex[:10]}"
    subject = "personal_data:\n  subjects:\n    visitor: {found_in: {clicks: {column: id}}}\n"
    project = Project(tmp_path, "clicks", KAFKA_JOB % {"bootstrap": BOOTSTRAP, "topic": topic}
                      + subject)
    moment = dt.datetime(2026, 1, 1)
    ERASURES.append(spark, str(project.warehouse / "_etl" / "erasures"), [
        ("clicks", "visitor", keyed_hash(TEST_PII_KEY.encode(), "2"), [], [], 0, moment, moment,
         "forget-run")])
    produce(spark, topic, [click(1, "/a", 1), click(2, "/b", 2), click(3, "/c", 3),
                           click(2, "/d", 4)])

    run = project.run(spark)

    assert counts(run) == (2, 2, 0, 0)
    assert "source clicks: 2 rows held erased values and were filtered on ingest" in run.notes
    assert sorted(r.id for r in project.table(spark, "bronze", "clicks").collect()) == [1, 3]
    assert sorted(r.id for r in project.table(spark, "silver", "clicks").collect()) == [1, 3]


# --------------------------------------------------------------------------------------------
# Change feeds
# --------------------------------------------------------------------------------------------

CDF_JOB = """
job: {name: sync}
sources:
  customers:
    type: delta_cdf
    path: upstream/customers
    cdc: {keys: [id], deletes: soft}
targets:
  customers: {layer: silver, table: customers, inputs: [customers], mode: apply_changes}
"""


def test_a_delta_change_feed_through_the_flow(spark, tmp_path):
    project = Project(tmp_path, "sync", CDF_JOB)
    upstream = project.warehouse / "upstream" / "customers"
    spark.sql(f"CREATE TABLE delta.`{upstream}` (id INT, name STRING) USING DELTA "
              "TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    spark.sql(f"INSERT INTO delta.`{upstream}` VALUES (1, 'Ann'), (2, 'Bob')")  # version 1

    first = project.run(spark)
    spark.sql(f"""MERGE INTO delta.`{upstream}` t
        USING (SELECT * FROM VALUES (1, 'Anna', false), (2, 'Bob', true), (3, 'Cy', false)
               AS v(id, name, gone)) s
        ON t.id = s.id
        WHEN MATCHED AND s.gone THEN DELETE
        WHEN MATCHED THEN UPDATE SET name = s.name
        WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)""")  # version 2
    second = project.run(spark)
    third = project.run(spark)

    assert [counts(c) for c in (first, second, third)] == [
        (2, 2, 0, 0), (3, 3, 0, 0), (0, 0, 0, 0)]
    assert_df_equality(
        project.table(spark, "silver", "customers").select("id", "name", "_cdc_op", "_deleted"),
        spark.createDataFrame([(1, "Anna", "u", False), (2, "Bob", "d", True),
                               (3, "Cy", "c", False)],
                              "id int, name string, _cdc_op string, _deleted boolean"),
        ignore_row_order=True, ignore_nullable=True)
    assert project.watermark(spark, "customers") == ("_commit_version", 2)


PG_JOB = """
job: {name: replica}
staging: {enabled: true}
sources:
  accounts:
    type: pg_logical
    jdbc:
      url: jdbc:postgresql://${ETL_PG_HOST:-127.0.0.1}:${ETL_PG_PORT:-25432}/${ETL_PG_DB:-etl}
      driver: org.postgresql.Driver
      table: %(table)s
      credentials: {user_env: ETL_PG_USER, password_env: ETL_PG_PASSWORD}
    cdc: {keys: [id], slot: %(slot)s}
targets:
  accounts: {layer: silver, table: accounts, inputs: [accounts], mode: apply_changes}
"""


@pytest.mark.integration
def test_postgresql_logical_decoding_through_the_flow(spark, tmp_path, pg, pg_schema):
    slot = f"etl_{uuid.uuid4().hex[:10]}"
    table = f"{pg_schema}.accounts"
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, owner text NOT NULL)")
    pg.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
    pg.execute(f"INSERT INTO {table} VALUES (1, 'ann'), (2, 'bob')")
    project = Project(tmp_path, "replica", PG_JOB % {"table": table, "slot": slot})
    try:
        first = project.run(spark)
        pg.execute(f"UPDATE {table} SET owner = 'anna' WHERE id = 1")
        pg.execute(f"DELETE FROM {table} WHERE id = 2")
        pg.execute(f"INSERT INTO {table} VALUES (3, 'cy')")
        second = project.run(spark)
        third = project.run(spark)
    finally:
        pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                   "WHERE slot_name = %s", (slot,))

    assert [counts(c) for c in (first, second, third)] == [
        (2, 2, 0, 0), (3, 3, 0, 0), (0, 0, 0, 0)]
    assert_df_equality(
        project.table(spark, "silver", "accounts").select("id", "owner"),
        spark.createDataFrame([(1, "anna"), (3, "cy")], "id int, owner string"),
        ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# JDBC: a watermark never moves past the run's start (plus the allowed skew)
# --------------------------------------------------------------------------------------------

JDBC_JOB = """
job: {name: ledger}
staging: {enabled: true}
sources:
  entries:
    type: jdbc
    jdbc:
      url: jdbc:postgresql://${ETL_PG_HOST:-127.0.0.1}:${ETL_PG_PORT:-25432}/${ETL_PG_DB:-etl}
      driver: org.postgresql.Driver
      table: %(table)s
      credentials: {user_env: ETL_PG_USER, password_env: ETL_PG_PASSWORD}
      incremental: {column: updated_at, max_skew: 1 hour}
targets:
  entries: {layer: silver, table: entries, inputs: [entries], mode: merge, keys: [id],
            sequence_by: [updated_at], duplicates: latest}
"""


@pytest.mark.integration
def test_a_future_watermark_value_is_quarantined_and_never_moves_the_watermark(
        spark, tmp_path, pg, pg_schema):
    table = f"{pg_schema}.entries"
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, amount int, updated_at timestamp)")
    pg.execute(f"INSERT INTO {table} VALUES (1, 10, '2026-01-01 08:00'), (2, 20, '2026-01-01 09:00'),"
               " (3, 30, '2099-01-01 00:00')")  # a sentinel far in the future
    project = Project(tmp_path, "ledger", JDBC_JOB % {"table": table})

    first = project.run(spark)
    pg.execute(f"INSERT INTO {table} VALUES (4, 40, '2026-01-02 08:00')")
    second = project.run(spark)

    # the sentinel is read and quarantined by every run until the source fixes it; every
    # later row is still loaded, because the watermark stays below it
    assert counts(first) == (3, 2, 1, 0) and counts(second) == (2, 1, 1, 0)
    assert project.watermark(spark, "entries") == ("updated_at", dt.datetime(2026, 1, 2, 8))
    assert sorted(r["id"] for r in project.table(spark, "silver", "entries").collect()) == [1, 2, 4]
    quarantined = project.table(spark, "quarantine", "entries").collect()
    assert sorted((json.loads(r["record"])["id"], r["run_id"]) for r in quarantined) == sorted(
        [(3, first.run_id), (3, second.run_id)])
    assert quarantined[0]["reasons"][0].startswith(
        "updated_at: 2099-01-01 00:00:00 is after the run's start plus the allowed skew of "
        "1 hour (")
    assert any("rows with updated_at after the run's start" in n for n in first.notes)
