"""From a target's configuration (`etl.config.TargetConfig`) to its writer, and one call that
writes a batch and records what happened on the run.

`write_target` gives every Delta commit the run's identity (``txnAppId`` from job, target and
run id; ``userMetadata`` = run id), so a run retried after its commit succeeded is a no-op, and
records schema changes a policy accepted (``evolve``, ``rescue``) as notes of the run record.

Example (in a job's ``run(spark, ctx, config)``)::

    write_target(spark, ctx, "silver_customers", config.target("silver_customers"), batch)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from etl.config import TargetConfig
from etl.context import RunContext, WriteMetrics
from etl.writers.delta import DeltaAppend, DeltaMerge, DeltaOverwrite, DeltaWrite, run_identity
from etl.writers.jdbc import JdbcConnection, WarehouseLoad
from etl.writers.parquet import ParquetWrite
from etl.writers.scd2 import Scd2Merge


def delta_writer(spark: SparkSession, path: str, target: TargetConfig, *,
                 replace_where: str | None = None, keys_unique: bool = False) -> DeltaWrite:
    """The Delta builder for ``target.mode`` with every option of the target applied.

    ``replace_where`` replaces the rows matching it instead (an overwrite of exactly those
    rows, whatever the mode: the flow's backfills and recomputed aggregates);
    ``keys_unique`` tells a merge the batch already holds one row per key."""
    writer: DeltaWrite
    if replace_where is not None:
        writer = DeltaOverwrite(spark, path).partitioned_by(*target.partition_by).replace_where(
            replace_where)
    elif target.mode in ("merge", "insert_only"):
        merge = (
            DeltaMerge(spark, path).keys(*target.keys).sequence_by(*target.sequence_by)
            .partitioned_by(*target.partition_by, prune=target.prune_partitions)
            .on_duplicates(target.duplicates).insert_only(target.mode == "insert_only")
            .keys_unique(keys_unique)
        )
        if target.delete_column is not None:
            merge = merge.deletes(target.delete_column, target.delete_values,
                                  soft_column=target.soft_delete_column)
        writer = merge
    elif target.mode == "scd2":
        assert target.effective_from is not None
        writer = (
            Scd2Merge(spark, path).keys(*target.keys).tracked(*target.tracked_columns)
            .effective_from(target.effective_from)
        )
    elif target.mode == "append":
        writer = DeltaAppend(spark, path).partitioned_by(*target.partition_by)
    else:
        writer = (
            DeltaOverwrite(spark, path).partitioned_by(*target.partition_by)
            .dynamic_partitions(target.mode == "overwrite_partitions")
        )
    return (
        writer.schema_policy(target.schema_policy).retries(target.max_retries)
        .properties(target.properties).register_as(target.catalog_name)
    )


def input_digest(inputs: Iterable[str]) -> str:
    """A short stable digest of a batch's inputs (e.g. landed files as ``path:size:mtime``),
    usable as the logical run of `write_target`: a retried run over the same inputs then has
    the same identity, whatever its run id."""
    return hashlib.sha256("\n".join(sorted(inputs)).encode()).hexdigest()[:16]


def target_writer(
    spark: SparkSession, ctx: RunContext, name: str, target: TargetConfig,
    logical_run: str | None = None, *, replace_where: str | None = None,
    keys_unique: bool = False,
) -> Any:
    """The writer of target ``name`` for this run (Delta, Parquet or JDBC); Delta commits carry
    the identity of (job, ``name``, ``logical_run`` or else the run id). ``replace_where`` and
    ``keys_unique``: see `delta_writer`."""
    if target.format == "jdbc":
        assert target.jdbc_url and target.jdbc_table
        if target.jdbc_credentials is not None:
            connection = JdbcConnection(target.jdbc_url, target.jdbc_credentials)
        else:
            assert target.jdbc_user
            connection = JdbcConnection.legacy(target.jdbc_url, target.jdbc_user,
                                               target.password_env)
        return (
            WarehouseLoad(spark, connection, target.jdbc_table).keys(*target.keys)
            .full_load(target.mode == "overwrite").with_dialect(target.dialect)
            .on_duplicates(target.duplicates).sequence_by(*target.sequence_by)
            .allow_empty(target.allow_empty)
        )
    path = ctx.warehouse.table(target.layer, target.table)
    if target.format == "parquet":
        writer = ParquetWrite(spark, path).partitioned_by(*target.partition_by)
        writer = {"append": writer.append(), "overwrite": writer.overwrite()}.get(
            target.mode, writer.overwrite_partitions()
        )
        if target.target_file_rows is not None:
            writer = writer.target_file_rows(target.target_file_rows)
        if target.target_file_bytes is not None:
            writer = writer.target_file_bytes(target.target_file_bytes)
        return writer
    return (
        delta_writer(spark, path, target, replace_where=replace_where, keys_unique=keys_unique)
        .user_metadata(ctx.run_id)
        .idempotent(*run_identity(ctx.job, name, logical_run or ctx.run_id))
    )


def write_target(
    spark: SparkSession, ctx: RunContext, name: str, target: TargetConfig, df: DataFrame,
    *, logical_run: str | None = None, replace_where: str | None = None,
    keys_unique: bool = False,
) -> WriteMetrics:
    """Write ``df`` to target ``name`` in one commit, record the metrics on ``ctx`` (and any
    schema change the policy applied, as a note), and return them. ``logical_run`` (default:
    the run id) identifies the commit: writing again with the same one is skipped.
    ``replace_where`` and ``keys_unique``: see `delta_writer`."""
    writer = target_writer(spark, ctx, name, target, logical_run, replace_where=replace_where,
                           keys_unique=keys_unique)
    if isinstance(writer, DeltaWrite) and target.schema_policy != "fail":
        diff = writer.schema_diff(df)
        if diff:
            ctx.note(f"schema {target.schema_policy}: {target.layer}/{target.table}: "
                     f"{diff.describe()}", table=name)
    metrics: WriteMetrics = writer.execute(df)
    ctx.record_write(metrics)
    return metrics


__all__ = ["delta_writer", "input_digest", "target_writer", "write_target"]
