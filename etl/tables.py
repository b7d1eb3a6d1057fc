"""Delta tables as a whole, for readers and writers alike: whether a table exists, its rows,
latest version, detail and commit metrics (read from the commits in its log), the SQL literals
and predicates that select its rows or partitions, its recorded transactions, properties and
catalog name.

Writers (`etl.writers.delta`) build on these; so do the flow, the records and the commands.

Example::

    if table_exists(spark, path):
        rows = read_delta(spark, path).where(in_predicate("flight_date", dates))
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from delta.tables import DeltaTable
from py4j.java_gateway import is_instance_of
from pyspark.sql import DataFrame, Row, SparkSession

from etl.context import WriteMetrics
from etl.errors import WriteError

USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
#: How many recent commits `last_commit_metrics` searches for the one carrying a run's metadata.
HISTORY_SEARCH = 20


def filesystem_cause(spark: SparkSession, exc: BaseException) -> str | None:
    """The first line of the first ``java.io.IOException`` (disk full, read-only file system,
    access denied, a missing folder...) in the Java cause chain of a Py4J error; None when the
    chain holds none (the failure did not come from the storage)."""
    throwable = getattr(exc, "java_exception", None)
    gateway = spark.sparkContext._gateway
    for _ in range(32):  # a cause chain is short; a cycle must not hang the driver
        if throwable is None:
            return None
        if is_instance_of(gateway, throwable, "java.io.IOException"):
            lines = str(throwable.toString()).strip().splitlines()
            return lines[0] if lines else "java.io.IOException"
        throwable = throwable.getCause()
    return None


def table_exists(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def table_detail(spark: SparkSession, path: str) -> Row:
    """``DESCRIBE DETAIL`` of the Delta table at ``path`` (files, size, partitioning, properties)."""
    detail = DeltaTable.forPath(spark, path).detail().first()
    assert detail is not None
    return detail


def _snapshot(spark: SparkSession, path: str) -> Any:
    """The Delta log's current snapshot of the table at ``path`` (its log folder listed, no
    Spark job)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    empty = jvm.scala.Option.empty()
    return log.update(False, empty, empty)


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The table's properties (``DESCRIBE DETAIL``'s ``properties``), from its log's snapshot
    (no Spark job)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    configuration = _snapshot(spark, path).metadata().configuration()
    return {str(k): str(v) for k, v in
            jvm.scala.collection.JavaConverters.mapAsJavaMap(configuration).items()}


def latest_version(spark: SparkSession, path: str) -> int:
    """The table's latest version, from its log's listing (no Spark job)."""
    return int(_snapshot(spark, path).version())


def table_identity(spark: SparkSession, path: str) -> tuple[str, int]:
    """The table's id (set when it was created, new when it is created again at the same path)
    and its latest version: which state of which table a path holds (no Spark job)."""
    snapshot = _snapshot(spark, path)
    return str(snapshot.metadata().id()), int(snapshot.version())


def commit_info(spark: SparkSession, path: str, version: int) -> dict[str, Any]:
    """The ``commitInfo`` action of the table's commit ``version`` (operation, its
    ``operationMetrics``, ``userMetadata``...: what ``DESCRIBE HISTORY`` shows of it), read
    from that commit's file in the log, not by a history query."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    file = jvm.org.apache.hadoop.fs.Path(f"{log.logPath().toString()}/{version:020d}.json")
    stream = file.getFileSystem(log.newDeltaHadoopConf()).open(file)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        while (line := reader.readLine()) is not None:
            action = json.loads(line)
            if "commitInfo" in action:
                return dict(action["commitInfo"])
    finally:
        reader.close()
    return {}


def sql_literal(value: Any) -> str:
    """A SQL literal for a partition value (strings quoted, dates and timestamps typed)."""
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
    """``col IN (v1, v2…)`` with values as SQL literals, sorted for a stable plan; a ``None``
    among the values adds ``OR col IS NULL`` (``IN (NULL)`` matches nothing)."""
    name = f"{alias}.`{column}`" if alias else f"`{column}`"
    present = [v for v in values if v is not None]
    clauses = []
    if present:
        clauses.append(f"{name} IN ({', '.join(sorted({sql_literal(v) for v in present}))})")
    if len(present) < len(values):
        clauses.append(f"{name} IS NULL")
    return clauses[0] if len(clauses) == 1 else f"({' OR '.join(clauses)})"


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


def last_commit_metrics(
    spark: SparkSession, path: str, table: str, user_metadata: str | None = None
) -> WriteMetrics:
    """Metrics of the table's latest commit, or, with ``user_metadata``, of the latest of the
    `HISTORY_SEARCH` latest commits carrying it (so a concurrent writer's newer commit is not
    reported as ours); read from the commits themselves (`commit_info`)."""
    version = latest_version(spark, path)
    entry = commit_info(spark, path, version)
    if user_metadata is not None and entry.get("userMetadata") != user_metadata:
        for earlier in range(version - 1, max(version - HISTORY_SEARCH, -1), -1):
            found = commit_info(spark, path, earlier)
            if found.get("userMetadata") == user_metadata:
                entry, version = found, earlier
                break
    m = {k: int(v) for k, v in (entry.get("operationMetrics") or {}).items() if str(v).isdigit()}
    operation = str(entry.get("operation"))
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
        version=version,
        rows_inserted=inserted,
        rows_updated=updated,
        rows_deleted=deleted,
        files_added=added,
        files_removed=removed,
    )


@contextmanager
def session_confs(spark: SparkSession, confs: Mapping[str, str | None]) -> Iterator[None]:
    """Set the Spark SQL confs whose value is not ``None`` for the block, then restore them."""
    wanted = {k: v for k, v in confs.items() if v is not None}
    previous = {k: spark.conf.get(k, None) for k in wanted}
    for key, value in wanted.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def commit_metadata(spark: SparkSession, text: str | None) -> AbstractContextManager[None]:
    """Set Delta's commit ``userMetadata`` for the writes inside the block."""
    return session_confs(spark, {USER_METADATA_CONF: text})


def table_name(path: str) -> str:
    parts = path.rstrip("/").split("/")
    return "/".join(parts[-2:])


def committed_transaction(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The latest ``txnVersion`` the table recorded for ``app_id`` (its ``SetTransaction``
    state), or ``None``. A table on the local file system is asked through delta-rs, which reads
    the log's transactions without a Spark job (a fifth of a second less per write of a small
    run); a table elsewhere, or one delta-rs cannot read, through Spark's snapshot."""
    from etl.native import on_local_disk, storage

    if on_local_disk(path):
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        try:
            recorded = DeltaTable(storage(path)[0]).transaction_version(app_id)
        except DeltaError:  # a table feature delta-rs does not read: Spark answers
            pass
        else:
            return None if recorded is None else int(recorded)
    transactions = _snapshot(spark, path).transactions()
    return int(transactions.apply(app_id)) if transactions.contains(app_id) else None


def apply_properties(spark: SparkSession, path: str, properties: Mapping[str, str]) -> bool:
    """Set the table properties that differ from ``properties`` (one commit when any differs);
    returns whether a commit was made. The current ones are read from the log's snapshot (no
    Spark job: a run's every write of such a table asks)."""
    current = table_properties(spark, path)
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if not changed:
        return False
    pairs = ", ".join(f"{sql_literal(k)} = {sql_literal(v)}" for k, v in sorted(changed.items()))
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")
    return True


def quoted_name(name: str) -> str:
    """``db.table`` as ```db`.`table```; raises `WriteError` for an empty part."""
    parts = name.split(".")
    if not all(parts) or len(parts) > 3:
        raise WriteError(f"catalog name {name!r} must be table, db.table or catalog.db.table")
    return ".".join(f"`{p}`" for p in parts)


def register_table(spark: SparkSession, name: str, path: str) -> None:
    """Register the Delta table at ``path`` in the session catalog (Hive metastore, or the AWS
    Glue Data Catalog on EMR) as ``name``; its database is created when missing. A name already
    registered for another location is an error."""
    quoted = quoted_name(name)
    if spark.catalog.tableExists(name):
        detail = spark.sql(f"DESCRIBE DETAIL {quoted}").first()
        assert detail is not None
        location = str(detail["location"])
        if location.rstrip("/") not in (path.rstrip("/"), f"file:{path.rstrip('/')}"):
            raise WriteError(f"{path}: catalog name {name} already points at {location}")
        return
    if "." in name:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {quoted.rsplit('.', 1)[0]}")
    spark.sql(f"CREATE TABLE {quoted} USING DELTA LOCATION '{path}'")


def read_delta(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def dates_predicate(column: str, dates: Sequence[Any]) -> str:
    return in_predicate(column, list(dates))


__all__ = [
    "apply_properties",
    "commit_info",
    "commit_metadata",
    "committed_transaction",
    "dates_predicate",
    "filesystem_cause",
    "in_predicate",
    "last_commit_metrics",
    "latest_version",
    "partition_predicate",
    "quoted_name",
    "read_delta",
    "register_table",
    "session_confs",
    "sql_literal",
    "table_detail",
    "table_exists",
    "table_name",
    "table_properties",
]
