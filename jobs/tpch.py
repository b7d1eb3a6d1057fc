"""The tpch job's transforms (TPC-H ``lineitem`` with ``orders``, ``customer``, ``nation``);
conf/jobs/tpch.yml declares the rest (typing, the latest version of each key, the gates).

Spark built-in functions only (no Python UDF), so the whole job runs in the JVM::

    silver = order_lines(lines.transform(ship_month), orders, customer, nation)
    gold = revenue_by_month_nation(silver)
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SILVER_COLUMNS = (
    "l_orderkey", "l_linenumber", "ship_month", "l_partkey", "l_suppkey",
    "l_quantity", "l_extendedprice", "l_discount", "l_tax", "revenue",
    "l_returnflag", "l_linestatus", "l_shipdate", "l_commitdate", "l_receiptdate",
    "l_shipinstruct", "l_shipmode",
    "o_custkey", "o_orderstatus", "o_orderdate", "o_orderpriority",
    "c_name", "c_mktsegment", "c_nationkey", "n_name",
    "_source_file", "_source_modified", "_run_id", "_ingested_at",
)
GOLD_COLUMNS = ("ship_month", "nation", "orders", "lines", "quantity", "revenue")
#: The columns of a line that silver keeps (the others come from the enrichment).
LINE_COLUMNS = tuple(
    c for c in SILVER_COLUMNS if c != "revenue" and not c.startswith(("o_", "c_", "n_"))
)


def ship_month(lines: DataFrame) -> DataFrame:
    """Typed lines plus ``ship_month``: the first day of the ship date's month (the silver
    partition)."""
    return lines.withColumn("ship_month", F.trunc("l_shipdate", "month"))


def order_lines(lineitem: DataFrame, orders: DataFrame, customer: DataFrame,
                nation: DataFrame) -> DataFrame:
    """Silver ``order_lines``: each line with ``revenue`` (``extendedprice * (1 -
    discount)``), its order, the order's customer and the customer's nation (left joins on the
    references' unique keys: a line whose order or customer is unknown keeps nulls there, for
    the quality rules to report). ``customer`` and ``nation`` are broadcast; ``orders``, a
    fact-sized table, is joined by key.

    Only the columns silver keeps go through the shuffle (not the raw record or the comment);
    partitioned by order key, the lines are shuffled once for the join with ``orders`` and the
    de-duplication by ``(l_orderkey, l_linenumber)`` that follows it."""
    lines = lineitem.select(*LINE_COLUMNS).repartition("l_orderkey")
    buyers = customer.select("c_custkey", "c_name", "c_mktsegment", "c_nationkey").join(
        F.broadcast(nation.select("n_nationkey", "n_name")),
        F.col("c_nationkey") == F.col("n_nationkey"), "left")
    with_orders = lines.join(
        orders.select("o_orderkey", "o_custkey", "o_orderstatus", "o_orderdate",
                      "o_orderpriority"),
        F.col("l_orderkey") == F.col("o_orderkey"), "left",
    )
    enriched = with_orders.join(F.broadcast(buyers), F.col("o_custkey") == F.col("c_custkey"),
                                "left")
    revenue = (F.col("l_extendedprice") * (F.lit(1) - F.col("l_discount"))).cast("decimal(18,4)")
    return enriched.withColumn("revenue", revenue).select(*SILVER_COLUMNS)


def revenue_by_month_nation(silver_order_lines: DataFrame) -> DataFrame:
    """Per ``(ship_month, nation)`` the distinct orders, lines, quantity and revenue (lines
    without a known nation count under nation ``null``)."""
    return (
        silver_order_lines.groupBy("ship_month", F.col("n_name").alias("nation"))
        .agg(
            F.countDistinct("l_orderkey").alias("orders"),
            F.count(F.lit(1)).alias("lines"),
            F.sum("l_quantity").alias("quantity"),
            F.sum("revenue").alias("revenue"),
        )
        .select(*GOLD_COLUMNS)
    )
