"""Landed files: discovery through Hadoop's FileSystem (local, ``s3a://``, ``gs://`` alike) and
reading as raw strings with ingestion metadata.

Reading never infers a schema: the configured columns are read by name (`etl.readers.drift`),
as strings from text formats, and a record that does not fit (wrong number of fields) is kept
with its raw text in ``_corrupt_record`` so the transform step can quarantine it rather than
lose it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.sql.utils import AnalysisException

from etl._typing import Transform
from etl.config import SourceConfig
from etl.errors import SchemaMismatchError, SourceError, jvm_error_text
from etl.transforms.cleaning import reject_malformed

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
        raise SourceError(f"cannot list landing folder {folder}: {jvm_error_text(exc)}") from exc
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


#: Why the reader could not use a record, per format (the quarantine's reason).
MALFORMED_REASONS = {
    "csv": "malformed record: wrong number of fields",
    "json": "malformed record: not valid JSON",
    "jsonl": "malformed record: not valid JSON",
}


def read_landed(
    spark: SparkSession,
    files: Sequence[LandedFile],
    source: SourceConfig,
    *,
    source_name: str,
    run_id: str,
    ingested_at: dt.datetime,
) -> DataFrame:
    """The rows of ``files`` in the configured columns, plus ``_corrupt_record`` (and
    ``_rescued_data`` when some file has columns the source does not know),
    ``_source_file``, ``_source_modified``, ``_run_id`` and ``_ingested_at``.

    Columns are read by name (`etl.readers.drift.read_files`: the CSV header, the Parquet
    footer, the JSON fields), never inferred; a record that does not parse keeps its raw text
    in ``_corrupt_record`` (quarantine it with `malformed_records`). A file that cannot be used
    raises `SchemaMismatchError` naming it and the reason; the flow sets such files aside
    instead. ``text`` sources are one row per line in the column ``value``; ``delta`` tables
    are read with `read_table`.
    """
    from etl.readers.drift import read_files

    if not files:
        raise SourceError(f"source {source_name}: no files to read")
    if source.format == "delta":
        raise SourceError(f"source {source_name}: a delta source is a table: use read_table")
    columns = list(source.columns) or (["value"] if source.format == "text" else [])
    if not columns:
        raise SourceError(f"source {source_name}: no columns configured")
    if source.format == "text" and columns != ["value"]:
        raise SourceError(f"source {source_name}: a text source has the one column 'value'")
    if source.format == "text" and not source.columns:
        source = dataclasses.replace(source, columns=columns)
    try:
        found = read_files(spark, files, source, run_id=run_id, ingested_at=ingested_at)
    except AnalysisException as exc:
        raise SourceError(f"source {source_name}: cannot read {[f.path for f in files]}: "
                          f"{exc}") from exc
    if found.set_aside:
        first = found.set_aside[0]
        raise SchemaMismatchError(f"source {source_name}: file {first.path} cannot be used: "
                                  f"{first.reason}")
    assert found.df is not None
    return found.df


def read_table(
    spark: SparkSession, path: str, source: SourceConfig, *, source_name: str
) -> DataFrame:
    """A ``delta`` source: the table's configured columns (all of them when none are
    configured); a configured column the table lacks raises `SchemaMismatchError` naming it."""
    try:
        df = spark.read.format("delta").load(path)
    except AnalysisException as exc:
        raise SourceError(f"source {source_name}: cannot read delta table {path}: {exc}") from exc
    missing = [c for c in source.columns if c not in df.columns]
    if missing:
        raise SchemaMismatchError(
            f"source {source_name}: delta table {path} has no column {missing[0]!r} "
            f"(its columns: {', '.join(df.columns)})"
        )
    return df.select(*source.columns) if source.columns else df


def malformed_records(source_format: str) -> Transform:
    """Add the format's reason (`MALFORMED_REASONS`) to ``_errors`` for every record the reader
    could not parse; `etl.transforms.cleaning.split_rejected` then separates them, and
    `etl.writers.quarantine.write_quarantine` keeps them with their raw text when
    ``_corrupt_record`` is among the record columns."""
    return reject_malformed(CORRUPT, MALFORMED_REASONS.get(source_format, "malformed record"))


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
