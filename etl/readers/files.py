"""Landed files: discovery through Hadoop's FileSystem (local, ``s3a://``, ``gs://`` alike) and
reading as raw strings with ingestion metadata.

Reading never infers a schema: the configured column names are read as strings, in file order,
and a record that does not fit (wrong number of fields) is kept with its raw text in
``_corrupt_record`` so the transform step can quarantine it rather than lose it. The header is
checked against the configured columns; a mismatch raises `SchemaMismatchError` naming the file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.sql.utils import AnalysisException

from etl.config import SourceConfig
from etl.errors import SchemaMismatchError, SourceError

CORRUPT = "_corrupt_record"
METADATA_COLUMNS = ("_source_file", "_source_modified", "_run_id", "_ingested_at")


@dataclass(frozen=True)
class LandedFile:
    """A landed file. ``path`` is what Hadoop reads; ``uri`` is the same location URL-encoded,
    exactly as Spark reports it in ``_metadata.file_path`` (and so in ``_source_file``): the
    file's identity in bronze and in the ledger."""

    path: str
    uri: str
    size: int
    modified_ms: int

    @property
    def modified(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.modified_ms / 1000, dt.UTC).replace(
            tzinfo=None
        )


def list_files(spark: SparkSession, folder: str, pattern: str = "*") -> list[LandedFile]:
    """The files matching ``pattern`` in ``folder``, oldest first (then by path).

    A missing folder is an error naming it; an empty folder returns ``[]``.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    folder_path = jvm.org.apache.hadoop.fs.Path(folder)
    try:
        fs = folder_path.getFileSystem(hadoop_conf)
        if not fs.exists(folder_path):
            raise SourceError(f"landing folder {folder} does not exist")
        statuses = fs.globStatus(jvm.org.apache.hadoop.fs.Path(folder_path, pattern)) or []
    except SourceError:
        raise
    except Exception as exc:  # py4j wraps every JVM error; name the folder and keep the cause
        raise SourceError(f"cannot list landing folder {folder}: {exc}") from exc
    files = [
        LandedFile(
            path=str(s.getPath().toString()),
            uri=str(s.getPath().toUri().toString()),
            size=int(s.getLen()),
            modified_ms=int(s.getModificationTime()),
        )
        for s in statuses
        if s.isFile() and not s.getPath().getName().startswith((".", "_"))
    ]
    return sorted(files, key=lambda f: (f.modified_ms, f.path))


def raw_schema(columns: Sequence[str]) -> StructType:
    return StructType(
        [StructField(c, StringType(), True) for c in columns]
        + [StructField(CORRUPT, StringType(), True)]
    )


def read_landed(
    spark: SparkSession,
    files: Sequence[LandedFile],
    source: SourceConfig,
    *,
    source_name: str,
    run_id: str,
    ingested_at: dt.datetime,
) -> DataFrame:
    """The rows of ``files`` as strings, plus ``_source_file``, ``_source_modified``, ``_run_id``
    and ``_ingested_at``; malformed records keep their raw text in ``_corrupt_record``."""
    if not files:
        raise SourceError(f"source {source_name}: no files to read")
    if source.format != "csv":
        raise SourceError(f"source {source_name}: format {source.format!r} is not supported yet")
    if not source.columns:
        raise SourceError(f"source {source_name}: no columns configured")
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT, "enforceSchema": "false"}
    options.update(source.options)
    try:
        df = (
            spark.read.format("csv")
            .options(**options)
            .schema(raw_schema(source.columns))
            .load([f.path for f in files])
        )
        return df.select(
            *source.columns,
            CORRUPT,
            F.col("_metadata.file_path").alias("_source_file"),
            F.col("_metadata.file_modification_time").alias("_source_modified"),
            F.lit(run_id).alias("_run_id"),
            F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
        )
    except AnalysisException as exc:
        raise SourceError(f"source {source_name}: cannot read {[f.path for f in files]}: {exc}") from exc


def explain_read_failure(source_name: str, exc: Exception) -> SourceError:
    """Turn a Spark failure while reading landed files into an error naming the file."""
    text = str(exc)
    if "CSV header does not conform to the schema" in text:
        detail = text.split("CSV header does not conform to the schema", 1)[1]
        detail = " ".join(detail.split())[:600]
        return SchemaMismatchError(
            f"source {source_name}: CSV header does not match the configured columns{detail}"
        )
    first = next((line for line in text.splitlines() if line.strip()), text)
    return SourceError(f"source {source_name}: reading failed: {first[:600]}")
