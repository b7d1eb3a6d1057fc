"""A separate driver process for tests/integration/test_kafka_reader.py: starts a scheduled
Kafka load with its own local SparkSession and, after the first micro-batch has committed to
Delta, prints ``committed <batch id>`` and waits to be killed (before the checkpoint marks the
batch done).

Usage: kafka_driver.py WAREHOUSE TOPIC JARS_DIR"""

from __future__ import annotations

import sys
import time


def main(warehouse: str, topic: str, jars_dir: str) -> None:
    from etl.config import SparkSettings
    from etl.context import RunContext, Warehouse
    from etl.flow.kafka import load_kafka
    from etl.session import get_spark
    from tests.integration.test_kafka_reader import JOB, TARGET, kafka_config

    spark = get_spark(SparkSettings(
        app_name="kafka-driver", master="local[1]", shuffle_partitions=1, driver_memory="1g",
        jars_dir=jars_dir, log_level="ERROR", conf={"spark.sql.session.timeZone": "UTC",
                                                "spark.databricks.delta.snapshotPartitions": "1"},
    ))
    ctx = RunContext(job=JOB, env="test", warehouse=Warehouse.at(warehouse), landing=warehouse)

    def stop_here(batch_id: int, _metrics: object) -> None:
        print(f"committed {batch_id}", flush=True)
        time.sleep(600)

    load_kafka(spark, ctx, kafka_config(topic, max_offsets_per_trigger=2), source_name="events",
               target_name="events", target=TARGET, on_batch=stop_here)


if __name__ == "__main__":
    main(*sys.argv[1:4])
