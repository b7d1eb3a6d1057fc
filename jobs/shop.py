"""The shop job's transforms (PostgreSQL ``customers``, ``orders``, ``order_items``);
conf/jobs/shop.yml declares the rest: the three tables are extracted incrementally, staged,
checked and merged into silver by id with no Python at all; only gold needs a page::

    gold = daily_revenue(silver_orders, silver_order_items)
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

CANCELLED = "cancelled"


def daily_revenue(silver_orders: DataFrame, silver_order_items: DataFrame) -> DataFrame:
    """Per ``order_date`` of the orders that were not cancelled: ``orders``, ``items`` (units
    sold) and ``revenue`` (sum of quantity times unit price, decimal(18,2)). An order without
    items counts as an order with no revenue; a day with only cancelled orders has no row."""
    lines = silver_order_items.groupBy("order_id").agg(
        F.sum("quantity").alias("units"),
        F.sum(F.col("quantity") * F.col("unit_price")).alias("amount"),
    )
    kept = silver_orders.where(F.col("status") != CANCELLED).select(
        "id", F.to_date("ordered_at").alias("order_date"))
    return (
        kept.join(lines, kept["id"] == lines["order_id"], "left")
        .groupBy("order_date")
        .agg(
            F.count("id").alias("orders"),
            F.coalesce(F.sum("units"), F.lit(0)).cast("long").alias("items"),
            F.coalesce(F.sum("amount"), F.lit(0)).cast("decimal(18,2)").alias("revenue"),
        )
    )


def touched_order_dates(batches: Mapping[str, DataFrame], tables: Mapping[str, DataFrame]
                        ) -> DataFrame:
    """The order dates whose revenue a run changed: those of the orders in the batch and of
    the orders of the items in the batch (``order_date``)."""
    ids = batches["silver_orders"].select("id").union(
        batches["silver_order_items"].select(F.col("order_id").alias("id")))
    return (tables["silver_orders"].join(ids.distinct(), "id")
            .select(F.to_date("ordered_at").alias("order_date")))
