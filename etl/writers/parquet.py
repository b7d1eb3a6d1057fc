"""Parquet targets (non-Delta): partitioned writes with append, full overwrite or dynamic
partition overwrite, and file sizing.

Guarantees and limits:

* ``overwrite_partitions()`` replaces exactly the partitions the batch has rows for (Spark's
  dynamic partition overwrite, set on this write only); other partitions are untouched;
* files are sized by ``target_file_rows`` (at most that many rows per file) or
  ``target_file_bytes`` (rows per file estimated from a sample of the batch's rows); the batch
  is repartitioned by the partition columns, so each partition is
  written by one task into as few files as the size allows;
* ``overwrite()`` (static: the whole table) writes the new files first, into a hidden sibling
  folder ``_<name>.etl-new-<id>/table``, and only when that write succeeded swaps the folders (the
  table's folder is renamed to ``_<name>.etl-old-<id>``, the new one into its place, then the
  old one is deleted). A failure while writing (a batch whose evaluation raises, a lost
  executor, a full disk) leaves every old file in place and raises `WriteError` naming the
  path; the new folder is removed. Spark's own static overwrite would delete the old files
  before writing the new ones. Limits: between the two renames a reader may briefly find no
  folder; on object stores (``s3a://``) a rename copies, so the swap takes as long as copying
  the files, and a crash during it leaves the old files under ``_<name>.etl-old-<id>``;
* plain Parquet has no transaction log: a failed append or partition overwrite can leave
  partial files in the partitions it was writing (Spark's commit protocol removes its
  temporary files, but a crash of the driver may not). Prefer Delta where readers must never
  see a partial write.

Example::

    ParquetWrite(spark, "/wh/gold/exports").partitioned_by("flight_date") \
        .overwrite_partitions().target_file_rows(1_000_000).execute(batch)
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from py4j.protocol import Py4JError
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F

from etl.context import WriteMetrics
from etl.errors import WriteError, jvm_error_text
from etl.logs import get_logger
from etl.tables import table_name
from etl.writers.delta import require_columns

ParquetMode = Literal["append", "overwrite", "overwrite_partitions"]
_log = get_logger("etl.writers")


def storage_files(spark: SparkSession, path: str, suffix: str = ".parquet") -> dict[str, int]:
    """Data files under ``path`` (recursively, through Hadoop's FileSystem) -> size in bytes;
    folders starting with ``_`` (``_delta_log``) are skipped. Empty when ``path`` is missing."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(hadoop_path):
        return {}
    found: dict[str, int] = {}
    files = fs.listFiles(hadoop_path, True)
    while files.hasNext():
        status = files.next()
        relative = str(status.getPath().toString())[len(str(fs.makeQualified(hadoop_path))):]
        parts = [p for p in relative.split("/") if p]
        if parts and not any(p.startswith(("_", ".")) for p in parts) and parts[-1].endswith(suffix):
            found[relative.lstrip("/")] = int(status.getLen())
    return found


def estimated_row_bytes(df: DataFrame, sample_rows: int = 1000) -> float:
    """Bytes per row, estimated from the JSON length of up to ``sample_rows`` rows (at least 1).
    Parquet compresses, so files come out smaller than the target: the estimate errs on the
    side of more, smaller files. (The optimizer's size statistics are no help here: a batch
    built in memory or by joins reports an unknown, maximal size.)"""
    length = F.length(F.to_json(F.struct(*(F.col(f"`{c}`") for c in df.columns))))
    row = df.limit(sample_rows).agg(F.avg(length).alias("bytes")).first()
    return max(float(row["bytes"] or 1.0), 1.0) if row is not None else 1.0


@dataclass(frozen=True)
class ParquetWrite:
    """Write a batch as Parquet files (see the module docstring)."""

    spark: SparkSession
    path: str
    mode: ParquetMode = "append"
    partition_columns: tuple[str, ...] = ()
    file_rows: int | None = None
    file_bytes: int | None = None

    def partitioned_by(self, *columns: str) -> ParquetWrite:
        return dataclasses.replace(self, partition_columns=tuple(columns))

    def append(self) -> ParquetWrite:
        return dataclasses.replace(self, mode="append")

    def overwrite(self) -> ParquetWrite:
        return dataclasses.replace(self, mode="overwrite")

    def overwrite_partitions(self) -> ParquetWrite:
        return dataclasses.replace(self, mode="overwrite_partitions")

    def target_file_rows(self, rows: int | None) -> ParquetWrite:
        _positive(rows, "target_file_rows", self.path)
        return dataclasses.replace(self, file_rows=rows, file_bytes=None)

    def target_file_bytes(self, size: int | None) -> ParquetWrite:
        _positive(size, "target_file_bytes", self.path)
        return dataclasses.replace(self, file_bytes=size, file_rows=None)

    def rows_per_file(self, df: DataFrame) -> int | None:
        if self.file_rows is not None:
            return self.file_rows
        if self.file_bytes is not None:
            return max(1, math.floor(self.file_bytes / estimated_row_bytes(df)))
        return None

    def execute(self, df: DataFrame) -> WriteMetrics:
        """Write ``df``; returns rows written and files added/removed (from listing the folder
        before and after). ``overwrite()`` writes first and swaps after (module docstring)."""
        require_columns(df, self.partition_columns, "partitioned_by", self.path)
        if self.mode == "overwrite_partitions" and not self.partition_columns:
            raise WriteError(f"{self.path}: overwrite_partitions() needs partitioned_by()")
        before = storage_files(self.spark, self.path)
        if self.mode == "overwrite":
            rows = self._write_and_swap(df)
        else:
            rows = df.count()
            writer = self._writer(df).mode("append")
            if self.mode == "overwrite_partitions":
                writer = writer.mode("overwrite").option("partitionOverwriteMode", "dynamic")
            writer.save(self.path)
        after = storage_files(self.spark, self.path)
        return WriteMetrics(
            table=table_name(self.path), operation=self.mode.upper(), rows_inserted=rows,
            files_added=len(set(after) - set(before)), files_removed=len(set(before) - set(after)),
        )

    def _writer(self, df: DataFrame) -> DataFrameWriter:
        """The Parquet writer of ``df`` with the partitioning and file sizing (mode not set)."""
        out = df.repartition(*self.partition_columns) if self.partition_columns else df
        writer = out.write.format("parquet")
        if self.partition_columns:
            writer = writer.partitionBy(*self.partition_columns)
        per_file = self.rows_per_file(df)
        if per_file is not None:
            writer = writer.option("maxRecordsPerFile", str(per_file))
        return writer

    def _write_and_swap(self, df: DataFrame) -> int:
        """Write ``df`` into a hidden sibling folder, then swap it with the table's folder;
        returns the rows written (counted from the new files' footers)."""
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        target = jvm.org.apache.hadoop.fs.Path(self.path)
        fs = target.getFileSystem(self.spark._jsc.hadoopConfiguration())
        target = fs.makeQualified(target)
        parent, name, tag = target.getParent(), target.getName(), uuid.uuid4().hex[:12]
        if parent is None:
            raise WriteError(f"{self.path}: overwrite() needs a table folder below a parent folder")
        # the new files go to <parent>/_<name>.etl-new-<id>/table: hidden next to the table,
        # while its own name is one Spark reads (it skips a root folder named _... or .…)
        scratch = jvm.org.apache.hadoop.fs.Path(parent, f"_{name}.etl-new-{tag}")
        fresh = jvm.org.apache.hadoop.fs.Path(scratch, "table")
        old = jvm.org.apache.hadoop.fs.Path(parent, f"_{name}.etl-old-{tag}")
        try:
            self._writer(df).mode("errorifexists").save(str(fresh.toString()))
            # with the schema given, a batch that wrote no file (empty, partitioned) counts 0
            rows = self.spark.read.schema(df.schema).parquet(str(fresh.toString())).count()
        except Exception as exc:
            _delete_quietly(fs, scratch)
            raise WriteError(f"{self.path}: overwrite failed, the old files are in place: "
                             f"{jvm_error_text(exc)}") from exc
        had_table = bool(fs.exists(target))
        if had_table and not fs.rename(target, old):
            _delete_quietly(fs, scratch)
            raise WriteError(f"{self.path}: overwrite failed, the old files are in place: could "
                             f"not move them aside to {old.toString()}")
        if not fs.rename(fresh, target):
            if not had_table:
                outcome = "there was no table before"
            elif fs.rename(old, target):
                outcome = "the old files are back in place"
            else:
                outcome = f"the old files are in {old.toString()}"
            raise WriteError(f"{self.path}: overwrite failed: could not move the new files from "
                             f"{fresh.toString()} into place; {outcome}")
        fs.delete(scratch, True)
        if had_table:
            fs.delete(old, True)
        return int(rows)


def _delete_quietly(fs: Any, path: Any) -> None:
    """Remove a folder this writer made; a failure is logged, not raised (the write's own
    error, being raised, matters more)."""
    try:
        fs.delete(path, True)
    except Py4JError as exc:
        _log.warning("could not remove the folder of a failed overwrite", path=str(path.toString()),
                     error=jvm_error_text(exc))


def _positive(value: int | None, argument: str, path: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise WriteError(f"{path}: {argument} must be a positive integer, got {value!r}")


__all__ = ["ParquetWrite", "estimated_row_bytes", "storage_files"]
