"""Quarantined rows: read them by run and rule, and replay them through their job.

The quarantine tables are written by `etl.writers.quarantine`; replaying adds two nullable
columns to a table the first time it is used: ``replayed_at`` and ``replay_run_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import JobConfig
from etl.context import RunContext, Warehouse
from etl.errors import ConfigError
from etl.tables import table_exists

ReplayHook = Callable[[SparkSession, RunContext, JobConfig, DataFrame], None]
REPLAY_COLUMNS = {"replayed_at": "timestamp", "replay_run_id": "string"}


def read_quarantine(
    spark: SparkSession, warehouse: Warehouse, table: str, run_id: str | None = None
) -> DataFrame:
    """The rows of ``quarantine/<table>`` (of ``run_id`` only, when given), with the replay
    columns (null for rows never replayed)."""
    path = warehouse.quarantine(table)
    if not table_exists(spark, path):
        raise ConfigError(f"no quarantine table for {table!r} at {path}")
    df = spark.read.format("delta").load(path)
    for column, type_ in REPLAY_COLUMNS.items():
        if column not in df.columns:
            df = df.withColumn(column, F.lit(None).cast(type_))
    return df.where(F.col("run_id") == run_id) if run_id else df


def quarantine_summary(rows: DataFrame) -> list[tuple[str, str, int, int]]:
    """``(run_id, reason, rows, replayed)`` per run and reason, by run then reason."""
    counted = (
        rows.select("run_id", F.explode("reasons").alias("reason"), "replayed_at")
        .groupBy("run_id", "reason")
        .agg(F.count("*").alias("rows"), F.count("replayed_at").alias("replayed"))
        .orderBy("run_id", "reason")
        .collect()
    )
    return [(r.run_id, r.reason, r.rows, r.replayed) for r in counted]


def jobs_of(spark: SparkSession, warehouse: Warehouse, table: str, run_id: str) -> list[str]:
    """The jobs that quarantined rows in ``table`` during ``run_id``."""
    rows = read_quarantine(spark, warehouse, table, run_id).select("job").distinct().collect()
    return sorted(r.job for r in rows)


def replay(
    spark: SparkSession, config: JobConfig, table: str, run_id: str, hook: ReplayHook,
    **run_options: Any,
) -> tuple[RunContext, int]:
    """Replay the not yet replayed rows that run ``run_id`` quarantined in ``table``.

    Runs ``hook`` as a job run (`etl.runner.run_job`: run record, lineage, alerts), then marks
    the rows replayed in one commit; returns the replay's context and how many rows were marked.
    Raises `ConfigError` when there is nothing to replay; the hook's errors propagate (and no
    row is marked).
    """
    from etl.runner import run_job

    warehouse = Warehouse.at(config.paths.warehouse)
    pending = read_quarantine(spark, warehouse, table, run_id).where(
        F.col("replayed_at").isNull()).localCheckpoint()
    count = pending.count()
    if count == 0:
        raise ConfigError(f"nothing to replay: quarantine/{table} has no unreplayed rows of "
                          f"run {run_id}")

    def entry(spark: SparkSession, ctx: RunContext, config: JobConfig) -> None:
        ctx.mode = cast(Any, "replay")
        ctx.notes.append(f"replay of {count} rows quarantined in {table} by run {run_id}")
        hook(spark, ctx, config, pending)

    ctx = run_job(config, spark=spark, entry=entry, **run_options)
    mark_replayed(spark, warehouse.quarantine(table), run_id, ctx.run_id)
    return ctx, count


def mark_replayed(spark: SparkSession, path: str, run_id: str, replay_run_id: str) -> None:
    """Set ``replayed_at``/``replay_run_id`` on the unreplayed rows of ``run_id`` (one commit;
    adds the columns to the table first when it lacks them)."""
    from delta.tables import DeltaTable

    missing = [c for c in REPLAY_COLUMNS if c not in spark.read.format("delta").load(path).columns]
    if missing:
        columns = ", ".join(f"{c} {REPLAY_COLUMNS[c].upper()}" for c in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")
    DeltaTable.forPath(spark, path).update(
        condition=(F.col("run_id") == run_id) & F.col("replayed_at").isNull(),
        set={"replayed_at": F.current_timestamp(), "replay_run_id": F.lit(replay_run_id)},
    )


__all__ = ["jobs_of", "mark_replayed", "quarantine_summary", "read_quarantine", "replay"]
