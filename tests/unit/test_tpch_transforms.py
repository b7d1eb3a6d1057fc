"""The tpch domain's reference typing (etl.transforms.tpch) on a handful of bronze-like orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from chispa import assert_df_equality

from etl.transforms.tpch import orders_reference

BRONZE = (
    "o_orderkey string, o_custkey string, o_orderstatus string, o_totalprice string, "
    "o_orderdate string, o_orderpriority string, o_clerk string, o_shippriority string, "
    "o_comment string, _corrupt_record string, _source_file string, "
    "_source_modified timestamp, _run_id string, _ingested_at timestamp"
)
TYPED = (
    "o_orderkey bigint, o_custkey bigint, o_orderstatus string, o_totalprice decimal(15,2), "
    "o_orderdate date, o_orderpriority string"
)
EARLY, LATE = dt.datetime(2026, 1, 1, 8), dt.datetime(2026, 1, 1, 9)


def order(key: str, price: str, file: str, modified: dt.datetime) -> tuple:
    return (key, "10", "O", price, "1996-01-02", "5-LOW", "c", "0", "x", None, file, modified,
            "r1", modified)


def test_orders_reference_keeps_the_latest_version_of_only_the_keys_asked_for(spark):
    bronze = spark.createDataFrame([
        order("1", "1.00", "orders.1.csv", EARLY),
        order("1", "2.00", "orders.2.csv", LATE),  # the newer version of order 1
        order(" 2", "3.00", "orders.1.csv", EARLY),  # typing trims the key
        order("2.5", "6.00", "orders.2.csv", LATE),  # newer, but not a key: not order 2
        order("3", "4.00", "orders.1.csv", EARLY),  # not asked for
        order("x", "5.00", "orders.1.csv", EARLY),  # does not type: not a reference row
    ], BRONZE)
    asked = spark.createDataFrame([(1,), (1,), (2,), (9,)], "o_orderkey bigint")

    got = bronze.transform(orders_reference, asked)

    expected = spark.createDataFrame([
        (1, 10, "O", D("2.00"), dt.date(1996, 1, 2), "5-LOW"),
        (2, 10, "O", D("3.00"), dt.date(1996, 1, 2), "5-LOW"),
    ], TYPED)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # without keys, every valid order (its latest version)
    assert sorted(r["o_orderkey"] for r in bronze.transform(orders_reference).collect()) == [1, 2, 3]
