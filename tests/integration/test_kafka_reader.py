"""etl.readers.kafka against the real Kafka broker (`scripts/services.sh start kafka`; `make test`
starts it): every message exactly once across two scheduled runs, bad messages quarantined with
topic, partition and offset, and a driver killed mid-stream that restarts without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.config import KafkaConfig, TargetConfig
from etl.context import RunContext, Warehouse
from etl.errors import ConfigError
from etl.flow.kafka import checkpoint_location, load_kafka, start_kafka_load
from tests.services import require_service

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("ETL_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
JOB = "kafka_test"
SCHEMA = "id bigint, name string"
# bronze: the configured fields, and the ones a message has beyond them as JSON (none here)
BRONZE = f"{SCHEMA}, _rescued_data string"
TARGET = TargetConfig(layer="bronze", table="events")
REASON = "record does not fit the schema struct<id:bigint,name:string>"


def kafka_config(topic: str, **kwargs: object) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=BOOTSTRAP, topics=[topic], schema=SCHEMA,
                       required=["name"], **kwargs)  # type: ignore[arg-type]


@pytest.fixture()
def topic() -> str:
    """A fresh topic name (the broker creates it, with two partitions, on the first message)."""
    host, port = BOOTSTRAP.rsplit(":", 1)
    require_service("Kafka", host, int(port))
    return f"events_{uuid.uuid4().hex[:10]}"


def produce(spark, topic: str, messages: list[tuple[int, str]]) -> None:
    """Send ``(partition, value)`` messages in order (one task, so offsets follow the list)."""
    (spark.createDataFrame(messages, "partition int, value string")
     .withColumn("topic", F.lit(topic)).coalesce(1)
     .write.format("kafka").option("kafka.bootstrap.servers", BOOTSTRAP).save())


def context(warehouse: Path) -> RunContext:
    return RunContext(job=JOB, env="test", warehouse=Warehouse.at(str(warehouse)),
                      landing=str(warehouse))


def event(i: int) -> str:
    return f'{{"id": {i}, "name": "event {i}"}}'


def load(spark, warehouse: Path, topic: str, **kwargs: object):
    return load_kafka(spark, context(warehouse), kafka_config(topic, **kwargs),
                      source_name="events", target_name="events", target=TARGET)


def table(spark, warehouse: Path, layer: str, name: str):
    return spark.read.format("delta").load(f"{warehouse}/{layer}/{name}")


def test_two_scheduled_runs_load_each_message_once_and_quarantine_bad_ones(
        spark, tmp_path, topic):
    produce(spark, topic, [(0, event(1)), (0, event(2)), (1, event(3)), (1, "not json")])
    first = load(spark, tmp_path, topic)
    produce(spark, topic, [(0, event(4)), (0, '{"id": "x", "name": "bad id"}'),
                           (1, event(5)), (1, '{"id": 6, "name": null}')])
    second = load(spark, tmp_path, topic)

    assert_df_equality(
        table(spark, tmp_path, "bronze", "events"),
        spark.createDataFrame([(i, f"event {i}", None) for i in range(1, 6)], BRONZE),
        ignore_row_order=True, ignore_nullable=True)
    assert (first.rows_loaded, first.rows_quarantined) == (3, 1)
    assert (second.rows_loaded, second.rows_quarantined) == (2, 2)
    assert first.query_id == second.query_id
    quarantine = table(spark, tmp_path, "quarantine", "events").select(
        "job", "table", "source_file", "reasons", "record")
    expected = spark.createDataFrame([
        (JOB, "events", f"kafka topic={topic} partition=1 offset=1", [REASON], "not json"),
        (JOB, "events", f"kafka topic={topic} partition=0 offset=3", [REASON],
         '{"id": "x", "name": "bad id"}'),
        (JOB, "events", f"kafka topic={topic} partition=1 offset=3",
         ["name: required value missing"], '{"id": 6, "name": null}'),
    ], "job string, table string, source_file string, reasons array<string>, record string")
    assert_df_equality(quarantine, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_run_killed_after_a_batch_committed_restarts_without_duplicates(
        spark, tmp_path, topic):
    produce(spark, topic, [(0, event(i)) for i in range(1, 5)])
    driver = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("kafka_driver.py")), str(tmp_path), topic,
         str(ROOT / ".jars")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        assert driver.stdout is not None
        # the driver's log lines go to stdout too; it reports the batch on a line of its own
        marker = next((line for line in driver.stdout if line.startswith("committed")), "EOF")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the Python driver and its JVM
        driver.wait(timeout=60)
    assert marker == "committed 0\n"
    # the killed run committed batch 0 to Delta, but the checkpoint never marked it done
    assert sorted(os.listdir(f"{checkpoint_location(context(tmp_path), 'events')}/commits")) == []
    assert table(spark, tmp_path, "bronze", "events").count() == 2

    restarted = load(spark, tmp_path, topic, max_offsets_per_trigger=2)

    # batch 0 again (same id, same offsets): Delta already holds it; then batch 1
    assert [w.operation for w in restarted.writes] == ["SKIPPED", "WRITE"]
    assert_df_equality(
        table(spark, tmp_path, "bronze", "events"),
        spark.createDataFrame([(i, f"event {i}", None) for i in range(1, 5)], BRONZE),
        ignore_row_order=True, ignore_nullable=True)


def test_the_continuous_mode_keeps_running_until_stopped(spark, tmp_path, topic):
    produce(spark, topic, [(0, event(1)), (1, event(2))])
    config = kafka_config(topic, trigger="processing_time", interval="1 second")
    with pytest.raises(ConfigError, match="needs trigger available_now, got processing_time"):
        load_kafka(spark, context(tmp_path), config, source_name="events", target_name="events",
                   target=TARGET)

    query = start_kafka_load(spark, context(tmp_path), config, source_name="events",
                             target_name="events", target=TARGET)
    try:
        query.processAllAvailable()
        running = query.isActive
    finally:
        query.stop()

    assert running
    assert_df_equality(
        table(spark, tmp_path, "bronze", "events"),
        spark.createDataFrame([(1, "event 1", None), (2, "event 2", None)], BRONZE),
        ignore_row_order=True, ignore_nullable=True)
