"""Tiny jobs for the pipeline and backfill tests: each run appends one row per logical date to
``<warehouse>/test/dates`` (job, date, run_id) and can be told to fail.

Parameters (``params`` of the job's conf):

* ``fail_while_exists``: a file path; the run raises `RuntimeError` while that file exists.
* ``fail_attempts``: the first N runs of the job fail (counted in ``<warehouse>/_test/<job>``).
* ``write``: false to write nothing (faster).
* ``fail_on`` / ``interrupt_on``: lists of dates; a run covering one of them raises
  `RuntimeError` / `KeyboardInterrupt` before writing anything.

``CALLS`` records ``(job, date_from, date_to)`` of every call in this process, in order, and
``PARENTS`` the ``ETL_PARENT_RUN_ID`` each call saw. ``merge_dates`` MERGEs instead of appending
(the parallel backfill test).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

from pyspark.sql import types as T

from etl.context import WriteMetrics
from etl.writers.delta import DeltaMerge, run_identity

CALLS: list[tuple[str, dt.date | None, dt.date | None]] = []
#: ``ETL_PARENT_RUN_ID`` as every call saw it.
PARENTS: list[str | None] = []
OUTPUT_SCHEMA = T.StructType([
    T.StructField("job", T.StringType(), False),
    T.StructField("date", T.DateType(), True),
    T.StructField("run_id", T.StringType(), False),
])


def _dates(ctx) -> list[dt.date | None]:
    if ctx.date_from is None:
        return [None]
    days = (ctx.date_to - ctx.date_from).days
    return [ctx.date_from + dt.timedelta(days=i) for i in range(days + 1)]


def _attempt(ctx, job: str) -> int:
    counter = Path(ctx.warehouse.root) / "_test" / job
    counter.parent.mkdir(parents=True, exist_ok=True)
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return count


def record_dates(spark, ctx, config) -> None:
    job = config.job.name
    CALLS.append((job, ctx.date_from, ctx.date_to))
    PARENTS.append(os.environ.get("ETL_PARENT_RUN_ID"))
    params = config.params
    dates = _dates(ctx)
    if params.get("fail_while_exists") and os.path.exists(params["fail_while_exists"]):
        raise RuntimeError(f"{job}: told to fail")
    if _attempt(ctx, job) <= int(params.get("fail_attempts", 0)):
        raise RuntimeError(f"{job}: flaky failure")
    if any(str(d) in [str(x) for x in params.get("fail_on", [])] for d in dates):
        raise RuntimeError(f"{job}: bad date in {dates[0]}..{dates[-1]}")
    if any(str(d) in [str(x) for x in params.get("interrupt_on", [])] for d in dates):
        raise KeyboardInterrupt
    if not params.get("write", True):
        return
    rows = [(job, d, ctx.run_id) for d in dates]
    (spark.createDataFrame(rows, OUTPUT_SCHEMA).write.format("delta").mode("append")
     .save(f"{ctx.warehouse.root}/test/dates"))


def slow(spark, ctx, config) -> None:
    """A Spark job that sleeps in a task for ``params.sleep_s`` seconds (timeouts)."""
    import time

    seconds = float(config.params.get("sleep_s", 60))
    CALLS.append((config.job.name, ctx.date_from, ctx.date_to))
    spark.sparkContext.parallelize([0], 1).map(lambda x: time.sleep(seconds) or x).count()


#: For ``merge_dates``: when set, every run waits here (twice) so parallel runs overlap.
MEET: threading.Barrier | None = None
#: ``(run_id, the value of the probe setting the run read back)`` of every ``merge_dates`` run.
PROBES: list[tuple[str, str | None]] = []
#: ``(run_id, WriteMetrics)`` of every ``merge_dates`` write.
MERGES: list[tuple[str, WriteMetrics]] = []
MERGED_SCHEMA = T.StructType([
    T.StructField("date", T.DateType(), False),
    T.StructField("run_id", T.StringType(), False),
])


def merged_path(warehouse_root: str) -> str:
    return f"{warehouse_root}/test/merged"


def merge_dates(spark, ctx, config) -> None:
    """MERGE one row per logical date into ``<warehouse>/test/merged`` (partitioned by date),
    with the run's commit identity, as the domain jobs' silver writers do.

    With `MEET` set, the run sets a session setting of its own, waits for the other runs, reads
    the setting back into `PROBES` and waits again before it merges: runs that share one session
    read another run's value, and their merges overlap."""
    CALLS.append((config.job.name, ctx.date_from, ctx.date_to))
    if MEET is not None:
        spark.conf.set("etl.test.run", ctx.run_id)
        MEET.wait(timeout=120)
        PROBES.append((ctx.run_id, spark.conf.get("etl.test.run", None)))
        MEET.wait(timeout=120)
    path = merged_path(ctx.warehouse.root)
    batch = spark.createDataFrame([(d, ctx.run_id) for d in _dates(ctx)], MERGED_SCHEMA)
    metrics = (DeltaMerge(spark, path)
               .keys("date")
               .partitioned_by("date")
               .user_metadata(ctx.run_id)
               .idempotent(*run_identity(config.job.name, "test/merged", ctx.run_id))
               .execute(batch))
    MERGES.append((ctx.run_id, metrics))
    ctx.record_write(metrics)
