"""The tpch job end to end on a handful of hand-written TPC-H rows: a first load with a newer
version of a line, a line that does not type and a line the quality gate quarantines, then an
incremental run that MERGEs an update and an insert (landed twice: the older version is counted
as filtered) and rewrites gold for those months only."""

from __future__ import annotations

import csv
import datetime as dt
import os
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from etl.config import load_job_config
from etl.runner import run_job
from jobs.tpch import SILVER_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import tpch_by_hand

pytestmark = pytest.mark.e2e
T0 = dt.datetime(2026, 1, 1, 8, 0)

LINE_HEADER = ["l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity",
               "l_extendedprice", "l_discount", "l_tax", "l_returnflag", "l_linestatus",
               "l_shipdate", "l_commitdate", "l_receiptdate", "l_shipinstruct", "l_shipmode",
               "l_comment"]


def line(order: int, number: int, quantity: str, price: str, discount: str, shipped: str,
         flag: str = "N") -> list[str]:
    return [str(order), "10", "1", str(number), quantity, price, discount, "0.00", flag, "O",
            shipped, shipped, shipped, "NONE", "TRUCK", "note"]


def land(landing: Path, table: str, name: str, header: list[str], rows: list[list[str]],
         hours: int = 0) -> None:
    folder = landing / "tpch" / table
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    stamp = (T0 + dt.timedelta(hours=hours)).timestamp()
    os.utime(path, (stamp, stamp))


GOLD_SCHEMA = T.StructType([
    T.StructField("ship_month", T.DateType()),
    T.StructField("nation", T.StringType()),
    T.StructField("orders", T.LongType()),
    T.StructField("lines", T.LongType()),
    T.StructField("quantity", T.DecimalType(25, 2)),
    T.StructField("revenue", T.DecimalType(28, 4)),
])


def gold_rows(*rows: tuple) -> list[tuple]:
    return [(dt.date.fromisoformat(m), n, o, n_lines, D(q), D(r)) for m, n, o, n_lines, q, r in rows]


def land_first_load(landing: Path) -> None:
    land(landing, "nation", "nation.1.csv", ["n_nationkey", "n_name", "n_regionkey", "n_comment"],
         [["0", "ALGERIA", "0", "x"], ["1", "ARGENTINA", "1", "x"]])
    land(landing, "customer", "customer.1.csv",
         ["c_custkey", "c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal",
          "c_mktsegment", "c_comment"],
         [["10", "Customer#10", "a", "0", "p", "1.00", "BUILDING", "x"],
          ["20", "Customer#20", "a", "1", "p", "2.00", "MACHINERY", "x"]])
    land(landing, "orders", "orders.1.csv",
         ["o_orderkey", "o_custkey", "o_orderstatus", "o_totalprice", "o_orderdate",
          "o_orderpriority", "o_clerk", "o_shippriority", "o_comment"],
         [["1", "10", "O", "1.00", "1996-01-02", "5-LOW", "c", "0", "x"],
          ["2", "20", "F", "1.00", "1996-01-03", "1-URGENT", "c", "0", "x"],
          ["y", "20", "F", "1.00", "1996-01-03", "1-URGENT", "c", "0", "x"]])  # quarantined
    land(landing, "lineitem", "lineitem.1.csv", LINE_HEADER, [
        line(1, 1, "10", "1000.00", "0.10", "1996-03-13"),
        line(1, 2, "5", "500.00", "0.00", "1996-04-12"),
        line(2, 1, "20", "2000.00", "0.05", "1996-03-01", flag="R"),
        line(3, 1, "x", "100.00", "0.00", "1996-03-02"),  # does not type: quarantined
    ])
    land(landing, "lineitem", "lineitem.2.csv", LINE_HEADER, [
        line(1, 1, "12", "1200.00", "0.10", "1996-03-13"),  # newer version of (1, 1)
        line(2, 2, "0", "300.00", "0.00", "1996-03-20"),  # quantity 0: quarantined by the gate
    ], hours=1)


def tpch_config(landing: Path, warehouse: Path):
    return load_job_config("tpch", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing={landing}", "lineage.enabled=false"])


def test_tpch_first_load_then_merge(spark, tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    land_first_load(landing)
    config = tpch_config(landing, warehouse)

    first = run_job(config, spark=spark)

    assert (first.rows_read, first.rows_loaded, first.rows_quarantined, first.rows_filtered) == (
        6, 3, 2, 1)
    gold = spark.read.format("delta").load(str(warehouse / "gold" / "revenue_by_month_nation"))
    assert_df_equality(gold, spark.createDataFrame(gold_rows(
        ("1996-03-01", "ALGERIA", 1, 1, "12.00", "1080.0000"),
        ("1996-03-01", "ARGENTINA", 1, 1, "20.00", "1900.0000"),
        ("1996-04-01", "ALGERIA", 1, 1, "5.00", "500.0000"),
    ), GOLD_SCHEMA), ignore_row_order=True, ignore_nullable=True)
    quarantine = spark.read.format("delta").load(str(warehouse / "quarantine" / "order_lines"))
    assert sorted(r["reasons"] for r in quarantine.collect()) == [
        ["l_quantity: cannot parse 'x' as decimal(15,2)"],
        ["quantity_positive: a line has a positive quantity; other lines are quarantined"],
    ]
    # a reference row that does not type is quarantined under its source, once
    orders = spark.read.format("delta").load(str(warehouse / "quarantine" / "orders"))
    assert [(r["reasons"], r["source_file"].rsplit("/", 1)[1]) for r in orders.collect()] == [
        (["o_orderkey: cannot parse 'y' as bigint", "o_orderkey: required value missing"],
         "orders.1.csv"),
    ]

    land(landing, "lineitem", "lineitem.3.csv", LINE_HEADER, [
        line(2, 1, "25", "2500.00", "0.05", "1996-03-01", flag="R"),  # update
        line(2, 3, "1", "100.00", "0.00", "1996-05-02"),  # insert
    ], hours=2)
    land(landing, "lineitem", "lineitem.4.csv", LINE_HEADER, [
        line(2, 3, "2", "200.00", "0.00", "1996-05-02"),  # newer version of the insert
    ], hours=3)
    second = run_job(config, spark=spark)
    assert spark.read.format("delta").load(str(warehouse / "quarantine" / "orders")).count() == 1

    # the older version of (2, 3) is counted as filtered by the de-duplication itself
    assert (second.rows_read, second.rows_loaded, second.rows_quarantined, second.rows_filtered) == (
        3, 2, 0, 1)
    silver_write = next(w for w in second.writes if w.table == "silver/order_lines")
    # with the deletion vectors conf/jobs/tpch.yml enables, the update rewrites no file
    assert (silver_write.operation, silver_write.rows_inserted, silver_write.rows_updated,
            silver_write.files_removed) == ("MERGE", 1, 1, 0)
    silver = spark.read.format("delta").load(str(warehouse / "silver" / "order_lines"))
    assert sorted((r["l_orderkey"], r["l_linenumber"], r["l_quantity"], r["n_name"])
                  for r in silver.collect()) == [
        (1, 1, D("12.00"), "ALGERIA"), (1, 2, D("5.00"), "ALGERIA"),
        (2, 1, D("25.00"), "ARGENTINA"), (2, 3, D("2.00"), "ARGENTINA"),
    ]
    gold = spark.read.format("delta").load(str(warehouse / "gold" / "revenue_by_month_nation"))
    assert_df_equality(gold, spark.createDataFrame(gold_rows(
        ("1996-03-01", "ALGERIA", 1, 1, "12.00", "1080.0000"),
        ("1996-03-01", "ARGENTINA", 1, 1, "25.00", "2375.0000"),
        ("1996-04-01", "ALGERIA", 1, 1, "5.00", "500.0000"),
        ("1996-05-01", "ARGENTINA", 1, 1, "2.00", "200.0000"),
    ), GOLD_SCHEMA), ignore_row_order=True, ignore_nullable=True)


def test_the_hand_written_script_of_benchmark_b1_writes_what_the_job_writes(spark, tmp_path):
    """B1 compares the job with scripts/tpch_by_hand.py: the same silver rows and gold table
    (with the same line quarantined by typing and by the gate), or the ratio means nothing."""
    landing = tmp_path / "landing"
    land_first_load(landing)
    run_job(tpch_config(landing, tmp_path / "job"), spark=spark)
    rows = tpch_by_hand.run(spark, str(landing), str(tmp_path / "hand"))

    def table(root: str, layer: str, name: str):
        return spark.read.format("delta").load(str(tmp_path / root / layer / name))

    # the run's identity columns differ by design; every other silver column is compared
    columns = [c for c in SILVER_COLUMNS if c not in ("_run_id", "_ingested_at")]
    job_silver = table("job", "silver", "order_lines").select(*columns)
    assert job_silver.count() == 3
    assert_df_equality(table("hand", "silver", "order_lines").select(*columns), job_silver,
                       ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(table("hand", "gold", "revenue_by_month_nation"),
                       table("job", "gold", "revenue_by_month_nation"),
                       ignore_row_order=True, ignore_nullable=True)
    assert rows == 4  # the lines that typed, before the gate quarantined one
    assert table("hand", "quarantine", "order_lines").count() == 2
    assert table("job", "quarantine", "order_lines").count() == 2
