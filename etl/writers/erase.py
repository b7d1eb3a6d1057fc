"""Erasing rows for good: a Delta DELETE (or UPDATE to null) followed by removing exactly the
data files, in any version, that still hold the erased rows.

A Delta DELETE only writes a new table version: the old data files (and, with change data feed
on, the ``_change_data/`` files holding pre-images; with deletion vectors on, the very files the
rows are in) keep the values until VACUUM removes them, after the table's
``delta.deletedFileRetentionDuration``. `DeltaErase` does not wait:

1. ``DELETE FROM`` the table ``WHERE`` the condition, or ``UPDATE ... SET col = NULL`` for the
   columns given to `DeltaErase.set_null` (and, for `DeltaErase.set_json_null`, fields of a
   JSON text column such as a quarantined row's raw ``record``), in one commit;
2. when deletion vectors are on, ``REORG TABLE ... APPLY (PURGE)`` rewrites the files whose
   rows are only marked deleted;
3. one Spark read of every Parquet file under the table (``recursiveFileLookup``,
   ``mergeSchema``; ``_change_data/`` read on its own, since Spark skips ``_`` folders) finds
   the files that still hold a matching row (``_metadata.file_path``); none may be in the
   current snapshot (else `WriteError`: the erase is incomplete), and exactly those files are
   deleted through Hadoop's FileSystem (local disk, ``s3a://``, ``gs://``).

Time travel to a version that referenced a deleted file fails afterwards, as after VACUUM; so
does reading the change feed over the erasing commit. The ``_delta_log`` itself (commit JSON and
checkpoints) keeps old values in column statistics until log retention passes
(docs/privacy.md). A condition on a partition column is refused: its value is in folder names,
not in the files.

`erase_parquet_folder` does the same for a plain Parquet folder (a staged extract): the files
holding matching rows are rewritten without them (or with the columns null).

Example::

    erased = (DeltaErase(spark, "/wh/bronze/planes")
              .where("tailnum = 'N10156'")
              .user_metadata(run_id)
              .execute())
    erased.rows, erased.files          # rows deleted, files removed from storage
    DeltaErase(spark, "/wh/silver/flights").where("tailnum = 'N10156'").set_null("tailnum").dry_run()
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from etl import storage
from etl.errors import WriteError, jvm_error_text
from etl.tables import commit_metadata, table_detail, table_exists, table_properties

CHANGE_DATA = "_change_data"
_DELETION_VECTORS = "delta.enableDeletionVectors"


@dataclass(frozen=True)
class Erased:
    """What an erase changed (or, from a dry run, would change): ``rows`` of the current table
    deleted or updated, and the data ``files`` (full paths) that held them, in any version."""

    table: str
    rows: int
    files: tuple[str, ...] = ()


def _qualified(spark: SparkSession, paths: Sequence[str], *, uris: bool) -> list[str]:
    """Each path in its fully qualified Hadoop form, for comparing: ``uris`` are escaped URIs
    (Spark's ``_metadata.file_path``), else plain paths (``inputFiles()``)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    found = []
    for path in paths:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(path) if uris else path)
        found.append(str(hadoop_path.getFileSystem(conf).makeQualified(hadoop_path).toString()))
    return found


def _parquet_under(spark: SparkSession, path: str) -> DataFrame | None:
    """Every Parquet file under ``path`` (recursively, ``_``/``.`` folders skipped; deletion
    vector files are not Parquet), with the union of their schemas; ``None`` when there are none."""
    try:
        return (spark.read.option("recursiveFileLookup", "true").option("mergeSchema", "true")
                .option("pathGlobFilter", "*.parquet").parquet(path))
    except AnalysisException as exc:  # no files: Spark cannot infer a schema, or no path
        if "UNABLE_TO_INFER_SCHEMA" in str(exc) or "PATH_NOT_FOUND" in str(exc):
            return None
        raise


def files_holding(spark: SparkSession, path: str, condition: str | Column) -> list[str]:
    """The Parquet files physically under ``path`` (a Delta table's data files of every version
    and its ``_change_data/`` files, or a plain Parquet folder) holding a row that matches
    ``condition``, as qualified paths, sorted."""
    found: set[str] = set()
    for root in (path, f"{path.rstrip('/')}/{CHANGE_DATA}"):
        files = _parquet_under(spark, root)
        if files is None:
            continue
        try:
            rows = (files.where(condition).select(F.col("_metadata.file_path").alias("f"))
                    .distinct().collect())
        except AnalysisException as exc:
            raise WriteError(f"{path}: cannot apply the condition to its files: "
                             f"{jvm_error_text(exc)}") from exc
        found.update(row.f for row in rows)
    return sorted(_qualified(spark, sorted(found), uris=True))


@dataclass(frozen=True)
class DeltaErase:
    """Erase the rows of the Delta table at ``path`` matching a condition: delete them (the
    default) or set columns to null (`set_null`), then purge every file that still holds them
    (see the module's docstring). `dry_run` reports the same without changing anything.

    The rows are chosen by ``where(condition)`` (SQL text; it is recorded in the table's
    history as the commit's predicate) or by ``where_equals(expression, value)``: the rows whose
    ``expression`` equals ``value``, changed by a MERGE against a one-row source, so the history
    records ``expression = value`` (the source's column) and never the value itself (a personal value must not be
    written to ``_delta_log``).

    Guarantees: after `execute`, no data file under the table (any version, change files
    included) holds a row matching the condition, and the current table is the old one without
    those rows (or with those columns null in them); a file of the current snapshot that still
    matched would raise `WriteError` before any file is deleted.
    """

    spark: SparkSession
    path: str
    condition: str | None = None
    equals: tuple[str, str] | None = None
    null_columns: tuple[str, ...] = ()
    #: (JSON text column, its fields set to null in the matching rows)
    json_nulls: tuple[str, tuple[str, ...]] | None = None
    metadata: str | None = None

    def where(self, condition: str) -> Self:
        if not isinstance(condition, str) or not condition.strip():
            raise WriteError(f"{self.path}: where() needs a SQL condition, got {condition!r}")
        return dataclasses.replace(self, condition=condition, equals=None)

    def where_equals(self, expression: str, value: str) -> Self:
        if not isinstance(expression, str) or not expression.strip() or not isinstance(value, str):
            raise WriteError(f"{self.path}: where_equals() needs a SQL expression and a string "
                             f"value, got {expression!r}")
        return dataclasses.replace(self, condition=None, equals=(expression, value))

    def set_null(self, *columns: str) -> Self:
        if not columns or not all(isinstance(c, str) and c for c in columns):
            raise WriteError(f"{self.path}: set_null() needs column names, got {list(columns)!r}")
        return dataclasses.replace(self, null_columns=tuple(columns))

    def set_json_null(self, column: str, *fields: str) -> Self:
        """Keep the matching rows with ``fields`` of the JSON object in text column ``column``
        set to null (a quarantined row's raw ``record``); text that is not a JSON object stays
        as it is."""
        if not column or not fields or not all(isinstance(f, str) and f for f in fields):
            raise WriteError(f"{self.path}: set_json_null() needs a column and field names, got "
                             f"{column!r}, {list(fields)!r}")
        return dataclasses.replace(self, json_nulls=(column, tuple(fields)))

    def user_metadata(self, text: str | None) -> Self:
        return dataclasses.replace(self, metadata=text)

    def _match(self) -> Column:
        if self.equals is not None:
            return F.expr(self.equals[0]) == F.lit(self.equals[1])
        if self.condition is None:
            raise WriteError(f"{self.path}: call where() or where_equals() before erasing")
        return F.expr(self.condition)

    def _checked(self) -> tuple[Column, DataFrame]:
        match = self._match()
        if not table_exists(self.spark, self.path):
            raise WriteError(f"{self.path}: no Delta table to erase from")
        current = self.spark.read.format("delta").load(self.path)
        changed = [*self.null_columns, *([self.json_nulls[0]] if self.json_nulls else [])]
        unknown = [c for c in changed if c not in current.columns]
        if unknown:
            raise WriteError(f"{self.path}: set_null() columns {unknown} are not columns of the "
                             f"table {current.columns}")
        partitions = table_detail(self.spark, self.path)["partitionColumns"]
        text = self.equals[0] if self.equals is not None else str(self.condition)
        touched = [c for c in partitions if c in changed or _mentions(text, c)]
        if touched:
            raise WriteError(f"{self.path}: cannot erase by or null the partition columns "
                             f"{touched}: their values are folder names")
        return match, current

    def dry_run(self) -> Erased:
        """The rows `execute` would change and the files holding them; nothing changes."""
        match, current = self._checked()
        rows = current.where(match).count()
        return Erased(self.path, rows, tuple(files_holding(self.spark, self.path, match)))

    def execute(self) -> Erased:
        match, current = self._checked()
        rows = current.where(match).count()
        if rows:
            with commit_metadata(self.spark, self.metadata):
                self._change(current)
            properties = table_properties(self.spark, self.path)
            if str(properties.get(_DELETION_VECTORS, "false")).lower() == "true":
                with commit_metadata(self.spark, self.metadata):
                    self.spark.sql(f"REORG TABLE delta.`{self.path}` APPLY (PURGE)")
        files = files_holding(self.spark, self.path, match)
        live = set(_qualified(self.spark, self.spark.read.format("delta").load(self.path)
                              .inputFiles(), uris=False))
        still = sorted(live.intersection(files))
        if still:
            raise WriteError(f"{self.path}: the erase is incomplete: files of the current "
                             f"version still hold matching rows: {still}")
        for file in files:
            storage.delete(self.spark, file)
        return Erased(self.path, rows, tuple(files))

    def _change(self, current: DataFrame) -> None:
        """The DELETE or UPDATE, in one commit."""
        table = DeltaTable.forPath(self.spark, self.path)
        types = {f.name: f.dataType for f in current.schema.fields}
        nulls: dict[str, str | Column] = {c: F.lit(None).cast(types[c]) for c in self.null_columns}
        if self.json_nulls is not None:
            column, fields = self.json_nulls
            nulls[column] = json_without(F.col(f"`{column}`"), fields)
        if self.equals is None:
            assert self.condition is not None
            if nulls:
                table.update(self.condition, nulls)
            else:
                table.delete(self.condition)
            return
        expression, value = self.equals
        source = self.spark.createDataFrame([(value,)], "value string")
        merge = table.alias("t").merge(source.alias("s"), f"({expression}) = s.value")
        (merge.whenMatchedUpdate(set=nulls) if nulls else merge.whenMatchedDelete()).execute()


def json_without(column: Column, fields: Sequence[str]) -> Column:
    """``column``'s JSON object text with ``fields`` set to null (compact, as Spark's
    ``to_json`` writes it); other text unchanged. A Python UDF of the standard library only."""
    import json

    names = tuple(fields)

    def without(text: str | None) -> str | None:
        try:
            found = json.loads(text) if text is not None else None
        except ValueError:
            return text
        if not isinstance(found, dict):
            return text
        return json.dumps({k: None if k in names else v for k, v in found.items()},
                          separators=(",", ":"), ensure_ascii=False)

    return F.udf(without, "string")(column)


def _mentions(condition: str, column: str) -> bool:
    """Whether the SQL ``condition`` names ``column`` (bare or in backquotes)."""
    return re.search(rf"(?<![\w.]){re.escape(column)}(?!\w)", condition) is not None


def erase_parquet_folder(
    spark: SparkSession, path: str, condition: str | Column, *, null_columns: Sequence[str] = (),
    dry_run: bool = False,
) -> Erased:
    """Rewrite the Parquet files of the folder ``path`` (a staged extract) that hold rows
    matching ``condition``: without those rows, or with ``null_columns`` null in them. Each file
    is rewritten on its own under the same name (other files and ``_``-files such as a manifest
    stay untouched); a file left with no rows keeps the schema. ``rows`` counts the rows
    removed or changed."""
    match = F.expr(condition) if isinstance(condition, str) else condition
    files = files_holding(spark, path, match)
    if not files:
        return Erased(path, 0)
    matched = spark.read.parquet(*files).where(condition).count()
    if dry_run:
        return Erased(path, matched, tuple(files))
    for file in files:
        rows = spark.read.parquet(file)
        if null_columns:
            kept = rows.select(*(
                F.when(match, F.lit(None).cast(f.dataType)).otherwise(F.col(f"`{f.name}`"))
                .alias(f.name) if f.name in null_columns else F.col(f"`{f.name}`")
                for f in rows.schema.fields))
        else:
            kept = rows.where(~F.coalesce(match, F.lit(False)))
        scratch = f"{file}.erasing"
        kept.coalesce(1).write.mode("overwrite").parquet(scratch)
        written = storage.glob(spark, f"{scratch}/*.parquet")
        storage.delete(spark, file)
        if written:  # Spark writes no file for no rows when the input had none either
            storage.rename(spark, written[0], file)
        storage.delete(spark, scratch)
    return Erased(path, matched, tuple(files))


__all__ = ["CHANGE_DATA", "DeltaErase", "Erased", "erase_parquet_folder", "files_holding"]
