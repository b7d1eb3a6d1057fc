"""A separate OS process for tests/integration/test_writers_concurrency.py: builds its own local
SparkSession, waits until its peer is ready too, then merges rows of one partition.

The two merges are made to overlap: the batch passes through a Python UDF that, in the job
Delta runs inside the MERGE (after the transaction has read the table's version), waits until
the peer's MERGE got that far too. So both read the same version before either commits.

With AFTER_FILE, the UDF then also waits until that file exists: the test passes the peer's
commit file, so this worker commits second. Two commits of one version landing in the same
instant would race on a local disk, where Hadoop checks that the commit file is absent and then
renames onto it in two steps (object stores and HDFS put it atomically); that race is not what
the test is about.

Usage: merge_worker.py TABLE_PATH YEAR BARRIER_DIR JARS_DIR [AFTER_FILE]
Prints the merge's metrics as JSON on the last line of stdout."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.05)


def gate(barrier: Path, year: int, after: Path | None):
    """A UDF returning its input; evaluated inside a MERGE (Delta's job descriptions start with
    ``MERGE operation``), it first records that and waits for the other worker's MERGE, then
    for ``after`` when given."""
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    def pass_through(value: str) -> str:
        description = TaskContext.get().getLocalProperty("spark.job.description") or ""
        if description.startswith("MERGE operation"):
            (barrier / f"merging-{year}").touch()
            wait_for(lambda: len(list(barrier.glob("merging-*"))) == 2,
                     "the other worker's MERGE never started")
            if after is not None:
                wait_for(after.exists, f"{after} never appeared")
        return value

    return F.udf(pass_through, "string")


def main(path: str, year: int, barrier: Path, jars_dir: str, after: Path | None) -> None:
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
    batch = batch.withColumn("v", gate(barrier, year, after)("v"))
    merge = (
        DeltaMerge(spark, path).keys("id").sequence_by("seq").partitioned_by("year")
        .user_metadata(f"worker-{year}").retries(0)  # no retry: disjoint partitions never conflict
    )
    # start both merges at the same moment
    (barrier / f"ready-{year}").touch()
    wait_for(lambda: len(list(barrier.glob("ready-*"))) == 2, "the other worker never got ready")
    metrics = merge.execute(batch)
    print(json.dumps(dataclasses.asdict(metrics)))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4],
         Path(sys.argv[5]) if len(sys.argv) > 5 else None)
