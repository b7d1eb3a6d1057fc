"""The tpch domain's transforms (TPC-H ``lineitem``, ``orders``, ``customer``, ``nation``):
typing, the silver ``order_lines`` and the gold revenue by ship month and nation.

All are pure DataFrame -> DataFrame functions over bronze rows (strings as landed), built from
Spark's built-in functions only (no Python UDF), so the whole job runs in the JVM::

    typed = bronze.transform(type_lineitem)                  # + _errors reasons
    valid, rejected = split_rejected(typed)
    orders = bronze_orders.transform(type_orders)            # likewise customer, nation
    silver = valid.transform(order_lines(orders, customers, nations))
    gold = silver.transform(revenue_by_month_nation)
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl._typing import Transform
from etl.transforms.cleaning import (
    cast_columns,
    latest_per_key,
    parsed_value,
    reject_malformed,
    require,
    split_rejected,
)

LINE_KEY = ("l_orderkey", "l_linenumber")
#: The order in which versions of a line arrive: a later landed file wins.
SEQUENCE = ("_source_modified", "_source_file")
PARTITION_BY = ("ship_month",)
MONEY = "decimal(15,2)"

LINEITEM_TYPES = {
    "l_orderkey": "bigint", "l_partkey": "bigint", "l_suppkey": "bigint", "l_linenumber": "int",
    "l_quantity": MONEY, "l_extendedprice": MONEY, "l_discount": MONEY, "l_tax": MONEY,
    "l_returnflag": "string", "l_linestatus": "string", "l_shipdate": "date",
    "l_commitdate": "date", "l_receiptdate": "date", "l_shipinstruct": "string",
    "l_shipmode": "string",
}
ORDER_TYPES = {
    "o_orderkey": "bigint", "o_custkey": "bigint", "o_orderstatus": "string",
    "o_totalprice": MONEY, "o_orderdate": "date", "o_orderpriority": "string",
}
CUSTOMER_TYPES = {
    "c_custkey": "bigint", "c_name": "string", "c_nationkey": "int", "c_mktsegment": "string",
}
NATION_TYPES = {"n_nationkey": "int", "n_name": "string", "n_regionkey": "int"}

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


def _typer(types: dict[str, str], required: tuple[str, ...]) -> Transform:
    def transform(df: DataFrame) -> DataFrame:
        return (
            df.transform(reject_malformed())
            .transform(cast_columns(types))
            .transform(require(list(required)))
        )

    return transform


def type_lineitem(df: DataFrame) -> DataFrame:
    """Bronze lineitem rows -> typed rows (money as ``decimal(15,2)``, dates as ``date``) with
    reasons in ``_errors``; the key, ship date, price and discount are required. Adds
    ``ship_month`` (first day of the ship date's month, the silver partition)."""
    typed = df.transform(
        _typer(LINEITEM_TYPES, (*LINE_KEY, "l_shipdate", "l_extendedprice", "l_discount"))
    )
    return typed.withColumn("ship_month", F.trunc("l_shipdate", "month"))


def _reference(types: dict[str, str], key: str) -> Callable[..., DataFrame]:
    """Typed, valid reference rows: the latest landed version of each key, typed columns only.
    (Rows that fail typing are quarantined by the job when their file is ingested.)

    With ``only`` (a frame with a ``key`` column), only those keys: they are broadcast and
    matched before the typing, so a small batch's enrichment types and sorts the few rows it
    needs, not the whole table. The match is on the landed key as the typing parses it: a row
    it keeps either types to that key or is rejected by the typing, so the result is the same
    as matching after the typing."""

    def transform(df: DataFrame, only: DataFrame | None = None) -> DataFrame:
        if only is not None:
            asked = F.broadcast(only.select(F.col(key).alias("_asked")).distinct())
            df = df.join(asked, parsed_value(key, types[key]) == F.col("_asked"), "left_semi")
        valid, _ = split_rejected(df.transform(_typer(types, (key,))))
        valid = valid.select(*types, *SEQUENCE)  # only what is kept goes through the sort
        return valid.transform(latest_per_key([key], list(SEQUENCE))).select(*types)

    return transform


type_orders = _typer(ORDER_TYPES, ("o_orderkey",))
type_customer = _typer(CUSTOMER_TYPES, ("c_custkey",))
type_nation = _typer(NATION_TYPES, ("n_nationkey",))
orders_reference = _reference(ORDER_TYPES, "o_orderkey")
customer_reference = _reference(CUSTOMER_TYPES, "c_custkey")
nation_reference = _reference(NATION_TYPES, "n_nationkey")


def order_lines(
    orders: DataFrame, customers: DataFrame, nations: DataFrame, *, versions_as: str | None = None
) -> Transform:
    """Valid typed lines -> silver ``order_lines``: the latest version of each
    ``(l_orderkey, l_linenumber)`` (a later landed file wins), ``revenue``
    (``extendedprice * (1 - discount)``), enriched with its order, the order's customer and the
    customer's nation (left joins: a line whose order or customer is unknown keeps nulls there,
    for the quality rules to report). ``customers`` and ``nations`` are broadcast; ``orders``,
    a fact-sized table, is joined by key.

    With ``versions_as``, each line also carries that column (last): how many versions of it
    the input had (see `latest_per_key`'s ``count_as``), so a job can count the versions it
    dropped in the same pass that counts the lines."""

    def transform(df: DataFrame) -> DataFrame:
        # only the columns silver keeps go through the sort (not the raw record or comment);
        # partitioned by order key, the de-duplication's window and the join with ``orders``
        # share one shuffle of the lines
        latest = (
            df.select(*LINE_COLUMNS).repartition("l_orderkey")
            .transform(latest_per_key(list(LINE_KEY), list(SEQUENCE), count_as=versions_as))
        )
        buyers = customers.select(
            "c_custkey", "c_name", "c_mktsegment", "c_nationkey"
        ).join(F.broadcast(nations.select("n_nationkey", "n_name")),
               F.col("c_nationkey") == F.col("n_nationkey"), "left")
        with_orders = latest.join(
            orders.select("o_orderkey", "o_custkey", "o_orderstatus", "o_orderdate",
                          "o_orderpriority"),
            F.col("l_orderkey") == F.col("o_orderkey"), "left",
        )
        enriched = with_orders.join(
            F.broadcast(buyers), F.col("o_custkey") == F.col("c_custkey"), "left"
        )
        revenue = (F.col("l_extendedprice") * (F.lit(1) - F.col("l_discount"))).cast("decimal(18,4)")
        columns = [*SILVER_COLUMNS, versions_as] if versions_as else list(SILVER_COLUMNS)
        return enriched.withColumn("revenue", revenue).select(*columns)

    return transform


def revenue_by_month_nation(df: DataFrame) -> DataFrame:
    """Silver ``order_lines`` -> gold: per ``(ship_month, nation)`` the distinct orders, lines,
    quantity and revenue (lines without a known nation count under nation ``null``)."""
    return (
        df.groupBy("ship_month", F.col("n_name").alias("nation"))
        .agg(
            F.countDistinct("l_orderkey").alias("orders"),
            F.count(F.lit(1)).alias("lines"),
            F.sum("l_quantity").alias("quantity"),
            F.sum("revenue").alias("revenue"),
        )
        .select(*GOLD_COLUMNS)
    )
