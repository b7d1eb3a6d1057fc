"""The quarantine: rejected rows with their raw record, source file and reasons.

``<warehouse>/quarantine/<table>`` is a Delta table with one row per rejected record:
``run_id``, ``job``, ``table``, ``source_file``, ``reasons`` (array of strings, one per failed
check), ``record`` (the row as landed, JSON), ``quarantined_at`` and ``rules`` (names of the
data-quality rules the row failed; empty for rows rejected while typing).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.context import RunContext
from etl.tables import last_commit_metrics
from etl.transforms.cleaning import ERRORS, RAW_RECORD


def quarantine_rows(
    rejected: DataFrame, ctx: RunContext, table: str, record_columns: Sequence[str],
    rules: str | None = None,
) -> DataFrame:
    """The quarantine rows for ``rejected`` (rows carrying ``_errors`` reasons; ``rules`` names
    a column holding the failed rules' names)."""
    # the row as landed, when the job kept it (RAW_RECORD) before typing; else the given columns
    record = (F.col(RAW_RECORD) if RAW_RECORD in rejected.columns
              else F.to_json(F.struct(*record_columns)))
    source = F.col("_source_file") if "_source_file" in rejected.columns else F.lit(None)
    return rejected.select(
        F.lit(ctx.run_id).alias("run_id"),
        F.lit(ctx.job).alias("job"),
        F.lit(table).alias("table"),
        source.cast("string").alias("source_file"),
        F.col(ERRORS).alias("reasons"),
        record.alias("record"),
        F.current_timestamp().alias("quarantined_at"),
        (F.col(rules) if rules else F.array().cast("array<string>")).alias("rules"),
    )


def write_quarantine(
    rejected: DataFrame, ctx: RunContext, table: str, record_columns: Sequence[str],
    rules: str | None = None,
) -> int:
    """Append ``rejected`` to the table's quarantine in one commit; returns the row count.
    Nothing is written (and 0 returned) when there are no rejected rows."""
    if rejected.isEmpty():
        return 0
    path = ctx.warehouse.quarantine(table)
    rows = quarantine_rows(rejected, ctx, table, record_columns, rules)
    (rows.write.format("delta").mode("append").option("userMetadata", ctx.run_id)
     .option("mergeSchema", "true").save(path))
    metrics = last_commit_metrics(rejected.sparkSession, path, f"quarantine/{table}")
    return metrics.rows_inserted
