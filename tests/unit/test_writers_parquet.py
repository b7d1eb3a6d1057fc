"""Parquet targets (etl.writers.parquet): dynamic partition overwrite and file sizing."""

from __future__ import annotations

from chispa import assert_df_equality

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
