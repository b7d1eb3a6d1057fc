"""Delta Lake writers: builders that validate on the driver and commit once in ``execute()``.

Every writer is an immutable builder: each configuration call returns a new builder and nothing
touches Spark or storage until the terminal ``execute(df)``, which writes the data in exactly
one Delta commit (atomic: readers see the table before or after it, never half of it) and
returns `WriteMetrics` read from that commit's own ``commitInfo`` in the Delta log (no history
query). Two changes of the table itself are separate commits: widening a column type under the
``evolve`` policy (just before the data commit) and setting table properties that differ from
the configured ones (just after it).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Self

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.context import WriteMetrics
from etl.errors import SchemaPolicyError, WriteConflictError, WriteError
from etl.logs import get_logger
from etl.tables import (
    apply_properties,
    commit_metadata,
    committed_transaction,
    filesystem_cause,
    in_predicate,
    last_commit_metrics,
    latest_version,
    partition_predicate,
    quoted_name,
    read_delta,
    register_table,
    session_confs,
    table_detail,
    table_exists,
    table_name,
)
from etl.writers.schema import (
    RESCUED,
    SCHEMA_POLICIES,
    ColumnChange,
    SchemaDiff,
    SchemaPolicy,
    conform,
    diff_schemas,
)

_TXN_APP_CONF = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
_log = get_logger("etl.writers")

#: Delta's commit-conflict exceptions: a write that raises one did not commit and may be retried
#: on a fresh snapshot.
CONFLICTS: tuple[type[Exception], ...] = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)


def require_columns(df: DataFrame, columns: Sequence[str], argument: str, path: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise WriteError(
            f"{path}: {argument} {missing} not in the batch's columns {df.columns}"
        )


def run_identity(job: str, target: str, logical_run: str) -> tuple[str, int]:
    """The Delta transaction identity ``(txnAppId, txnVersion)`` of one logical run's write to one
    target. The run is part of the application id (and the version is 0), so a retried run is
    recognised exactly and never confused with an older or newer run of the same job."""
    for name, value in (("job", job), ("target", target), ("logical_run", logical_run)):
        if not value:
            raise WriteError(f"run_identity: {name} must not be empty")
    return f"etl/{job}/{target}/{logical_run}", 0


DuplicatePolicy = Literal["reject", "latest"]
DUPLICATE_POLICIES = ("reject", "latest")


def check_choice(value: str, allowed: Sequence[str], argument: str, path: str) -> None:
    if value not in allowed:
        raise WriteError(f"{path}: {argument} must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class DeltaWrite:
    """What every Delta writer shares: commit identity and metadata, schema policy, retries on
    commit conflicts, table properties and catalog registration.

    * ``idempotent(app_id, version)``: the commit carries Delta's ``txnAppId``/``txnVersion``; when
      the table already recorded that identity the write is skipped (metrics operation
      ``SKIPPED``, no new version) — a run retried after its commit succeeded is a no-op;
    * ``user_metadata(run_id)``: recorded in the commit (``DESCRIBE HISTORY``'s ``userMetadata``);
    * ``schema_policy("evolve" | "fail" | "rescue")``: see `etl.writers.schema`; ``None`` (the
      default) leaves schema checks to Delta;
    * ``retries(n)``: a commit that fails with one of Delta's conflict exceptions (`CONFLICTS`)
      is retried up to ``n`` times on a fresh snapshot, then fails with `WriteConflictError`
      naming the conflict;
    * ``properties({...})``: table properties set after the write when they differ;
    * ``register_as("db.table")``: the table is registered in the session catalog by name.
    """

    spark: SparkSession
    path: str
    metadata: str | None = None
    txn: tuple[str, int] | None = None
    policy: SchemaPolicy | None = None
    max_retries: int = 3
    table_properties: tuple[tuple[str, str], ...] = ()
    catalog_name: str | None = None
    partition_columns: tuple[str, ...] = ()

    def user_metadata(self, text: str | None) -> Self:
        return dataclasses.replace(self, metadata=text)

    def idempotent(self, app_id: str, version: int) -> Self:
        if not app_id or isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise WriteError(
                f"{self.path}: idempotent() needs an app id and a version >= 0, "
                f"got {app_id!r}, {version!r}"
            )
        return dataclasses.replace(self, txn=(app_id, version))

    def schema_policy(self, policy: SchemaPolicy | None) -> Self:
        if policy is not None:
            check_choice(policy, SCHEMA_POLICIES, "schema_policy", self.path)
        return dataclasses.replace(self, policy=policy)

    def retries(self, attempts: int) -> Self:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise WriteError(f"{self.path}: retries must be an integer >= 0, got {attempts!r}")
        return dataclasses.replace(self, max_retries=attempts)

    def properties(self, properties: Mapping[str, str]) -> Self:
        return dataclasses.replace(
            self, table_properties=tuple(sorted((str(k), str(v)) for k, v in properties.items()))
        )

    def register_as(self, name: str | None) -> Self:
        if name is not None:
            quoted_name(name)
        return dataclasses.replace(self, catalog_name=name)

    # -- shared steps of execute() ----------------------------------------------------------

    @property
    def table(self) -> str:
        return table_name(self.path)

    def schema_diff(self, df: DataFrame) -> SchemaDiff:
        """How ``df`` differs from the table (empty when the table does not exist yet)."""
        if not table_exists(self.spark, self.path):
            return SchemaDiff()
        schema = read_delta(self.spark, self.path).schema
        if self.policy == "rescue":
            schema = T.StructType([f for f in schema.fields if f.name != RESCUED])
        return diff_schemas(schema, df.schema)

    def _skipped(self) -> WriteMetrics | None:
        if self.txn is None or not table_exists(self.spark, self.path):
            return None
        app_id, version = self.txn
        recorded = committed_transaction(self.spark, self.path, app_id)
        if recorded is None or recorded < version:
            return None
        return WriteMetrics(
            table=self.table, operation="SKIPPED", version=latest_version(self.spark, self.path)
        )

    def _conform(self, df: DataFrame) -> DataFrame:
        """The batch shaped by the schema policy; widenings are applied to the table first."""
        if self.policy is None or not table_exists(self.spark, self.path):
            return df
        schema = read_delta(self.spark, self.path).schema
        shaped = conform(df, schema, self.policy, name=self.path)
        widened = diff_schemas(schema, df.schema).of_kind("widened")
        if self.policy == "evolve" and widened:
            self._widen(schema, widened, df.schema)
        return shaped

    def _widen(self, schema: T.StructType, widened: Sequence[ColumnChange], batch: T.StructType) -> None:
        """Rewrite the table with the wider column types in one commit: Delta 3.3 cannot change
        ``int`` to ``bigint`` in place (its type-widening feature covers only byte/short)."""
        nested = [c.path for c in widened if "." in c.path]
        if nested:
            raise SchemaPolicyError(
                f"{self.path}: schema policy 'evolve': widening nested fields {nested} is not "
                "supported; nothing was written"
            )
        types = {c.path: batch[c.path].dataType for c in widened}
        current = read_delta(self.spark, self.path)
        rewritten = current.select(
            *(F.col(f"`{f.name}`").cast(types[f.name]).alias(f.name) if f.name in types
              else F.col(f"`{f.name}`") for f in schema.fields)
        )
        partitions = table_detail(self.spark, self.path)["partitionColumns"]
        writer = rewritten.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        if partitions:
            writer = writer.partitionBy(*partitions)
        if self.metadata is not None:
            writer = writer.option("userMetadata", self.metadata)
        writer.save(self.path)

    def _save(self, df: DataFrame, mode: str, options: Mapping[str, str] | None = None) -> None:
        """One ``DataFrameWriter`` commit with the identity, metadata and schema options."""
        writer = df.write.format("delta")
        if self.partition_columns:
            # one file per partition rather than one per task and partition
            writer = df.repartition(*self.partition_columns).write.format("delta")
            writer = writer.partitionBy(*self.partition_columns)
        writer = writer.mode(mode)
        all_options = dict(options or {})
        if self.policy in ("evolve", "rescue"):
            all_options["mergeSchema"] = "true"
        if self.metadata is not None:
            all_options["userMetadata"] = self.metadata
        if self.txn is not None:
            all_options.update(txnAppId=self.txn[0], txnVersion=str(self.txn[1]))
        for key, value in all_options.items():
            writer = writer.option(key, value)
        writer.save(self.path)

    def _commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` (one commit), retrying on Delta's conflict exceptions. A failure the
        storage caused (`filesystem_cause`) raises `WriteError` naming the table's path."""
        for attempt in range(self.max_retries + 1):
            try:
                action()
                return
            except CONFLICTS as exc:
                if attempt == self.max_retries:
                    first_line = (str(exc).strip().splitlines() or [""])[0]
                    raise WriteConflictError(
                        f"{self.path}: {type(exc).__name__} after {attempt + 1} attempts: "
                        f"{first_line}"
                    ) from exc
                _log.warning("commit conflict; retrying on a fresh snapshot", table=self.table,
                             conflict=type(exc).__name__, attempt=attempt + 1)
            except Py4JJavaError as exc:
                cause = filesystem_cause(self.spark, exc)
                if cause is None:
                    raise
                raise WriteError(f"{self.path}: the write failed: {cause}") from exc

    def _finish(self, metrics: WriteMetrics | None = None) -> WriteMetrics:
        """The commit's metrics (read from its ``commitInfo`` unless given), then the table's
        properties and catalog name."""
        if metrics is None:
            metrics = last_commit_metrics(self.spark, self.path, self.table, self.metadata)
        if self.table_properties:
            with commit_metadata(self.spark, self.metadata):
                apply_properties(self.spark, self.path, dict(self.table_properties))
        if self.catalog_name is not None:
            register_table(self.spark, self.catalog_name, self.path)
        return metrics


def dedupe_keys(
    df: DataFrame, keys: Sequence[str], sequence: Sequence[str], policy: DuplicatePolicy, path: str
) -> DataFrame:
    """One row per key: reject duplicates (`WriteError` with sample keys) or keep the latest by
    ``sequence``; rows with equal sequence are ordered by their content, so the pick is stable."""
    if policy == "reject":
        dupes = df.groupBy(*keys).count().where("count > 1").limit(5).collect()
        if dupes:
            sample = [tuple(row[c] for c in keys) for row in dupes]
            raise WriteError(
                f"{path}: the batch holds keys {list(keys)} more than once, e.g. {sample}"
            )
        return df
    content = F.sha2(F.to_json(F.struct(*(F.col(f"`{c}`") for c in df.columns))), 256)
    order = [F.col(f"`{c}`").desc_nulls_last() for c in sequence] + [content.desc()]
    window = Window.partitionBy(*(F.col(f"`{k}`") for k in keys)).orderBy(*order)
    return df.withColumn("_etl_rank", F.row_number().over(window)).where("_etl_rank = 1").drop(
        "_etl_rank"
    )


@dataclass(frozen=True)
class DeltaMerge(DeltaWrite):
    """Upsert a batch into a Delta table by key with MERGE, in one commit.

    Guarantees:

    * rows are matched on ``keys`` (null-safe equality). Duplicate keys in the batch are
      rejected with `WriteError` naming sample keys (``on_duplicates("reject")``, the default),
      or resolved to the latest row by ``sequence_by`` (``on_duplicates("latest")``; ties are
      broken by the row's content, so the result is deterministic);
    * with ``sequence_by``, a batch row replaces (or deletes) a stored row only when its
      sequence is greater (compared as a tuple), so late-arriving older versions never
      overwrite newer ones and re-merging the same batch changes nothing;
    * ``deletes(op_column, values)``: batch rows whose ``op_column`` is one of ``values`` delete
      the stored row (hard delete) and are never inserted; with ``soft_column`` the row is kept
      and that boolean column is set instead (``true`` for deletes, ``false`` otherwise);
    * ``insert_only()``: keys already in the table are left as they are; new keys are inserted
      once (the batch is de-duplicated by the duplicates policy);
    * with ``partitioned_by``, the merge condition gets literal predicates for the partitions
      present in the batch, so untouched partitions are neither scanned nor rewritten, and
      writers of disjoint partitions do not conflict;
    * a table that does not exist yet is created from the batch (partitioned as configured);
    * a MERGE that changes no row and so commits no version reports operation ``NOOP``;
    * everything of `DeltaWrite` (idempotent commits, schema policy, retries).
    """

    key_columns: tuple[str, ...] = ()
    sequence_columns: tuple[str, ...] = ()
    prune: bool = True
    duplicates: DuplicatePolicy = "reject"
    op_column: str | None = None
    delete_values: tuple[str, ...] = ()
    soft_delete_column: str | None = None
    only_insert: bool = False
    unique: bool = False

    def keys(self, *columns: str) -> DeltaMerge:
        return dataclasses.replace(self, key_columns=tuple(columns))

    def sequence_by(self, *columns: str) -> DeltaMerge:
        return dataclasses.replace(self, sequence_columns=tuple(columns))

    def partitioned_by(self, *columns: str, prune: bool = True) -> DeltaMerge:
        return dataclasses.replace(self, partition_columns=tuple(columns), prune=prune)

    def on_duplicates(self, policy: DuplicatePolicy) -> DeltaMerge:
        check_choice(policy, DUPLICATE_POLICIES, "on_duplicates", self.path)
        return dataclasses.replace(self, duplicates=policy)

    def deletes(
        self, op_column: str, values: Sequence[str] = ("D",), *, soft_column: str | None = None
    ) -> DeltaMerge:
        if isinstance(values, str) or not values:
            raise WriteError(f"{self.path}: deletes() needs a list of op values, got {values!r}")
        return dataclasses.replace(
            self, op_column=op_column, delete_values=tuple(values), soft_delete_column=soft_column
        )

    def insert_only(self, enabled: bool = True) -> DeltaMerge:
        return dataclasses.replace(self, only_insert=enabled)

    def keys_unique(self, enabled: bool = True) -> DeltaMerge:
        """The caller guarantees one row per key (it ran `latest_per_key` on these keys): the
        duplicates policy is not applied again (no extra pass over the batch)."""
        return dataclasses.replace(self, unique=enabled)

    def _validate(self, df: DataFrame) -> None:
        if not self.key_columns:
            raise WriteError(f"{self.path}: keys() must name at least one column")
        require_columns(df, self.key_columns, "keys", self.path)
        require_columns(df, self.sequence_columns, "sequence_by", self.path)
        require_columns(df, self.partition_columns, "partitioned_by", self.path)
        if self.op_column is not None:
            require_columns(df, [self.op_column], "deletes", self.path)
        if self.only_insert and self.op_column is not None:
            raise WriteError(f"{self.path}: insert_only() cannot be combined with deletes()")

    def _is_delete(self, alias: str | None = None) -> str:
        assert self.op_column is not None
        return f"coalesce({in_predicate(self.op_column, list(self.delete_values), alias)}, false)"

    def execute(self, df: DataFrame) -> WriteMetrics:
        self._validate(df)
        skipped = self._skipped()
        if skipped is not None:
            return skipped
        batch = df if self.unique else dedupe_keys(
            df, self.key_columns, self.sequence_columns, self.duplicates, self.path)
        hard_delete = self.op_column is not None and self.soft_delete_column is None
        if self.soft_delete_column is not None:
            batch = batch.withColumn(self.soft_delete_column, F.expr(self._is_delete()))
        with commit_metadata(self.spark, self.metadata):
            if not table_exists(self.spark, self.path):
                first = batch.where(f"NOT {self._is_delete()}") if hard_delete else batch
                self._commit(lambda: self._save(first, "append"))
                return self._finish()
            batch = self._conform(batch)
            condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in self.key_columns)
            if self.partition_columns and self.prune:
                pruning = partition_predicate(batch, self.partition_columns, alias="t")
                if pruning is None:
                    return WriteMetrics(table=self.table, operation="NOOP")
                condition = f"{pruning} AND {condition}"
            before = latest_version(self.spark, self.path)
            self._commit(lambda: self._merge(batch, condition, hard_delete))
            metrics = last_commit_metrics(self.spark, self.path, self.table, self.metadata)
            if metrics.version is not None and metrics.version <= before:
                # Delta commits no version for a MERGE that changes nothing (e.g. only deletes
                # of absent keys): report that, not the metrics of the commit before it
                return WriteMetrics(table=self.table, operation="NOOP", version=before)
        return self._finish(metrics)

    def _merge(self, batch: DataFrame, condition: str, hard_delete: bool) -> None:
        newer = None
        if self.sequence_columns:
            s_cols = ", ".join(f"s.`{c}`" for c in self.sequence_columns)
            t_cols = ", ".join(f"t.`{c}`" for c in self.sequence_columns)
            newer = f"struct({s_cols}) > struct({t_cols})"
        builder = DeltaTable.forPath(self.spark, self.path).alias("t").merge(batch.alias("s"), condition)
        if hard_delete:
            is_delete = self._is_delete("s")
            builder = builder.whenMatchedDelete(_and(is_delete, newer))
            builder = builder.whenMatchedUpdateAll(_and(f"NOT {is_delete}", newer))
            builder = builder.whenNotMatchedInsertAll(f"NOT {is_delete}")
        elif self.only_insert:
            builder = builder.whenNotMatchedInsertAll()
        else:
            builder = builder.whenMatchedUpdateAll(newer).whenNotMatchedInsertAll()
        if self.policy in ("evolve", "rescue"):
            builder = builder.withSchemaEvolution()
        with session_confs(self.spark, txn_confs(self.txn)):
            builder.execute()


def txn_confs(txn: tuple[str, int] | None) -> dict[str, str | None]:
    """The session confs that give a DML commit (MERGE, UPDATE, DELETE) Delta's transaction
    identity: Delta 3.3.2 honours them and skips the commit when the identity is recorded."""
    return {
        _TXN_APP_CONF: txn[0] if txn else None,
        _TXN_VERSION_CONF: str(txn[1]) if txn else None,
    }


def _and(*conditions: str | None) -> str | None:
    present = [c for c in conditions if c]
    return " AND ".join(f"({c})" for c in present) if present else None


@dataclass(frozen=True)
class DeltaAppend(DeltaWrite):
    """Append a batch to a Delta table (created when missing) in one commit. With
    ``idempotent()`` a retried append of the same run adds nothing."""

    def partitioned_by(self, *columns: str) -> DeltaAppend:
        return dataclasses.replace(self, partition_columns=tuple(columns))

    def execute(self, df: DataFrame) -> WriteMetrics:
        require_columns(df, self.partition_columns, "partitioned_by", self.path)
        skipped = self._skipped()
        if skipped is not None:
            return skipped
        batch = self._conform(df)
        self._commit(lambda: self._save(batch, "append"))
        return self._finish()


@dataclass(frozen=True)
class DeltaOverwrite(DeltaWrite):
    """Replace a Delta table, the rows matching ``replace_where``, or exactly the partitions
    present in the batch (``dynamic_partitions()``), in one commit.

    With ``replace_where`` (e.g. ``flight_date IN (DATE '2013-01-01')``) Delta checks that every
    written row matches the predicate and atomically replaces exactly the matching rows: the
    rest of the table is untouched, and running the same write twice leaves the same table.
    With ``dynamic_partitions()`` (needs ``partitioned_by``) Delta replaces the partitions the
    batch has rows for and no other. Without either the whole table is replaced. Schema changes
    are refused unless ``overwrite_schema()`` is set (only valid for a whole-table overwrite) or
    a schema policy allows them.
    """

    predicate: str | None = None
    replace_schema: bool = False
    dynamic: bool = False

    def replace_where(self, predicate: str | None) -> DeltaOverwrite:
        return dataclasses.replace(self, predicate=predicate)

    def partitioned_by(self, *columns: str) -> DeltaOverwrite:
        return dataclasses.replace(self, partition_columns=tuple(columns))

    def overwrite_schema(self, enabled: bool = True) -> DeltaOverwrite:
        return dataclasses.replace(self, replace_schema=enabled)

    def dynamic_partitions(self, enabled: bool = True) -> DeltaOverwrite:
        return dataclasses.replace(self, dynamic=enabled)

    def execute(self, df: DataFrame) -> WriteMetrics:
        require_columns(df, self.partition_columns, "partitioned_by", self.path)
        if self.replace_schema and self.predicate:
            raise WriteError(f"{self.path}: overwrite_schema() cannot be used with replace_where()")
        if self.dynamic and (self.predicate or not self.partition_columns):
            raise WriteError(
                f"{self.path}: dynamic_partitions() needs partitioned_by() and no replace_where()"
            )
        skipped = self._skipped()
        if skipped is not None:
            return skipped
        exists = table_exists(self.spark, self.path)
        batch = df if self.replace_schema else self._conform(df)
        options: dict[str, str] = {}
        if self.predicate and exists:
            options["replaceWhere"] = self.predicate
        if self.dynamic and exists:
            options["partitionOverwriteMode"] = "dynamic"
        if self.replace_schema:
            options["overwriteSchema"] = "true"
        self._commit(lambda: self._save(batch, "overwrite", options))
        return self._finish()


__all__ = [
    "CONFLICTS",
    "DUPLICATE_POLICIES",
    "DeltaAppend",
    "DeltaMerge",
    "DeltaOverwrite",
    "DeltaWrite",
    "DuplicatePolicy",
    "check_choice",
    "dedupe_keys",
    "require_columns",
    "run_identity",
    "txn_confs",
]
