"""A separate process for tests/reliability/test_task_retry.py: Spark in ``local[2,2]`` (a task
may fail once and be retried, as on a cluster), merging the same batches into two Delta tables —
one fault-free, one whose source fails every first attempt of partition 0 of every stage.

Usage: task_retry_worker.py WORK_DIR JARS_DIR
Prints one JSON line: the two tables' rows (sorted) and how many task failures were injected."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(work: Path, jars_dir: str) -> None:
    from pyspark import TaskContext
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from etl.config import SparkSettings
    from etl.session import get_spark
    from etl.tables import read_delta
    from etl.writers.delta import DeltaMerge

    spark = get_spark(SparkSettings(
        app_name="task-retry-worker", master="local[2,2]", shuffle_partitions=2,
        driver_memory="1g", jars_dir=jars_dir, log_level="ERROR",
        conf={"spark.databricks.delta.snapshotPartitions": "2"},
    ))
    markers = work / "failures"
    markers.mkdir(parents=True, exist_ok=True)

    def fail_first_attempt(value: int) -> int:
        task = TaskContext.get()
        if task is not None and task.partitionId() == 0 and task.attemptNumber() == 0:
            (markers / f"stage-{task.stageId()}").touch()
            raise RuntimeError("injected failure of a first task attempt")
        return value

    flaky = F.udf(fail_first_attempt, T.IntegerType())
    schema = "id int, v string, seq int, year int"
    batches = [
        [(i, f"v{i}", 1, 2013 + i % 2) for i in range(40)],
        [(i, f"w{i}", 2, 2013 + i % 2) for i in range(20, 60)] + [(5, "older", 0, 2014)],
    ]
    tables = {}
    for name, faulty in (("clean", False), ("faulty", True)):
        path = str(work / name)
        merge = DeltaMerge(spark, path).keys("id").sequence_by("seq").partitioned_by("year")
        for rows in batches:
            batch = spark.createDataFrame(rows, schema).repartition(2)
            if faulty:
                batch = batch.withColumn("seq", flaky("seq"))
            merge.execute(batch)
        tables[name] = sorted(tuple(r) for r in read_delta(spark, path).collect())
    print(json.dumps({**tables, "failures": len(list(markers.iterdir()))}))
    spark.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
