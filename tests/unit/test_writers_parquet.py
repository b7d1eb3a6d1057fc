"""Parquet targets (etl.writers.parquet): dynamic partition overwrite, file sizing, and a static
overwrite that fails midway without losing the old files."""

from __future__ import annotations

import re

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.errors import WriteError
from etl.writers.parquet import ParquetWrite, storage_files

SCHEMA = "id int, v string, year int"


def test_overwrite_partitions_replaces_only_the_batch_partitions_and_sizes_files(spark, tmp_path):
    path = str(tmp_path / "gold" / "exports")
    writer = ParquetWrite(spark, path).partitioned_by("year").overwrite_partitions()
    writer.execute(spark.createDataFrame([(1, "a", 2013), (2, "b", 2014)], SCHEMA))

    metrics = writer.target_file_rows(2).execute(spark.createDataFrame(
        [(3, "c", 2014), (4, "d", 2014), (5, "e", 2014), (6, "f", 2015)], SCHEMA
    ))

    assert (metrics.operation, metrics.rows_inserted) == ("OVERWRITE_PARTITIONS", 4)
    assert (metrics.files_added, metrics.files_removed) == (3, 1)  # 2014: 2 files of <= 2 rows
    assert sorted(f.split("/")[0] for f in storage_files(spark, path)) == [
        "year=2013", "year=2014", "year=2014", "year=2015"
    ]
    assert_df_equality(
        spark.read.parquet(path).select("id", "v", "year"),
        spark.createDataFrame([(1, "a", 2013), (3, "c", 2014), (4, "d", 2014), (5, "e", 2014),
                               (6, "f", 2015)], SCHEMA),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_target_file_bytes_becomes_rows_per_file(spark, tmp_path):
    df = spark.createDataFrame([(i, "x" * 100, 2013) for i in range(10)], SCHEMA)
    writer = ParquetWrite(spark, str(tmp_path / "p")).target_file_bytes(1)

    # each row is {"id":N,"v":"x…x","year":2013}: 127 bytes of JSON
    assert writer.rows_per_file(df) == 1
    assert writer.target_file_bytes(1270).rows_per_file(df) == 10
    assert writer.target_file_bytes(1269).rows_per_file(df) == 9


def test_a_static_overwrite_that_fails_midway_leaves_every_old_row_and_file(spark, tmp_path):
    path = str(tmp_path / "gold" / "exports")
    writer = ParquetWrite(spark, path).partitioned_by("year").overwrite()
    old_rows = [(i, f"old {i}", 2013 + i % 3) for i in range(12)]
    first = writer.execute(spark.createDataFrame(old_rows, SCHEMA))
    old_files = storage_files(spark, path)
    assert (first.rows_inserted, first.files_added) == (12, len(old_files))
    # four tasks; one row of the last raises while the others have written their files
    failing = spark.range(0, 40, numPartitions=4).select(
        F.col("id").cast("int").alias("id"),
        F.when(F.col("id") == 37, F.raise_error(F.lit("boom"))).otherwise(F.lit("new")).alias("v"),
        (F.lit(2013) + F.col("id") % 3).cast("int").alias("year"),
    )

    with pytest.raises(WriteError) as caught:
        writer.execute(failing)

    assert re.fullmatch(
        rf"{re.escape(path)}: overwrite failed, the old files are in place: "
        r"org\.apache\.spark\.SparkException: Job aborted .*java\.lang\.RuntimeException: boom",
        str(caught.value),
    )
    assert storage_files(spark, path) == old_files
    assert_df_equality(spark.read.parquet(path).select("id", "v", "year"),
                       spark.createDataFrame(old_rows, SCHEMA), ignore_row_order=True,
                       ignore_nullable=True)
    assert sorted(p.name for p in (tmp_path / "gold").iterdir()) == ["exports"]

    metrics = writer.execute(spark.createDataFrame([(1, "new", 2020)], SCHEMA))

    assert (metrics.operation, metrics.rows_inserted, metrics.files_added,
            metrics.files_removed) == ("OVERWRITE", 1, 1, len(old_files))
    assert_df_equality(spark.read.parquet(path).select("id", "v", "year"),
                       spark.createDataFrame([(1, "new", 2020)], SCHEMA), ignore_nullable=True)
    assert sorted(p.name for p in (tmp_path / "gold").iterdir()) == ["exports"]
