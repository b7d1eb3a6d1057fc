"""A separate OS process for tests/integration/test_writers_concurrency.py: builds its own local
SparkSession, waits until its peer is ready too, then merges rows of one partition.

The two merges are made to overlap: the batch passes through a Python UDF that, in the job
Delta runs inside the MERGE (after the transaction has read the table's version), waits until
the peer's MERGE got that far too. So both read the same version before either commits.

Usage: merge_worker.py TABLE_PATH YEAR BARRIER_DIR JARS_DIR
Prints the merge's metrics as JSON on the last line of stdout."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path


def gate(barrier: Path, year: int):
    """A UDF returning its input; evaluated inside a MERGE (Delta's job descriptions start with
    ``MERGE operation``), it first records that and waits for the other worker's MERGE."""
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    def pass_through(value: str) -> str:
        description = TaskContext.get().getLocalProperty("spark.job.description") or ""
        if description.startswith("MERGE operation"):
            (barrier / f"merging-{year}").touch()
            deadline = time.monotonic() + 180
            while len(list(barrier.glob("merging-*"))) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError("the other worker's MERGE never started")
                time.sleep(0.05)
        return value

    return F.udf(pass_through, "string")


def main(path: str, year: int, barrier: Path, jars_dir: str) -> None:
    from etl.config import SparkSettings
    from etl.session import get_spark
    from etl.writers.delta import DeltaMerge

    spark = get_spark(SparkSettings(
        app_name=f"merge-worker-{year}", master="local[1]", shuffle_partitions=1,
        driver_memory="1g", jars_dir=jars_dir, log_level="ERROR",
        conf={"spark.databricks.delta.snapshotPartitions": "1"},
    ))
    batch = spark.createDataFrame(
        [(year * 10 + 1, f"updated {year}", 2, year), (year * 10 + 9, f"new {year}", 1, year)],
        "id int, v string, seq int, year int",
    )
    batch = batch.withColumn("v", gate(barrier, year)("v"))
    merge = (
        DeltaMerge(spark, path).keys("id").sequence_by("seq").partitioned_by("year")
        .user_metadata(f"worker-{year}").retries(0)  # no retry: disjoint partitions never conflict
    )
    # start both merges at the same moment
    (barrier / f"ready-{year}").touch()
    deadline = time.monotonic() + 180
    while len(list(barrier.glob("ready-*"))) < 2:
        if time.monotonic() > deadline:
            raise SystemExit("the other worker never got ready")
        time.sleep(0.05)
    metrics = merge.execute(batch)
    print(json.dumps(dataclasses.asdict(metrics)))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
