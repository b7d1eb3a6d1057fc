"""The tables the three jobs write, compared with a checked-in description of what the version
before the flow layer wrote for the same input (tests/golden/<job>.json; see
scripts/table_digest.py for what a description holds and what it leaves out).

Each scenario runs its job several times over fixed input with fixed file times, so merges,
late and older versions, quarantine (typing and quality rules), backfills and incremental
extraction all leave their mark on the tables. ``ETL_GOLDEN_WRITE=1`` writes the descriptions
instead of comparing (only to record a deliberate change of the tables, said in the commit).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
from pathlib import Path

import pytest

from etl.config import load_job_config
from etl.runner import run_job

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights
import seed_shop
import table_digest

from tests.e2e.test_tpch_job import LINE_HEADER, land, land_first_load, line

pytestmark = pytest.mark.e2e
GOLDEN = ROOT / "tests" / "golden"
T0 = dt.datetime(2026, 1, 1, 8, 0)


def stamp(path: Path, hours: float) -> None:
    moment = (T0 + dt.timedelta(hours=hours)).timestamp()
    os.utime(path, (moment, moment))


def check(job: str, spark, warehouse: Path, landing: Path | None, extra: dict | None = None):
    described = table_digest.describe_warehouse(spark, warehouse, landing)
    described.update(extra or {})
    path = GOLDEN / f"{job}.json"
    if os.environ.get("ETL_GOLDEN_WRITE") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(described, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {path.relative_to(ROOT)}")
    expected = json.loads(path.read_text())
    assert table_digest.differences(expected, described) == []
    assert sorted(expected) == sorted(described)


# --------------------------------------------------------------------------------------------
# flights
# --------------------------------------------------------------------------------------------

def flights_rows(landing: Path) -> tuple[list[str], dict[tuple[str, str, str], list[str]]]:
    with (landing / "flights" / "flights_2013_02.csv").open() as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    key = [header.index(c) for c in ("carrier", "flight", "time_hour")]
    return header, {tuple(r[i] for i in key): r for r in rows}


def write_csv(path: Path, header: list[str], rows: list[list[str]], hours: float) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    stamp(path, hours)


def test_flights_tables(spark, tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    land_flights.land(landing, [1, 2], [1, 2])
    for name in land_flights.REFERENCES:
        stamp(landing / name / f"{name}.csv", 0)
    stamp(landing / "flights" / "flights_2013_01.csv", 1)
    stamp(landing / "flights" / "flights_2013_02.csv", 2)
    config = load_job_config("flights", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}", "lineage.enabled=false"])

    run_job(config, spark=spark)

    header, by_key = flights_rows(landing)
    at = {c: header.index(c) for c in ("arr_delay", "dep_delay", "distance", "dest")}
    picked = [by_key[k] for k in sorted(by_key)[:6]]
    corrected = []
    for i, row in enumerate(picked[:3]):
        fixed = list(row)
        fixed[at["arr_delay"]] = str(100 + i)
        corrected.append(fixed)
    unparsable = list(picked[3])
    unparsable[at["dep_delay"]] = "soon"
    no_distance = list(picked[4])
    no_distance[at["distance"]] = "0"
    write_csv(landing / "flights" / "flights_2013_02_fix.csv", header,
              [*corrected, unparsable, no_distance, ["2013", "2", "1", "517"]], 3)
    older = list(picked[5])
    older[at["dest"]] = "XXX"  # an older landed version: must not win
    write_csv(landing / "flights" / "flights_2013_02_old.csv", header, [older], -1)

    run_job(config, spark=spark)
    run_job(config, spark=spark, date_from=dt.date(2013, 1, 2), date_to=dt.date(2013, 2, 1))

    check("flights", spark, warehouse, landing)


# --------------------------------------------------------------------------------------------
# shop (PostgreSQL)
# --------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_shop_tables(spark, pg, pg_schema, tmp_path):
    seed_shop.seed(pg, pg_schema, customers=20, orders=60, seed=7)
    warehouse, export = tmp_path / "warehouse", tmp_path / "export"
    environ = {**os.environ, "ETL_SHOP_SCHEMA": pg_schema}
    config = load_job_config("shop", directory=ROOT / "conf", environ=environ, overrides=[
        f"paths.warehouse={warehouse}", f"exports.daily_revenue.path={export}", "lineage.enabled=false"])

    run_job(config, spark=spark)
    later = dt.datetime(2026, 1, 3, 10, 0)
    s = pg_schema
    pg.execute(f"UPDATE {s}.orders SET status = 'cancelled', updated_at = %s WHERE id = 1",
               (later,))
    pg.execute(f"INSERT INTO {s}.order_items VALUES (119, 2, 'mug', 2, 7.50, %s)", (later,))
    pg.execute(f"INSERT INTO {s}.customers VALUES (21, 'customer 21', 'c21@example.com', 'FR', %s)",
               (later,))
    pg.execute(f"UPDATE {s}.customers SET country = 'NL', updated_at = %s WHERE id = 5",
               (dt.datetime(2026, 1, 1, 10, 17),))  # a late commit inside the look-back
    run_job(config, spark=spark)

    exported = spark.read.option("header", "true").csv(str(export / "daily_revenue"))
    lines = sorted(",".join("" if v is None else v for v in r) for r in exported.collect())
    check("shop", spark, warehouse, None, {"export/daily_revenue": {
        "schema": exported.columns, "partition_columns": [], "properties": {},
        "rows": len(lines), "digest": table_digest._sha(lines), "columns": {}}})


# --------------------------------------------------------------------------------------------
# tpch
# --------------------------------------------------------------------------------------------

def test_tpch_tables(spark, tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    land_first_load(landing)
    config = load_job_config("tpch", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}", "lineage.enabled=false"])

    run_job(config, spark=spark)
    land(landing, "lineitem", "lineitem.3.csv", LINE_HEADER, [
        line(2, 1, "25", "2500.00", "0.05", "1996-03-01", flag="R"),
        line(2, 3, "1", "100.00", "0.00", "1996-05-02"),
        line(4, 1, "3", "300.00", "0.02", "1996-05-09"),  # an order not landed (yet)
    ], hours=2)
    land(landing, "lineitem", "lineitem.4.csv", LINE_HEADER, [
        line(2, 3, "2", "200.00", "0.00", "1996-05-02"),
        line(1, 2, "5", "500.00", "0.00", "x"),  # does not type
    ], hours=3)
    land(landing, "orders", "orders.2.csv",
         ["o_orderkey", "o_custkey", "o_orderstatus", "o_totalprice", "o_orderdate",
          "o_orderpriority", "o_clerk", "o_shippriority", "o_comment"],
         [["2", "10", "F", "2.00", "1996-01-03", "2-HIGH", "c", "0", "x"]], hours=2)
    run_job(config, spark=spark)

    check("tpch", spark, warehouse, landing)
