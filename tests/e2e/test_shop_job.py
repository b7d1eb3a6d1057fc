"""The shop job end to end against the real PostgreSQL and S3 API: a first run (silver equals
the database, its customers' names masked and e-mails pseudonymised as conf/jobs/shop.yml
declares, the staged extracts as landed; gold equals the same revenue computed by PostgreSQL,
watermarks, CSV export through s3a://), a re-run from staging without the database, an
incremental run with a late commit, and a failed run that leaves watermarks and tables
untouched."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality

from etl.config import load_job_config
from etl.errors import QualityGateError
from etl.privacy import key_of, keyed_hash
from etl.runner import run_job
from etl.staging import Staging
from etl.watermarks import WatermarkStore

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import seed_shop

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
TABLES = ("customers", "orders", "order_items")
PG_SCHEMAS = {
    "customers": "id long, name string, email string, country string, updated_at timestamp",
    "orders": "id long, customer_id long, status string, ordered_at timestamp, "
              "updated_at timestamp",
    "order_items": "id long, order_id long, product string, quantity int, "
                   "unit_price decimal(10,2), updated_at timestamp",
}
GOLD_SQL = """
SELECT o.ordered_at::date, count(*), coalesce(sum(l.units), 0)::bigint,
       coalesce(sum(l.amount), 0)::numeric(18, 2)
FROM {schema}.orders o
LEFT JOIN (SELECT order_id, sum(quantity) AS units, sum(quantity * unit_price) AS amount
           FROM {schema}.order_items GROUP BY order_id) l ON l.order_id = o.id
WHERE o.status <> 'cancelled'
GROUP BY 1
"""
GOLD_SCHEMA = "order_date date, orders long, items long, revenue decimal(18,2)"
LOOKBACK = dt.timedelta(minutes=10)
LATER = dt.datetime(2026, 1, 3, 10, 0)


class Shop:
    """A seeded schema and a warehouse of their own, and helpers to run the job and compare."""

    def __init__(self, spark, pg, schema: str, warehouse: Path):
        self.spark, self.pg, self.schema, self.warehouse = spark, pg, schema, warehouse

    def config(self, *overrides: str, schema: str | None = None):
        environ = {**os.environ, "ETL_SHOP_SCHEMA": schema or self.schema}
        return load_job_config("shop", directory=ROOT / "conf", environ=environ,
                               overrides=[f"paths.warehouse={self.warehouse}", *overrides])

    def run(self, *overrides: str, **kwargs):
        return run_job(self.config(*overrides), spark=self.spark, **kwargs)

    def table(self, layer: str, name: str, warehouse: Path | None = None):
        return self.spark.read.format("delta").load(str((warehouse or self.warehouse) / layer / name))

    def database(self, table: str):
        rows = self.pg.execute(f"SELECT * FROM {self.schema}.{table}").fetchall()
        return self.spark.createDataFrame(rows, PG_SCHEMAS[table])

    def silver_of(self, table: str):
        """What silver holds of the database's ``table``: customers' names masked (first
        character and ``***``) and e-mails replaced by their HMAC-SHA-256 under the job's key,
        computed here in Python."""
        rows = self.pg.execute(f"SELECT * FROM {self.schema}.{table}").fetchall()
        if table == "customers":
            key = key_of(self.config())
            rows = [(id_, f"{name[0]}***", None if email is None else keyed_hash(key, email),
                     country, updated_at) for id_, name, email, country, updated_at in rows]
        return self.spark.createDataFrame(rows, PG_SCHEMAS[table])

    def database_gold(self):
        rows = self.pg.execute(GOLD_SQL.format(schema=self.schema)).fetchall()
        return self.spark.createDataFrame(rows, GOLD_SCHEMA)

    def assert_silver_and_gold_match_the_database(self):
        for name in TABLES:
            assert_df_equality(self.table("silver", name).drop("_run_id"), self.silver_of(name),
                               ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
        assert_df_equality(self.table("gold", "daily_revenue"), self.database_gold(),
                           ignore_row_order=True, ignore_nullable=True)

    def max_updated_at(self) -> dict[str, dt.datetime]:
        return {t: self.pg.execute(f"SELECT max(updated_at) FROM {self.schema}.{t}").fetchone()[0]
                for t in TABLES}

    def rows_since(self, marks: dict[str, dt.datetime]) -> int:
        return sum(
            self.pg.execute(f"SELECT count(*) FROM {self.schema}.{t} WHERE updated_at > %s",
                            (marks[t] - LOOKBACK,)).fetchone()[0]
            for t in TABLES)

    def watermarks(self) -> dict[str, tuple[str, object]]:
        store = WatermarkStore(self.spark, str(self.warehouse / "_etl" / "state" / "watermarks"))
        return {w.source: (w.column, w.value) for w in store.all("shop")}


@pytest.fixture()
def shop(spark, pg, pg_schema, tmp_path):
    counts = seed_shop.seed(pg, pg_schema, customers=20, orders=60, seed=7)
    assert counts == {"customers": 20, "orders": 60, "order_items": 118}
    return Shop(spark, pg, pg_schema, tmp_path / "warehouse")


def test_first_run_export_and_rerun_from_staging_without_the_database(shop, s3, tmp_path):
    client, bucket = s3
    ctx = shop.run(f"exports.daily_revenue.path=s3a://{bucket}/exports")

    assert (ctx.rows_read, ctx.rows_loaded, ctx.rows_quarantined, ctx.rows_filtered) == (
        198, 198, 0, 0)
    shop.assert_silver_and_gold_match_the_database()
    assert shop.watermarks() == {t: ("updated_at", v) for t, v in shop.max_updated_at().items()}
    staged = sorted(p.relative_to(shop.warehouse / "staging").parts[0::2]
                    for p in (shop.warehouse / "staging").glob("*/*/*"))
    assert staged == [(t, ctx.run_id) for t in sorted(TABLES)]
    extracts = Staging(shop.spark, str(shop.warehouse / "staging"))
    for name in TABLES:  # as landed: personal values are changed on the way to silver only
        assert_df_equality(extracts.read(name, ctx.run_id).df, shop.database(name),
                           ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)

    exported = shop.spark.read.schema(GOLD_SCHEMA).option("header", "true").csv(
        f"s3a://{bucket}/exports/daily_revenue")
    assert_df_equality(exported, shop.table("gold", "daily_revenue"), ignore_row_order=True,
                       ignore_nullable=True)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len([k for k in keys if k.endswith(".csv")]) == 1

    # the same transform and load from the staged rows, into a warehouse with only the staging
    # area, and a configuration pointing at a schema that does not exist
    replay = Shop(shop.spark, shop.pg, "no_such_schema", tmp_path / "replay")
    (tmp_path / "replay").mkdir()
    (shop.warehouse / "staging").rename(tmp_path / "replay" / "staging")
    replayed = run_job(replay.config(), spark=shop.spark, from_staging=ctx.run_id)

    assert (replayed.rows_read, replayed.rows_loaded) == (198, 198)
    for layer, name in [("silver", t) for t in TABLES] + [("gold", "daily_revenue")]:
        assert_df_equality(
            replay.table(layer, name).drop("_run_id"), shop.table(layer, name).drop("_run_id"),
            ignore_row_order=True)
    assert replay.watermarks() == {}


def test_incremental_run_after_a_failed_one(shop):
    shop.run()
    marks = shop.max_updated_at()
    assert marks["customers"] == dt.datetime(2026, 1, 1, 10, 20)
    versions = {t: shop.table("silver", t).count() for t in TABLES}
    pg = shop.pg
    s = shop.schema
    pg.execute(f"UPDATE {s}.orders SET status = 'cancelled', updated_at = %s WHERE id = 1",
               (LATER,))
    pg.execute(f"INSERT INTO {s}.order_items VALUES (119, 2, 'mug', 2, 7.50, %s)", (LATER,))
    pg.execute(f"INSERT INTO {s}.customers VALUES (21, 'customer 21', NULL, 'FR', %s)", (LATER,))
    # a late commit, stamped 3 minutes before the watermark: inside the 10-minute look-back
    pg.execute(f"UPDATE {s}.customers SET country = 'NL', updated_at = %s WHERE id = 5",
               (marks["customers"] - dt.timedelta(minutes=3),))

    with pytest.raises(QualityGateError, match=r"quality gate failed for silver/customers: "
                       r"customer_email_complete \[error\]"):
        shop.run()
    assert shop.watermarks() == {t: ("updated_at", v) for t, v in marks.items()}
    assert {t: shop.table("silver", t).count() for t in TABLES} == versions
    assert shop.table("silver", "customers").where("id = 5").first().country != "NL"

    pg.execute(f"UPDATE {s}.customers SET email = 'c21@example.com', updated_at = %s "
               "WHERE id = 21", (LATER + dt.timedelta(minutes=1),))
    ctx = shop.run()

    # customers 19 and 20 (inside the look-back), 5 (late commit), 21; order 1 and the last
    # seeded order (inside the look-back); that order's item and the new item 119
    assert ctx.rows_read == shop.rows_since(marks) == 4 + 2 + 2
    writes = {w.table: (w.operation, w.rows_inserted, w.rows_updated) for w in ctx.writes}
    assert {t: writes[f"silver/{t}"] for t in TABLES} == {
        "customers": ("MERGE", 1, 1), "orders": ("MERGE", 0, 1), "order_items": ("MERGE", 1, 0)}
    shop.assert_silver_and_gold_match_the_database()
    assert shop.watermarks() == {t: ("updated_at", v) for t, v in shop.max_updated_at().items()}


PII_KEY = "a-test-key-of-the-erasure-ledger"


@pytest.mark.timeout(1800)  # the erase, then a rerun, a backfill or replay, and the no-op
def test_forget_a_customer_erases_every_copy_and_nothing_brings_it_back(
        shop, s3, monkeypatch, capfd):
    import json

    from etl.cli import main
    from etl.privacy import keyed_hash
    from tests.parquet_scan import scan

    _, bucket = s3
    export = f"s3a://{bucket}/forget-exports"
    first = shop.run(f"exports.daily_revenue.path={export}")
    s, pg = shop.schema, shop.pg
    customer, orders = pg.execute(f"SELECT customer_id, count(*) FROM {s}.orders GROUP BY 1 "
                                  "ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
    value = str(customer)
    for name, env in (("ETL_PII_KEY", PII_KEY), ("ETL_SHOP_SCHEMA", s),
                      ("ETL_WAREHOUSE", str(shop.warehouse)), ("ETL_SHOP_EXPORT", export)):
        monkeypatch.setenv(name, env)
    wh = shop.warehouse
    places = {("id",): [wh / "staging" / "customers", wh / "silver" / "customers"],
              ("customer_id",): [wh / "staging" / "orders", wh / "silver" / "orders"]}

    def copies() -> list[str]:
        found = []
        for columns, roots in places.items():
            found += scan(roots, value, skip=("_delta_log",), columns=columns)[0]
        return found

    assert len(copies()) >= 4  # each layer held the customer before
    forget = ["--conf-dir", str(ROOT / "conf"), "forget", "shop", "--subject", "customer",
              "--value", value]

    capfd.readouterr()  # the first run's log lines
    dry = main([*forget, "--dry-run"])
    out, _ = capfd.readouterr()
    assert dry == 0 and "dry run, nothing changed" in out.splitlines()[0]
    assert len(copies()) >= 4
    code = main(forget)

    out, err = capfd.readouterr()
    assert code == 0, err
    changed = {tuple(line.split()[:3]) for line in out.splitlines()[2:]}
    assert {("staged", "customers", "1"), ("staged", "orders", str(orders)),
            ("silver", "silver_customers", "1"), ("silver", "silver_orders", str(orders))} <= changed
    assert "recomputed gold_daily_revenue for" in out
    assert copies() == []
    assert shop.table("silver", "customers").where(f"id = {value}").count() == 0
    assert shop.table("silver", "orders").count() == 60 - orders
    for folder in (wh / "staging").glob("*/*/*"):
        manifest = json.loads((folder / "_manifest.json").read_text())
        assert manifest["rows"] == shop.spark.read.parquet(str(folder)).count()
    # gold and its export: the revenue of everyone else's orders, as PostgreSQL computes it
    gold_sql = GOLD_SQL.replace("WHERE o.status", f"WHERE o.customer_id <> {value} AND o.status")
    expected = shop.spark.createDataFrame(pg.execute(gold_sql.format(schema=s)).fetchall(),
                                          GOLD_SCHEMA)
    assert_df_equality(shop.table("gold", "daily_revenue"), expected, ignore_row_order=True,
                       ignore_nullable=True)
    exported = shop.spark.read.schema(GOLD_SCHEMA).option("header", "true").csv(
        f"{export}/daily_revenue")
    assert_df_equality(exported, expected, ignore_row_order=True, ignore_nullable=True)
    ledger = shop.spark.read.format("delta").load(str(wh / "_etl" / "erasures"))
    assert [(r.subject, r.value_hash, r.rows) for r in ledger.collect()] == [
        ("customer", keyed_hash(PII_KEY.encode(), value), 2 * (1 + orders))]

    # the database still has the customer: a change to it is extracted again, and filtered
    pg.execute(f"UPDATE {s}.customers SET updated_at = %s WHERE id = %s", (LATER, customer))
    pg.execute(f"UPDATE {s}.orders SET updated_at = %s WHERE customer_id = %s", (LATER, customer))
    rerun = shop.run()
    assert "source customers: 1 staged rows held erased values and were filtered on ingest" in (
        rerun.notes)
    assert (f"source orders: {orders} staged rows held erased values and were filtered on "
            "ingest") in rerun.notes
    replayed = shop.run(from_staging=first.run_id)
    assert replayed.rows_read == 198 - 1 - orders
    assert copies() == []
    assert shop.table("silver", "orders").count() == 60 - orders
    capfd.readouterr()

    assert main(forget) == 0
    assert capfd.readouterr().out.rstrip().endswith("; nothing to do")
    assert ledger.count() == 1
