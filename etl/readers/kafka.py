"""Kafka topics as a Structured Streaming source, and their messages parsed against a configured
schema (`parse_messages`). Loading them into Delta exactly once is the flow's work
(`etl.flow.kafka`).

* **Parsing**: a message's value is parsed as JSON with the configured schema. A message whose
  value is not JSON of that schema, or has a null in a ``required`` column, keeps its reasons in
  ``_errors``, its raw value in ``_record`` and ``_source_file`` = ``kafka topic=<topic>
  partition=<p> offset=<o>``, for the quarantine.

Example::

    stream = read_kafka(spark, config.source("events").kafka)
    parsed = batch.transform(parse_messages(schema, required=["id"]))
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl._typing import Transform
from etl.config import KafkaConfig
from etl.readers.json_records import json_fields
from etl.transforms.cleaning import ERRORS, RAW_RECORD

SOURCE_COLUMN = "_source_file"


def parse_messages(schema: T.StructType, required: list[str], extra: str = "rescue"
                   ) -> Transform:
    """Kafka rows (``topic``, ``partition``, ``offset``, ``value``...) -> the schema's columns
    (with ``_rescued_data``, the fields the schema does not know, unless ``extra`` is
    ``ignore`` or ``fail``: see `etl.readers.json_records.json_fields`), ``_errors``,
    ``_record`` (the value as text) and ``_source_file`` (``kafka topic=<t> partition=<p>
    offset=<o>``)."""

    def transform(df: DataFrame) -> DataFrame:
        value = F.col("value").cast("string")
        columns, reasons = json_fields(value, schema, required, extra)
        return df.select(
            *columns,
            reasons.alias(ERRORS),
            value.alias(RAW_RECORD),
            F.format_string("kafka topic=%s partition=%d offset=%d", "topic", "partition",
                            "offset").alias(SOURCE_COLUMN),
        )

    return transform


def read_kafka(spark: SparkSession, kafka: KafkaConfig) -> DataFrame:
    """The streaming frame of the configured topics (Spark's Kafka source columns)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("startingOffsets", kafka.starting_offsets)
    )
    if kafka.topics:
        reader = reader.option("subscribe", ",".join(kafka.topics))
    else:
        reader = reader.option("subscribePattern", kafka.subscribe_pattern)
    if kafka.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(kafka.max_offsets_per_trigger))
    return reader.options(**kafka.options).load()


__all__ = ["SOURCE_COLUMN", "parse_messages", "read_kafka"]
