"""The tpch job's references as the flow builds them from conf/jobs/tpch.yml (typed, the latest
version of each key), a small batch's narrowed ``orders``, and jobs/tpch.py's ``order_lines``,
on a handful of bronze-like rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from pathlib import Path

from chispa import assert_df_equality

from etl.config import load_job_config
from etl.flow.build import reference, rows_for, typed
from etl.flow.landing import Landed
from etl.flow.plan import make_plan
from etl.runner import new_context
from etl.transforms.cleaning import split_rejected

CONFIG = load_job_config("tpch", directory=Path(__file__).resolve().parents[2] / "conf")
PLAN = make_plan(CONFIG)
METADATA = ("_corrupt_record string, _source_file string, _source_modified timestamp, "
            "_run_id string, _ingested_at timestamp")
BRONZE = (
    "o_orderkey string, o_custkey string, o_orderstatus string, o_totalprice string, "
    "o_orderdate string, o_orderpriority string, o_clerk string, o_shippriority string, "
    f"o_comment string, {METADATA}"
)
TYPED = (
    "o_orderkey bigint, o_custkey bigint, o_orderstatus string, o_totalprice decimal(15,2), "
    "o_orderdate date, o_orderpriority string"
)
EARLY, LATE = dt.datetime(2026, 1, 1, 8), dt.datetime(2026, 1, 1, 9)


def order(key: str, price: str, file: str, modified: dt.datetime, customer: str = "10") -> tuple:
    return (key, customer, "O", price, "1996-01-02", "5-LOW", "c", "0", "x", None, file,
            modified, "r1", modified)


def landed(name: str, df) -> Landed:
    return Landed(name, df, columns=tuple(CONFIG.source(name).columns))


def test_the_orders_reference_is_the_latest_valid_version_of_each_order(spark):
    bronze = spark.createDataFrame([
        order("1", "1.00", "orders.1.csv", EARLY),
        order("1", "2.00", "orders.2.csv", LATE),  # the newer version of order 1
        order(" 2", "3.00", "orders.1.csv", EARLY),  # typing trims the key
        order("2.5", "6.00", "orders.2.csv", LATE),  # newer, but not a key: not order 2
        order("x", "5.00", "orders.1.csv", EARLY),  # does not type: not a reference row
    ], BRONZE)

    table, rejected = reference(PLAN, new_context(CONFIG), landed("orders", bronze))

    expected = spark.createDataFrame([
        (1, 10, "O", D("2.00"), dt.date(1996, 1, 2), "5-LOW"),
        (2, 10, "O", D("3.00"), dt.date(1996, 1, 2), "5-LOW"),
    ], TYPED)
    assert_df_equality(table, expected, ignore_row_order=True, ignore_nullable=True)
    assert sorted(r["_errors"][0] for r in rejected.collect()) == [
        "o_orderkey: cannot parse '2.5' as bigint", "o_orderkey: cannot parse 'x' as bigint"]


LINE = (
    "l_orderkey string, l_partkey string, l_suppkey string, l_linenumber string, "
    "l_quantity string, l_extendedprice string, l_discount string, l_tax string, "
    "l_returnflag string, l_linestatus string, l_shipdate string, l_commitdate string, "
    f"l_receiptdate string, l_shipinstruct string, l_shipmode string, l_comment string, {METADATA}"
)


def line(order_key: str, number: str, file: str, modified: dt.datetime) -> tuple:
    return (order_key, "1", "1", number, "3", "30.00", "0.10", "0.00", "N", "O", "1996-03-13",
            "1996-03-13", "1996-03-14", "NONE", "TRUCK", "c", None, file, modified, "r1",
            modified)


def test_a_narrowed_orders_reference_gives_the_rows_of_the_whole_one(spark):
    """A small merge batch reads only the orders its lines name (targets.silver_order_lines.
    narrow): the silver rows are the same as with every order."""
    ctx = new_context(CONFIG)
    refs = {
        "orders": reference(PLAN, ctx, landed("orders", spark.createDataFrame(
            [order(str(k), "1.00", "orders.1.csv", EARLY, customer="20") for k in range(1, 6)],
            BRONZE)))[0],
        "customer": reference(PLAN, ctx, landed("customer", spark.createDataFrame(
            [("20", "Customer#20", "a", "1", "p", "2.00", "MACHINERY", "x", None, "c.csv", EARLY,
              "r1", EARLY)],
            "c_custkey string, c_name string, c_address string, c_nationkey string, "
            f"c_phone string, c_acctbal string, c_mktsegment string, c_comment string, {METADATA}"
        )))[0],
        "nation": reference(PLAN, ctx, landed("nation", spark.createDataFrame(
            [("1", "ARGENTINA", "1", "x", None, "n.csv", EARLY, "r1", EARLY)],
            f"n_nationkey string, n_name string, n_regionkey string, n_comment string, {METADATA}"
        )))[0],
    }
    lines = spark.createDataFrame([line("2", "1", "l.1.csv", EARLY), line("4", "1", "l.1.csv", EARLY),
                                   line("4", "1", "l.2.csv", LATE), line("9", "1", "l.2.csv", LATE)],
                                  LINE)
    valid, _ = split_rejected(typed(PLAN, ctx, landed("lineitem", lines)))
    built = PLAN.target_of("lineitem")

    narrowed = rows_for(PLAN, built, valid, refs, narrow=True)
    whole = rows_for(PLAN, built, valid, refs, narrow=False)

    assert_df_equality(narrowed, whole, ignore_row_order=True)
    assert sorted((r["l_orderkey"], r["o_custkey"], r["n_name"], r["_etl_versions"])
                  for r in narrowed.collect()) == [(2, 20, "ARGENTINA", 1),
                                                   (4, 20, "ARGENTINA", 2), (9, None, None, 1)]
