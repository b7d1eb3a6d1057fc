"""The tpch job written by hand in plain PySpark, for benchmark B1 (scripts/bench_tpch.py).

It does the work of a first load of `etl run tpch` and writes the same tables with the same
rows: bronze (four Delta tables with the landing metadata columns), lines that fail typing
to quarantine, silver ``order_lines`` (latest version per key, enriched, partitioned by ship
month), the checks of conf/jobs/tpch.yml as one aggregation (a failed error rule stops before
silver), and gold ``revenue_by_month_nation``. What it does not do is what the library adds:
config, file ledger, run log, quality metrics history, lineage events.

Usage (inside a SparkSession with Delta): ``run(spark, landing, warehouse)``.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

COLUMNS = {
    "lineitem": ["l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity",
                 "l_extendedprice", "l_discount", "l_tax", "l_returnflag", "l_linestatus",
                 "l_shipdate", "l_commitdate", "l_receiptdate", "l_shipinstruct", "l_shipmode",
                 "l_comment"],
    "orders": ["o_orderkey", "o_custkey", "o_orderstatus", "o_totalprice", "o_orderdate",
               "o_orderpriority", "o_clerk", "o_shippriority", "o_comment"],
    "customer": ["c_custkey", "c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal",
                 "c_mktsegment", "c_comment"],
    "nation": ["n_nationkey", "n_name", "n_regionkey", "n_comment"],
}
MONEY = "decimal(15,2)"
LINE_TYPES = {"l_orderkey": "bigint", "l_partkey": "bigint", "l_suppkey": "bigint",
              "l_linenumber": "int", "l_quantity": MONEY, "l_extendedprice": MONEY,
              "l_discount": MONEY, "l_tax": MONEY, "l_shipdate": "date", "l_commitdate": "date",
              "l_receiptdate": "date"}
INTEGRAL = {"bigint", "int"}


def _bronze(spark: SparkSession, landing: str, warehouse: str, table: str) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType()) for c in COLUMNS[table]]
                          + [T.StructField("_corrupt_record", T.StringType())])
    raw = (
        spark.read.schema(schema)
        .options(header="true", mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt_record",
                 enforceSchema="false")
        .csv(f"{landing}/tpch/{table}/*.csv")
        .select("*", F.col("_metadata.file_path").alias("_source_file"),
                F.col("_metadata.file_modification_time").alias("_source_modified"),
                F.lit("by-hand").alias("_run_id"),
                F.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias("_ingested_at"))
    )
    path = f"{warehouse}/bronze/tpch_{table}"
    raw.write.format("delta").mode("overwrite").save(path)
    return spark.read.format("delta").load(path)


def _cast(name: str, type_: str) -> F.Column:
    value = F.trim(name)
    if type_ in INTEGRAL:
        return F.when(value.rlike(r"^[+-]?\d+$"), value.cast(type_))
    return value.cast(type_)


def _latest(df: DataFrame, keys: list[str]) -> DataFrame:
    order = [F.col("_source_modified").desc(), F.col("_source_file").desc()]
    rest = [F.col(c).desc_nulls_last() for c in df.columns
            if c not in keys and c not in ("_source_modified", "_source_file")]
    window = Window.partitionBy(*keys).orderBy(*order, *rest)
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def _reasons(*checks: tuple[Column, Column]) -> Column:
    """The reason of each ``(condition, reason)`` that holds, as an array (``concat`` of
    one-element arrays: compiled to code, where ``array_compact`` is a lambda that Spark
    interprets row by row)."""
    none = F.array().cast("array<string>")
    return F.concat(*[F.when(c & r.isNotNull(), F.array(r)).otherwise(none) for c, r in checks])


def run(spark: SparkSession, landing: str, warehouse: str) -> int:
    """Load everything landed under ``landing/tpch`` into ``warehouse``; returns silver rows."""
    lines = _bronze(spark, landing, warehouse, "lineitem")
    orders = _bronze(spark, landing, warehouse, "orders")
    customers = _bronze(spark, landing, warehouse, "customer")
    nations = _bronze(spark, landing, warehouse, "nation")

    typed = lines.select(
        *[_cast(c, LINE_TYPES[c]).alias(c) if c in LINE_TYPES else F.trim(c).alias(c)
          for c in COLUMNS["lineitem"] if c != "l_comment"],
        "_corrupt_record", "_source_file", "_source_modified", "_run_id", "_ingested_at",
        F.to_json(F.struct(*COLUMNS["lineitem"])).alias("_record"),
        _reasons(
            *[(F.trim(c).isNotNull() & _cast(c, t).isNull(),
               F.format_string(f"{c}: cannot parse '%s' as {t}", F.trim(c)))
              for c, t in LINE_TYPES.items()],
            *[(_cast(c, LINE_TYPES[c]).isNull(), F.lit(f"{c}: required value missing"))
              for c in ("l_orderkey", "l_linenumber", "l_shipdate", "l_extendedprice",
                        "l_discount")],
            (F.col("_corrupt_record").isNotNull(),
             F.lit("malformed record: wrong number of fields")),
        ).alias("_errors"),
    ).withColumn("ship_month", F.trunc("l_shipdate", "month"))
    bad = typed.where(F.size("_errors") > 0)
    if not bad.isEmpty():
        bad.select("_source_file", "_errors", "_record").write.format("delta").mode("append") \
            .save(f"{warehouse}/quarantine/order_lines")

    order_cols = ["o_orderkey", "o_custkey", "o_orderstatus", "o_orderdate", "o_orderpriority"]
    typed_orders = _latest(orders.select(
        _cast("o_orderkey", "bigint").alias("o_orderkey"),
        _cast("o_custkey", "bigint").alias("o_custkey"), F.trim("o_orderstatus").alias(
            "o_orderstatus"), F.trim("o_orderdate").cast("date").alias("o_orderdate"),
        F.trim("o_orderpriority").alias("o_orderpriority"), "_source_modified", "_source_file",
    ).where("o_orderkey IS NOT NULL"), ["o_orderkey"]).select(*order_cols)
    typed_customers = _latest(customers.select(
        _cast("c_custkey", "bigint").alias("c_custkey"), F.trim("c_name").alias("c_name"),
        _cast("c_nationkey", "int").alias("c_nationkey"),
        F.trim("c_mktsegment").alias("c_mktsegment"), "_source_modified", "_source_file",
    ).where("c_custkey IS NOT NULL"), ["c_custkey"])
    typed_nations = _latest(nations.select(
        _cast("n_nationkey", "int").alias("n_nationkey"), F.trim("n_name").alias("n_name"),
        "_source_modified", "_source_file",
    ).where("n_nationkey IS NOT NULL"), ["n_nationkey"])
    buyers = typed_customers.select("c_custkey", "c_name", "c_mktsegment", "c_nationkey").join(
        F.broadcast(typed_nations.select("n_nationkey", "n_name")),
        F.col("c_nationkey") == F.col("n_nationkey"), "left")

    valid = typed.where(F.size("_errors") == 0).drop("_errors", "_record", "_corrupt_record")
    silver = (
        # partitioned by order key: the window and the join with orders share one shuffle
        _latest(valid.repartition("l_orderkey"), ["l_orderkey", "l_linenumber"])
        .join(typed_orders, F.col("l_orderkey") == F.col("o_orderkey"), "left")
        .join(F.broadcast(buyers), F.col("o_custkey") == F.col("c_custkey"), "left")
        .withColumn("revenue", (F.col("l_extendedprice") * (1 - F.col("l_discount")))
                    .cast("decimal(18,4)"))
        .drop("o_orderkey", "c_custkey", "n_nationkey")
        .persist()
    )
    rows = silver.count()

    # the checks of conf/jobs/tpch.yml
    dupes = silver.groupBy("l_orderkey", "l_linenumber").count().where("count > 1").limit(1)
    stats = silver.agg(
        F.sum(F.when((F.col("l_discount") < 0) | (F.col("l_discount") > 0.1), 1).otherwise(0))
        .alias("discount"),
        F.sum(F.when(~F.col("l_returnflag").isin("A", "N", "R"), 1).otherwise(0)).alias("flag"),
        F.sum(F.when(F.col("l_receiptdate") < F.col("l_shipdate"), 1).otherwise(0))
        .alias("received"),
        F.sum(F.when(F.col("o_orderdate").isNull(), 1).otherwise(0)).alias("no_order"),
        F.sum(F.when(F.col("n_name").isNull(), 1).otherwise(0)).alias("no_nation"),
        F.sum(F.when(F.col("l_quantity") < 1, 1).otherwise(0)).alias("quantity"),
    ).first()
    if dupes.count() or stats["discount"] or stats["flag"] or stats["received"]:
        raise RuntimeError(f"quality gate failed: {stats}")
    publish = silver
    if stats["quantity"]:
        silver.where("l_quantity < 1").select(
            "_source_file", F.array(F.lit("quantity_positive")).alias("_errors"),
            F.to_json(F.struct(*[c for c in COLUMNS["lineitem"] if c in silver.columns]))
            .alias("_record"),
        ).write.format("delta").mode("append").save(f"{warehouse}/quarantine/order_lines")
        publish = silver.where("l_quantity >= 1")

    silver_path = f"{warehouse}/silver/order_lines"
    publish.repartition("ship_month").write.format("delta").partitionBy("ship_month") \
        .mode("overwrite").save(silver_path)
    (
        spark.read.format("delta").load(silver_path)
        .groupBy("ship_month", F.col("n_name").alias("nation"))
        .agg(F.countDistinct("l_orderkey").alias("orders"), F.count(F.lit(1)).alias("lines"),
             F.sum("l_quantity").alias("quantity"), F.sum("revenue").alias("revenue"))
        .write.format("delta").mode("overwrite").save(f"{warehouse}/gold/revenue_by_month_nation")
    )
    silver.unpersist()
    return rows
