"""Kafka topics into a Delta table with Structured Streaming, exactly once (`load_kafka`):
how the flow lands a ``kafka`` source in its bronze table (messages read with
`etl.readers.kafka`).

* **Scheduled runs** (``trigger: available_now``): a run reads every message published since the
  previous run, in micro-batches of at most ``max_offsets_per_trigger``, and stops.
* **Continuous mode** (``trigger: processing_time``): `start_kafka_load` returns the running
  query; it starts a micro-batch every ``interval`` until stopped.
* **Checkpoints** live in the warehouse, ``<warehouse>/_etl/checkpoints/<job>/<source>``: the
  offsets of every micro-batch are written there before it runs, and marked done after.
* **Exactly once**: each micro-batch is written by ``foreachBatch`` with the target's Delta
  writer made idempotent: ``txnAppId`` is ``etl/<job>/<source>/<query id>`` (the query id is
  fixed by the checkpoint) and ``txnVersion`` is the batch id. A run killed after a batch
  committed to Delta but before the checkpoint marked it done replays that batch with the same
  id and offsets on restart, and Delta skips the commit it already holds. The quarantine is
  written the same way.
* **Parsing** (`etl.readers.kafka.parse_messages`): a message that does not fit the schema goes
  to ``<warehouse>/quarantine/<source>`` with its raw value and where it was read
  (``kafka topic=<topic> partition=<p> offset=<o>``); the other messages go to the target.
* **Counting**: `KafkaLoadResult` says what was loaded and quarantined; the caller keeps the
  run's books (the flow does).

Example::

    result = load_kafka(spark, ctx, config.source("events").kafka, source_name="events",
                        target_name="bronze_events", target=config.target("bronze_events"))
    result.rows_loaded, result.rows_quarantined, result.batches
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from etl import storage
from etl._typing import Transform
from etl.config import KafkaConfig, TargetConfig
from etl.context import RunContext, WriteMetrics
from etl.errors import ConfigError, SourceError, jvm_error_text
from etl.readers.json_records import parse_schema
from etl.readers.kafka import SOURCE_COLUMN, parse_messages, read_kafka
from etl.transforms.cleaning import RAW_RECORD, split_rejected
from etl.writers.delta import DeltaAppend
from etl.writers.quarantine import quarantine_rows
from etl.writers.targets import delta_writer

_STREAMING_MODES = ("append", "merge", "insert_only", "scd2")
#: Called on the driver after a micro-batch committed: ``(batch_id, target metrics)``.
BatchCallback = Callable[[int, WriteMetrics], None]


@dataclass
class KafkaLoadResult:
    """What a load did: micro-batches run, rows written to the target and to the quarantine
    (a replayed batch whose commits were skipped counts 0), and the streaming query's id."""

    query_id: str = ""
    batches: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    writes: list[WriteMetrics] = field(default_factory=list)


def checkpoint_location(ctx: RunContext, source_name: str) -> str:
    """``<warehouse>/_etl/checkpoints/<job>/<source>``."""
    return ctx.warehouse.records(f"checkpoints/{ctx.job}/{source_name}")


def _check_target(target_name: str, target: TargetConfig) -> None:
    if target.format != "delta" or target.mode not in _STREAMING_MODES:
        raise ConfigError(
            f"a Kafka source loads a Delta target in mode {', '.join(_STREAMING_MODES)}; got "
            f"format {target.format}, mode {target.mode}", key=f"targets.{target_name}",
        )


def start_kafka_load(
    spark: SparkSession,
    ctx: RunContext,
    kafka: KafkaConfig,
    *,
    source_name: str,
    target_name: str,
    target: TargetConfig,
    result: KafkaLoadResult | None = None,
    on_batch: BatchCallback | None = None,
    extra: str = "rescue",
    prepare: Transform | None = None,
) -> StreamingQuery:
    """Start the streaming load of ``source_name`` into ``target`` and return the query.

    Arguments are checked before the query starts. Each micro-batch writes the target and the
    quarantine idempotently (see the module docstring), adds its counts to ``result`` and its
    write metrics to ``ctx``, then calls ``on_batch``. ``prepare``: applied to the rows
    before the target's write (the bronze form of personal columns)."""
    schema = parse_schema(kafka.schema, f"sources.{source_name}.kafka",
                          [("required", c) for c in kafka.required])
    _check_target(target_name, target)
    checkpoint = checkpoint_location(ctx, source_name)
    path = ctx.warehouse.table(target.layer, target.table)
    result = result if result is not None else KafkaLoadResult()
    app_ids: list[str] = []

    def app_id(session: SparkSession) -> str:
        # the query id Spark stored in the checkpoint when the query was first started
        if not app_ids:
            query_id = json.loads(storage.read_text(session, f"{checkpoint}/metadata"))["id"]
            app_ids.append(f"etl/{ctx.job}/{source_name}/{query_id}")
        return app_ids[0]

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        session = batch.sparkSession
        identity = app_id(session)
        rows = batch.transform(parse_messages(schema, required=kafka.required,
                                                   extra=extra)).persist()
        try:
            valid, rejected = split_rejected(rows)
            # every Delta builder of a streaming mode has execute() (DeltaWrite itself does not)
            delta: Any = (delta_writer(session, path, target).user_metadata(ctx.run_id)
                          .idempotent(identity, batch_id))
            landed = valid.drop(RAW_RECORD, SOURCE_COLUMN)
            metrics: WriteMetrics = delta.execute(
                landed.transform(prepare) if prepare is not None else landed)
            quarantined = 0
            if not rejected.isEmpty():
                quarantine = (
                    DeltaAppend(session, ctx.warehouse.quarantine(source_name))
                    .schema_policy("evolve").user_metadata(ctx.run_id)
                    .idempotent(identity, batch_id)
                    .execute(quarantine_rows(rejected, ctx, source_name, []))
                )
                quarantined = quarantine.rows_inserted
        finally:
            rows.unpersist()
        ctx.record_write(metrics)
        loaded = metrics.rows_inserted + metrics.rows_updated
        result.batches += 1
        result.rows_loaded += loaded
        result.rows_quarantined += quarantined
        result.writes.append(metrics)
        if on_batch is not None:
            on_batch(batch_id, metrics)

    writer = (
        read_kafka(spark, kafka).writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .queryName(f"etl-{ctx.job}-{source_name}")
    )
    if kafka.trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=kafka.interval)
    try:
        query = writer.start()
    except Exception as exc:
        raise SourceError(
            f"source {source_name}: cannot start the Kafka stream: {jvm_error_text(exc)}"
        ) from None
    result.query_id = str(query.id)
    return query


def load_kafka(
    spark: SparkSession,
    ctx: RunContext,
    kafka: KafkaConfig,
    *,
    source_name: str,
    target_name: str,
    target: TargetConfig,
    on_batch: BatchCallback | None = None,
    extra: str = "rescue",
    prepare: Transform | None = None,
) -> KafkaLoadResult:
    """A scheduled run: load every message published since the last run, then stop.

    Needs ``trigger: available_now``. Raises `SourceError` naming the source when the stream
    fails (a failed micro-batch is not marked done, so the next run does it again)."""
    if kafka.trigger != "available_now":
        raise ConfigError(
            f"load_kafka runs to the end of the topics and needs trigger available_now, got "
            f"{kafka.trigger} (use start_kafka_load for the continuous mode)",
            key=f"sources.{source_name}.kafka.trigger",
        )
    result = KafkaLoadResult()
    query = start_kafka_load(spark, ctx, kafka, source_name=source_name,
                             target_name=target_name, target=target, result=result,
                             on_batch=on_batch, extra=extra, prepare=prepare)
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        raise SourceError(
            f"source {source_name}: the Kafka stream failed: {jvm_error_text(exc)}"
        ) from None
    return result


__all__ = ["BatchCallback", "KafkaLoadResult", "checkpoint_location", "load_kafka",
           "start_kafka_load"]
