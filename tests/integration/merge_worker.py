"""A separate OS process for tests/integration/test_writers_concurrency.py: builds its own local
SparkSession, waits until its peer is ready too, then merges rows of one partition.

Usage: merge_worker.py TABLE_PATH YEAR BARRIER_DIR JARS_DIR
Prints the merge's metrics as JSON on the last line of stdout."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path


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
