"""Scenario 4, the same partition: two MERGEs into one partition of a Delta table overlap — the
first starts, the second commits while the first is still running. Without retries the first
fails with the conflict named and the table is the second's serial result; with one retry it
commits on a fresh snapshot and the table equals the serial order second-then-first.
(Disjoint partitions: tests/integration/test_writers_concurrency.py.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.errors import WriteConflictError
from etl.tables import latest_version, read_delta
from etl.writers.delta import DeltaMerge

SCHEMA = "id int, v string, seq int, year int"


def held_until(flags: Path):
    """A pass-through UDF that marks ``flags/started`` and then waits for ``flags/go``: the
    MERGE using it has taken its snapshot and cannot commit before the test lets it."""

    def hold(value: int) -> int:
        (flags / "started").touch()
        deadline = time.monotonic() + 300
        while not (flags / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return value

    return F.udf(hold, T.IntegerType())


def overlapping_merges(spark, tmp_path, retries: int):
    path = str(tmp_path / "t")
    merge = DeltaMerge(spark, path).keys("id").partitioned_by("year").retries(retries)
    merge.execute(spark.createDataFrame([(1, "base", 1, 2013), (2, "base", 1, 2013)], SCHEMA))
    flags = tmp_path / "flags"
    flags.mkdir()
    first = spark.createDataFrame([(1, "first", 2, 2013), (3, "first", 2, 2013)], SCHEMA)
    first = first.coalesce(1).withColumn("seq", held_until(flags)("seq"))
    second = spark.createDataFrame([(1, "second", 3, 2013), (4, "second", 3, 2013)], SCHEMA)
    outcome: dict[str, object] = {}

    def run_first():
        try:
            outcome["metrics"] = merge.user_metadata("first").execute(first)
        except WriteConflictError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run_first)
    thread.start()
    deadline = time.monotonic() + 300
    while not (flags / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second_metrics = merge.user_metadata("second").execute(second)
    (flags / "go").touch()
    thread.join(timeout=600)
    return path, second_metrics, outcome


def test_a_conflicting_merge_without_retries_fails_naming_the_conflict(spark, tmp_path):
    path, second, outcome = overlapping_merges(spark, tmp_path, 0)
    assert (second.operation, second.version) == ("MERGE", 1)
    error = outcome["error"]
    assert str(error).startswith(f"{path}: ConcurrentAppendException after 1 attempts: ")
    assert latest_version(spark, path) == 1
    assert_df_equality(read_delta(spark, path), spark.createDataFrame(
        [(1, "second", 3, 2013), (2, "base", 1, 2013), (4, "second", 3, 2013)], SCHEMA),
        ignore_row_order=True)


def test_a_conflicting_merge_retries_on_a_fresh_snapshot_in_serial_order(spark, tmp_path):
    path, second, outcome = overlapping_merges(spark, tmp_path, 1)
    assert (second.operation, second.version) == ("MERGE", 1)
    first = outcome["metrics"]
    assert (first.operation, first.version, first.rows_inserted, first.rows_updated) == (
        "MERGE", 2, 1, 1)
    assert_df_equality(read_delta(spark, path), spark.createDataFrame(
        [(1, "first", 2, 2013), (2, "base", 1, 2013), (3, "first", 2, 2013),
         (4, "second", 3, 2013)], SCHEMA), ignore_row_order=True)
