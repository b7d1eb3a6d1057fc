"""The project's own records under ``<warehouse>/_etl/``: one Delta table each, declared here
with its schema, and read and written the same way.

========================  =====================  =============================================
table                      location               one row per
========================  =====================  =============================================
`RUNS`                     ``_etl/runs``           run, and step of a run (`etl.runlog`)
`DEAD_LETTERS`             ``_etl/dead_letters``   source or landed file that could not be used
`FILES`                    ``_etl/state/files``    landed file version ingested, set aside or
                                                   readmitted (`etl.state`)
`WATERMARKS`               ``_etl/state/           job and source: how far it was extracted
                           watermarks``            (`etl.watermarks`)
`BACKFILLS`                ``_etl/backfills``      change of a backfilled date's status
                                                   (`etl.backfill`)
`QUALITY_METRICS`          ``_etl/quality_         rule result and Deequ metric of an audit
                           metrics``               (`etl.quality.history`)
`ERASURES`                 ``_etl/erasures``       subject's value erased by ``etl forget``
                                                   (`etl.erasure`), as its keyed hash
`RETENTION`                ``_etl/retention``      table a job's retention was enforced on
                                                   (`etl.retention`)
========================  =====================  =============================================

Every write is one commit carrying the run id as Delta ``userMetadata``. Appends conflict only
when two of them create the same table, and the loser is retried; `RecordTable.merge` upserts by
the table's ``keys``. A table that does not exist yet reads as ``None`` (nothing was recorded),
never as an error.

Example::

    path = ctx.warehouse.records(FILES.name)
    FILES.append(spark, path, [(job, source, uri, size, mtime, run_id, now)], run_id=run_id)
    ledger = FILES.read(spark, path)      # a DataFrame, or None
    mine = FILES.select(spark, path, ["path", "size"], job="flights")  # a list of dicts

On the local file system a run's books are kept without Spark jobs: its reads (the ledger's
entries, the metric history, the watermarks) go through `select`, and `append` and `merge` of
rows given as tuples commit through delta-rs (`etl.native`). Elsewhere (S3, GCS), or for a table
delta-rs cannot read or write, Spark does the same work.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.tables import table_exists

#: How often `RecordTable.append` retries a commit that lost a conflict.
APPEND_RETRIES = 3


def _fields(*fields: tuple[str, T.DataType, bool]) -> T.StructType:
    return T.StructType([T.StructField(name, type_, nullable) for name, type_, nullable in fields])


@dataclass(frozen=True)
class RecordTable:
    """A record table: its location under ``_etl/`` (``name``), its schema, and the key columns
    `merge` upserts on. ``evolving`` tables accept new columns on append (the run record gains
    columns as the library does)."""

    name: str
    schema: T.StructType
    keys: tuple[str, ...] = ()
    evolving: bool = False

    def exists(self, spark: SparkSession, path: str) -> bool:
        return table_exists(spark, path)

    def read(self, spark: SparkSession, path: str) -> DataFrame | None:
        """The table's rows, or ``None`` when nothing was recorded yet."""
        if not self.exists(spark, path):
            return None
        return spark.read.format("delta").load(path)

    def select(self, spark: SparkSession, path: str, columns: Sequence[str],
               **equal: str) -> Sequence[Mapping[str, Any]]:
        """``columns`` of the rows whose columns named in ``equal`` hold its values, as dicts
        (nothing when nothing was recorded); a column an older table does not have yet reads
        as ``None``. A table on the local file system is read by delta-rs, without a Spark job
        (`etl.native.select`); elsewhere, or a table delta-rs cannot read, by Spark."""
        from etl.native import select

        found = select(path, columns, equal)
        if found is not None:
            return found
        recorded = self.read(spark, path)
        if recorded is None:
            return []
        present = set(recorded.columns)
        wanted = functools.reduce(operator.and_, [F.col(k) == v for k, v in equal.items()],
                                  F.lit(True))
        return [row.asDict() for row in recorded.where(wanted).select(*[
            F.col(c) if c in present else F.lit(None).alias(c) for c in columns]).collect()]

    def frame(self, spark: SparkSession, rows: Sequence[Sequence[Any]]) -> DataFrame:
        """``rows`` (tuples in the schema's column order) as a frame of this table's schema."""
        return spark.createDataFrame(list(rows), self.schema)

    def append(self, spark: SparkSession, path: str, rows: Sequence[Sequence[Any]] | DataFrame,
               *, run_id: str | None = None) -> None:
        """Append ``rows`` in one commit (nothing for no rows); ``run_id`` becomes the commit's
        ``userMetadata``. Rows given as tuples go to a table on the local file system through
        delta-rs (`etl.native.append`), without a Spark job. Two appends that both create the
        table (the first runs of a parallel backfill) conflict: the one that lost is retried on
        the new table (`APPEND_RETRIES`)."""
        from etl import native
        from etl.writers.delta import CONFLICTS

        if not isinstance(rows, DataFrame):
            if not rows or native.append(path, self.schema, rows, run_id=run_id,
                                         merge_schema=self.evolving):
                return
        df = rows if isinstance(rows, DataFrame) else self.frame(spark, rows)
        writer = df.write.format("delta").mode("append")
        if self.evolving:
            writer = writer.option("mergeSchema", "true")
        if run_id is not None:
            writer = writer.option("userMetadata", run_id)
        for attempt in range(APPEND_RETRIES + 1):
            try:
                writer.save(path)
                return
            except CONFLICTS:
                # a conflicting commit did not happen: appending again adds the rows once
                if attempt == APPEND_RETRIES:
                    raise

    def merge(self, spark: SparkSession, path: str, rows: Sequence[Sequence[Any]],
              *, run_id: str) -> None:
        """Upsert ``rows`` by ``keys`` in one commit (nothing for no rows)."""
        from etl import native
        from etl.writers.delta import DeltaMerge

        if not self.keys:
            raise TypeError(f"record table {self.name} has no keys to merge on")
        if not rows or native.upsert(path, self.schema, rows, self.keys, run_id=run_id):
            return
        DeltaMerge(spark, path).keys(*self.keys).user_metadata(run_id).execute(
            self.frame(spark, rows))


S, L, INT, D, TS, B, DBL = (T.StringType(), T.LongType(), T.IntegerType(), T.DateType(),
                          T.TimestampType(), T.BooleanType(), T.DoubleType())

WRITE = _fields(
    ("table", S, True), ("operation", S, True), ("version", L, True), ("rows_inserted", L, True),
    ("rows_updated", L, True), ("rows_deleted", L, True), ("files_added", L, True),
    ("files_removed", L, True),
)

RUNS = RecordTable("runs", _fields(
    ("run_id", S, False), ("record_type", S, False), ("step", S, True), ("step_index", INT, True),
    ("job", S, False), ("env", S, False), ("mode", S, False), ("date_from", D, True),
    ("date_to", D, True), ("status", S, False), ("started_at", TS, False),
    ("ended_at", TS, True), ("duration_s", DBL, True), ("rows_read", L, True),
    ("rows_written", L, True), ("rows_loaded", L, True), ("rows_quarantined", L, True),
    ("rows_filtered", L, True), ("writes", T.ArrayType(WRITE), True), ("quality", S, True),
    ("schema_changes", T.ArrayType(S), True), ("notes", T.ArrayType(S), True),
    ("error_class", S, True), ("error_message", S, True), ("spark_app_id", S, True),
    ("spark_stages", INT, True), ("spark_executor_time_ms", L, True),
    ("spark_shuffle_read_bytes", L, True), ("spark_shuffle_write_bytes", L, True),
    ("spark_spill_bytes", L, True), ("lineage_run_id", S, True), ("parent_run_id", S, True),
    ("etl_version", S, False), ("git_commit", S, True),
    ("files_set_aside", T.ArrayType(S), True),
    # a step's Spark jobs and their tasks (step rows; on a run row, the sum of its steps')
    ("spark_jobs", INT, True), ("spark_tasks", L, True),
), evolving=True)

DEAD_LETTERS = RecordTable("dead_letters", _fields(
    ("job", S, False), ("run_id", S, False), ("source", S, True), ("error_class", S, False),
    ("reason", S, False), ("recorded_at", TS, False),
    # a landed file set aside: where it is, its size and modification time
    ("path", S, True), ("size", L, True), ("modified_ms", L, True),
), evolving=True)

FILES = RecordTable("state/files", _fields(
    ("job", S, False), ("source", S, False), ("path", S, False), ("size", L, False),
    ("modified_ms", L, False), ("run_id", S, False), ("ingested_at", TS, False),
    # ingested (also null, in ledgers older than the column), set_aside or readmitted
    ("status", S, True), ("reason", S, True),
), evolving=True)

WATERMARKS = RecordTable("state/watermarks", _fields(
    ("job", S, False), ("source", S, False), ("column", S, False), ("kind", S, False),
    ("value", S, False), ("run_id", S, False), ("updated_at", TS, False),
), keys=("job", "source"))

BACKFILLS = RecordTable("backfills", _fields(
    ("job", S, False), ("date", D, False), ("status", S, False), ("run_id", S, True),
    ("error", S, True), ("updated_at", TS, False),
))

QUALITY_METRICS = RecordTable("quality_metrics", _fields(
    ("job", S, False), ("table", S, False), ("run_id", S, False), ("logical_date", D, False),
    ("date_from", D, True), ("date_to", D, True), ("kind", S, False), ("rule", S, True),
    ("severity", S, True), ("passed", B, True), ("constraint", S, True), ("entity", S, True),
    ("instance", S, True), ("metric", S, True), ("value", DBL, True), ("rows_failed", L, True),
    ("message", S, True), ("gate_passed", B, False), ("checked_at", TS, False),
))

#: The erasure ledger: ``value_hash`` is the keyed hash of the erased value (never the value);
#: ``tables`` and ``files`` what the erase changed and purged.
ERASURES = RecordTable("erasures", _fields(
    ("job", S, False), ("subject", S, False), ("value_hash", S, False),
    ("tables", T.ArrayType(S), False), ("files", T.ArrayType(S), False), ("rows", L, False),
    ("requested_at", TS, False), ("finished_at", TS, False), ("run_id", S, False),
))

RETENTION = RecordTable("retention", _fields(
    ("job", S, False), ("layer", S, False), ("table", S, False), ("cutoff", TS, False),
    ("rows_deleted", L, False), ("files_purged", L, False), ("enforced_at", TS, False),
    ("run_id", S, False),
))

#: Every record table, by name.
ALL = {t.name: t for t in (RUNS, DEAD_LETTERS, FILES, WATERMARKS, BACKFILLS, QUALITY_METRICS,
                           ERASURES, RETENTION)}

__all__ = ["ALL", "APPEND_RETRIES", "BACKFILLS", "DEAD_LETTERS", "ERASURES", "FILES",
           "QUALITY_METRICS", "RETENTION", "RUNS", "WATERMARKS", "WRITE", "RecordTable"]
