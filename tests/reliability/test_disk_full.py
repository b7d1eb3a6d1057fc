"""Scenario 10, disk full: the warehouse is a 1 MiB tmpfs (mounted by the test; skipped where
mounting is not allowed). A batch larger than the free space fails and the table stays at its
previous version: readers never see the half-written files. The writer raises `WriteError`
naming the table's path and the cause."""

from __future__ import annotations

import subprocess

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.errors import WriteError
from etl.tables import latest_version, read_delta
from etl.writers.delta import DeltaAppend


@pytest.fixture()
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: the JVM may hold a handle


def test_a_write_that_fills_the_disk_leaves_the_table_at_its_version(spark, small_disk):
    path = str(small_disk / "t")
    first = spark.createDataFrame([(1, "a")], "id int, v string")
    DeltaAppend(spark, path).execute(first)
    # ~4 MB of incompressible text: cannot fit in what is left of 1 MiB
    big = spark.range(30_000).select(F.col("id").cast("int").alias("id"),
                                     F.sha2(F.col("id").cast("string"), 512).alias("v"))
    with pytest.raises(WriteError) as info:
        DeltaAppend(spark, path).execute(big)
    assert str(info.value) == f"{path}: the write failed: java.io.IOException: No space left on device"
    assert latest_version(spark, path) == 0
    assert_df_equality(read_delta(spark, path), first)
