"""The shop domain's transforms: checking extracted rows, keeping the latest version of each row,
and the gold daily revenue.

Pure DataFrame -> DataFrame functions over rows as extracted from the shop database::

    checked = extracted.transform(check_rows(REQUIRED["orders"]))   # + _errors reasons
    valid, rejected = split_rejected(checked)
    silver_batch = valid.transform(latest_per_key(KEY, SEQUENCE))
    gold = daily_revenue(silver_orders, silver_items)
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl._typing import Transform
from etl.transforms.cleaning import require

KEY = ("id",)
#: A later ``updated_at`` is a newer version of a row.
SEQUENCE = ("updated_at",)
COLUMNS = {
    "customers": ("id", "name", "email", "country", "updated_at"),
    "orders": ("id", "customer_id", "status", "ordered_at", "updated_at"),
    "order_items": ("id", "order_id", "product", "quantity", "unit_price", "updated_at"),
}
REQUIRED = {
    "customers": ("id", "name", "country", "updated_at"),
    "orders": ("id", "customer_id", "status", "ordered_at", "updated_at"),
    "order_items": ("id", "order_id", "product", "quantity", "unit_price", "updated_at"),
}
CANCELLED = "cancelled"


def check_rows(columns: Sequence[str], required: Sequence[str], run_id: str) -> Transform:
    """Keep ``columns`` (in that order), add ``_run_id``, and a reason in ``_errors`` for each
    missing ``required`` value."""

    def transform(df: DataFrame) -> DataFrame:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"check_rows: columns {missing} not in {df.columns}")
        return (
            df.select(*columns)
            .withColumn("_run_id", F.lit(run_id))
            .transform(require(list(required)))
        )

    return transform


def order_dates(orders: DataFrame) -> DataFrame:
    """``id`` and ``order_date`` (the date of ``ordered_at``) of each order."""
    return orders.select("id", F.to_date("ordered_at").alias("order_date"))


def daily_revenue(orders: DataFrame, items: DataFrame) -> DataFrame:
    """Per ``order_date`` of the orders that were not cancelled: ``orders``, ``items`` (units
    sold) and ``revenue`` (sum of quantity times unit price, decimal(18,2)). An order without
    items counts as an order with no revenue; a day with only cancelled orders has no row."""
    lines = items.groupBy("order_id").agg(
        F.sum("quantity").alias("units"),
        F.sum(F.col("quantity") * F.col("unit_price")).alias("amount"),
    )
    kept = orders.where(F.col("status") != CANCELLED).transform(order_dates)
    return (
        kept.join(lines, kept["id"] == lines["order_id"], "left")
        .groupBy("order_date")
        .agg(
            F.count("id").alias("orders"),
            F.coalesce(F.sum("units"), F.lit(0)).cast("long").alias("items"),
            F.coalesce(F.sum("amount"), F.lit(0)).cast("decimal(18,2)").alias("revenue"),
        )
    )


__all__ = ["COLUMNS", "KEY", "REQUIRED", "SEQUENCE", "check_rows", "daily_revenue", "order_dates"]
