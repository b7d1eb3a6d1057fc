"""The flights job's first load written by hand in plain PySpark, for benchmark F1
(scripts/bench_flights.py).

It reads the CSVs landed by scripts/land_flights.py and writes what a first load of
`etl run flights` publishes, with the same rows:

* silver ``flights``: the landed flights typed as declared (``NA`` and empty values null, other
  values trimmed, a row is left out when a value does not parse, a required value is missing,
  the record did not split into its columns or holds undecodable bytes), the latest version of
  each key, with the job's own ``derive`` and ``enrich`` (jobs/flights.py) joining the
  references typed the same way; one file per partition, partitioned as declared;
* gold ``carrier_daily_performance``: the job's aggregate of silver, read back.

What it leaves out is what the library adds: bronze, the quarantine, the quality audit, the
file ledger, run records and lineage. The landed columns and their types, the transforms' names,
the tables, keys, sequence and partition columns all come from the job's configuration
(`etl.config.load_job_config("flights")`), as the job reads them.

Usage (inside a SparkSession with Delta): ``run(spark, config)``, ``config`` being the flights
job's configuration with its paths set; returns the rows written to silver.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import operator

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.config import JobConfig, SourceConfig
from etl.context import Warehouse

#: The batch source, its silver target and the gold target built from silver.
FLIGHTS, SILVER, GOLD = "flights", "silver_flights", "gold_performance"
CORRUPT = "_corrupt_record"
WHOLE_NUMBERS = ("int", "bigint")


def landed(spark: SparkSession, config: JobConfig, name: str) -> DataFrame:
    """Source ``name``'s landed CSVs, every column a string, with the file's path and
    modification time (``_source_file``, ``_source_modified``) and ``_corrupt_record``."""
    source = config.sources[name]
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*source.columns, CORRUPT]])
    return (
        spark.read.schema(schema)
        .options(**source.options, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT)
        .csv(f"{config.paths.landing}/{source.path}/{source.pattern}")
        .select("*", F.col("_metadata.file_path").alias("_source_file"),
                F.col("_metadata.file_modification_time").alias("_source_modified"))
    )


def typed(rows: DataFrame, source: SourceConfig) -> DataFrame:
    """The rows whose every value is usable, with the declared ``types``; other columns kept."""

    def text(name: str) -> Column:
        trimmed = F.trim(name)
        return F.when(trimmed.isin(source.na_values), None).otherwise(trimmed)

    def value(name: str) -> Column:
        type_ = source.types[name]
        cast = text(name).cast(type_)
        return F.when(text(name).rlike(r"^[+-]?\d+$"), cast) if type_ in WHOLE_NUMBERS else cast

    usable = [F.col(CORRUPT).isNull()]
    usable += [F.coalesce(F.instr(name, "\ufffd") == 0, F.lit(True)) for name in source.types]
    usable += [text(name).isNull() | value(name).isNotNull()
               for name, type_ in source.types.items() if type_ != "string"]
    usable += [value(name).isNotNull() for name in source.required]
    return rows.where(functools.reduce(operator.and_, usable)).select(
        *[value(c).alias(c) if c in source.types else c for c in rows.columns if c != CORRUPT])


def latest(rows: DataFrame, keys: list[str], sequence: list[str]) -> DataFrame:
    """One row per key: the greatest by ``sequence``, ties broken by the other columns."""
    others = [c for c in rows.columns if c not in keys and c not in sequence]
    order = [F.col(c).desc_nulls_last() for c in [*sequence, *others]]
    ranked = rows.withColumn("_rank", F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))
    return ranked.where("_rank = 1").drop("_rank")


def run(spark: SparkSession, config: JobConfig) -> int:
    """Load everything landed for the flights job into its warehouse's silver and gold."""
    transforms = importlib.import_module(config.job.transforms)
    silver, gold = config.targets[SILVER], config.targets[GOLD]
    warehouse = Warehouse.at(config.paths.warehouse)
    references = {
        name: typed(landed(spark, config, name), config.sources[name])
        .select(*config.sources[name].types)
        for name in silver.references
    }
    source = config.sources[FLIGHTS]
    flights = (
        latest(typed(landed(spark, config, FLIGHTS), source), silver.keys, silver.sequence_by)
        .withColumns({"_run_id": F.lit("by-hand"),
                      "_ingested_at": F.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None))})
    )
    if source.derive:
        flights = getattr(transforms, source.derive)(flights)
    assert silver.transform is not None and gold.transform is not None
    rows = getattr(transforms, silver.transform)(**{FLIGHTS: flights}, **references)

    silver_path = warehouse.table(silver.layer, silver.table)
    (rows.repartition(*silver.partition_by).write.format("delta")
     .partitionBy(*silver.partition_by).mode("overwrite").save(silver_path))
    published = spark.read.format("delta").load(silver_path)
    (getattr(transforms, gold.transform)(**{name: published for name in gold.inputs})
     .write.format("delta")
     .partitionBy(*gold.partition_by).mode("overwrite")
     .save(warehouse.table(gold.layer, gold.table)))
    return published.count()
