"""Delta Lake writers: builders that validate on the driver and commit once in ``execute()``.

Every writer is an immutable builder: each configuration call returns a new builder and nothing
touches Spark or storage until the terminal ``execute(df)``, which performs exactly one Delta
commit (atomic: readers see the table before or after it, never half of it) and returns
`WriteMetrics` read from that commit's history entry.

Example::

    metrics = (
        DeltaMerge(spark, "/wh/silver/flights")
        .keys("carrier", "flight", "time_hour")
        .sequence_by("_source_modified", "_source_file")
        .partitioned_by("year", "month", "day")
        .user_metadata(run_id)
        .execute(batch)
    )
    metrics.rows_inserted, metrics.rows_updated
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from etl.context import WriteMetrics
from etl.errors import WriteError

_USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def table_exists(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def sql_literal(value: Any) -> str:
    """A SQL literal for a partition value (strings quoted, dates and timestamps typed)."""
    import datetime as dt

    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def in_predicate(column: str, values: Sequence[Any], alias: str | None = None) -> str:
    """``col IN (v1, v2…)`` with values as SQL literals, sorted for a stable plan."""
    name = f"{alias}.`{column}`" if alias else f"`{column}`"
    literals = sorted({sql_literal(v) for v in values})
    return f"{name} IN ({', '.join(literals)})"


def partition_predicate(
    df: DataFrame, partition_by: Sequence[str], alias: str | None = None
) -> str | None:
    """A predicate covering the partitions present in ``df`` (``None`` when it is empty)."""
    if not partition_by:
        return None
    rows = df.select(*partition_by).distinct().collect()
    if not rows:
        return None
    clauses = []
    for col in partition_by:
        values = {row[col] for row in rows}
        name = f"{alias}.`{col}`" if alias else f"`{col}`"
        present = [v for v in values if v is not None]
        parts = [in_predicate(col, present, alias)] if present else []
        if None in values:  # NULL never matches IN: the null partition needs its own test
            parts.append(f"{name} IS NULL")
        clauses.append(parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})")
    return " AND ".join(clauses)


def last_commit_metrics(spark: SparkSession, path: str, table: str) -> WriteMetrics:
    entry = DeltaTable.forPath(spark, path).history(1).first()
    assert entry is not None
    m = {k: int(v) for k, v in (entry["operationMetrics"] or {}).items() if str(v).isdigit()}
    operation = entry["operation"]
    if operation == "MERGE":
        inserted, updated = m.get("numTargetRowsInserted", 0), m.get("numTargetRowsUpdated", 0)
        deleted = m.get("numTargetRowsDeleted", 0)
        added, removed = m.get("numTargetFilesAdded", 0), m.get("numTargetFilesRemoved", 0)
    else:
        # a rewrite that replaced part of a file copies the rest: those rows are not new
        inserted, updated = m.get("numOutputRows", 0) - m.get("numCopiedRows", 0), 0
        deleted = m.get("numDeletedRows", 0)
        added, removed = m.get("numFiles", m.get("numAddedFiles", 0)), m.get("numRemovedFiles", 0)
    return WriteMetrics(
        table=table,
        operation=operation,
        version=int(entry["version"]),
        rows_inserted=inserted,
        rows_updated=updated,
        rows_deleted=deleted,
        files_added=added,
        files_removed=removed,
    )


@contextmanager
def commit_metadata(spark: SparkSession, text: str | None) -> Iterator[None]:
    """Set Delta's commit ``userMetadata`` for the writes inside the block."""
    if text is None:
        yield
        return
    previous = spark.conf.get(_USER_METADATA_CONF, None)
    spark.conf.set(_USER_METADATA_CONF, text)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_USER_METADATA_CONF)
        else:
            spark.conf.set(_USER_METADATA_CONF, previous)


def _require_columns(df: DataFrame, columns: Sequence[str], argument: str, path: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise WriteError(
            f"{path}: {argument} {missing} not in the batch's columns {df.columns}"
        )


def _table_name(path: str) -> str:
    parts = path.rstrip("/").split("/")
    return "/".join(parts[-2:])


@dataclass(frozen=True)
class DeltaMerge:
    """Upsert a batch into a Delta table by key with MERGE, in one commit.

    Guarantees:

    * rows are matched on ``keys`` (null-safe equality); the batch must hold each key once
      (de-duplicate it first, e.g. with ``etl.transforms.cleaning.latest_per_key``), otherwise
      the write fails with `WriteError` naming sample keys;
    * with ``sequence_by``, a batch row replaces a stored row only when its sequence is
      greater (compared as a tuple), so late-arriving older versions never overwrite newer ones
      and re-merging the same batch changes nothing;
    * with ``partitioned_by``, the merge condition gets literal predicates for the partitions
      present in the batch, so untouched partitions are neither scanned nor rewritten;
    * a table that does not exist yet is created from the batch (partitioned as configured).
    """

    spark: SparkSession
    path: str
    key_columns: tuple[str, ...] = ()
    sequence_columns: tuple[str, ...] = ()
    partition_columns: tuple[str, ...] = ()
    prune: bool = True
    metadata: str | None = None

    def keys(self, *columns: str) -> DeltaMerge:
        return dataclasses.replace(self, key_columns=tuple(columns))

    def sequence_by(self, *columns: str) -> DeltaMerge:
        return dataclasses.replace(self, sequence_columns=tuple(columns))

    def partitioned_by(self, *columns: str, prune: bool = True) -> DeltaMerge:
        return dataclasses.replace(self, partition_columns=tuple(columns), prune=prune)

    def user_metadata(self, text: str | None) -> DeltaMerge:
        return dataclasses.replace(self, metadata=text)

    def _validate(self, df: DataFrame) -> None:
        if not self.key_columns:
            raise WriteError(f"{self.path}: keys() must name at least one column")
        _require_columns(df, self.key_columns, "keys", self.path)
        _require_columns(df, self.sequence_columns, "sequence_by", self.path)
        _require_columns(df, self.partition_columns, "partitioned_by", self.path)

    def _check_unique_keys(self, df: DataFrame) -> None:
        dupes = df.groupBy(*self.key_columns).count().where("count > 1").limit(5).collect()
        if dupes:
            sample = [tuple(row[c] for c in self.key_columns) for row in dupes]
            raise WriteError(
                f"{self.path}: the batch holds keys {list(self.key_columns)} more than once, "
                f"e.g. {sample}"
            )

    def execute(self, df: DataFrame) -> WriteMetrics:
        self._validate(df)
        self._check_unique_keys(df)
        table = _table_name(self.path)
        with commit_metadata(self.spark, self.metadata):
            if not table_exists(self.spark, self.path):
                writer = df.write.format("delta").mode("append")
                if self.partition_columns:
                    # one file per partition rather than one per task and partition
                    writer = df.repartition(*self.partition_columns).write.format("delta")
                    writer = writer.mode("append").partitionBy(*self.partition_columns)
                writer.save(self.path)
                return last_commit_metrics(self.spark, self.path, table)
            condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in self.key_columns)
            if self.partition_columns and self.prune:
                pruning = partition_predicate(df, self.partition_columns, alias="t")
                if pruning is None:
                    return WriteMetrics(table=table, operation="NOOP")
                condition = f"{pruning} AND {condition}"
            update_when = None
            if self.sequence_columns:
                s_cols = ", ".join(f"s.`{c}`" for c in self.sequence_columns)
                t_cols = ", ".join(f"t.`{c}`" for c in self.sequence_columns)
                update_when = f"struct({s_cols}) > struct({t_cols})"
            (
                DeltaTable.forPath(self.spark, self.path)
                .alias("t")
                .merge(df.alias("s"), condition)
                .whenMatchedUpdateAll(condition=update_when)
                .whenNotMatchedInsertAll()
                .execute()
            )
        return last_commit_metrics(self.spark, self.path, table)


@dataclass(frozen=True)
class DeltaOverwrite:
    """Replace a Delta table, or only the rows matching ``replace_where``, in one commit.

    With ``replace_where`` (e.g. ``flight_date IN (DATE '2013-01-01')``) Delta checks that every
    written row matches the predicate and atomically replaces exactly the matching rows: the
    rest of the table is untouched, and running the same write twice leaves the same table.
    Without it the whole table is replaced. Schema changes are refused unless
    ``overwrite_schema()`` is set (only valid for a whole-table overwrite).
    """

    spark: SparkSession
    path: str
    predicate: str | None = None
    partition_columns: tuple[str, ...] = ()
    metadata: str | None = None
    replace_schema: bool = False

    def replace_where(self, predicate: str | None) -> DeltaOverwrite:
        return dataclasses.replace(self, predicate=predicate)

    def partitioned_by(self, *columns: str) -> DeltaOverwrite:
        return dataclasses.replace(self, partition_columns=tuple(columns))

    def user_metadata(self, text: str | None) -> DeltaOverwrite:
        return dataclasses.replace(self, metadata=text)

    def overwrite_schema(self, enabled: bool = True) -> DeltaOverwrite:
        return dataclasses.replace(self, replace_schema=enabled)

    def execute(self, df: DataFrame) -> WriteMetrics:
        _require_columns(df, self.partition_columns, "partitioned_by", self.path)
        if self.replace_schema and self.predicate:
            raise WriteError(f"{self.path}: overwrite_schema() cannot be used with replace_where()")
        exists = table_exists(self.spark, self.path)
        writer = df.write.format("delta").mode("overwrite")
        if self.partition_columns:
            writer = df.repartition(*self.partition_columns).write.format("delta")
            writer = writer.mode("overwrite").partitionBy(*self.partition_columns)
        if self.predicate and exists:
            writer = writer.option("replaceWhere", self.predicate)
        if self.replace_schema:
            writer = writer.option("overwriteSchema", "true")
        if self.metadata is not None:
            writer = writer.option("userMetadata", self.metadata)
        writer.save(self.path)
        return last_commit_metrics(self.spark, self.path, _table_name(self.path))


def read_delta(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def dates_predicate(column: str, dates: Sequence[Any]) -> str:
    return in_predicate(column, list(dates))


__all__ = [
    "DeltaMerge",
    "DeltaOverwrite",
    "dates_predicate",
    "in_predicate",
    "last_commit_metrics",
    "partition_predicate",
    "read_delta",
    "sql_literal",
    "table_exists",
]
