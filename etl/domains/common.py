"""What the file-driven jobs (flights, tpch) share: landing files in bronze, the audit step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession

from etl.config import JobConfig, RuleConfig
from etl.context import RunContext, WriteMetrics
from etl.errors import EtlError
from etl.quality import AuditResult, audit
from etl.readers.files import LandedFile, explain_read_failure, read_landed
from etl.tables import in_predicate
from etl.writers.delta import DeltaOverwrite


def ingest_files(
    spark: SparkSession,
    ctx: RunContext,
    config: JobConfig,
    source_name: str,
    files: Sequence[LandedFile],
    bronze_path: str,
    *,
    replace_files: bool,
) -> WriteMetrics:
    """Land ``files`` in bronze in one commit: replace those files' rows (append sources) or
    the whole table (snapshot sources). The commit's metrics are recorded on ``ctx`` and
    returned (``rows_inserted`` is the number of rows read from the files)."""
    raw = read_landed(
        spark, files, config.source(source_name), source_name=source_name,
        run_id=ctx.run_id, ingested_at=ctx.started_at,
    )
    writer = DeltaOverwrite(spark, bronze_path).user_metadata(ctx.run_id)
    if replace_files:
        writer = writer.replace_where(in_predicate("_source_file", [f.uri for f in files]))
    else:
        writer = writer.overwrite_schema()
    try:
        metrics = writer.execute(raw)
    except EtlError:
        raise
    except Exception as exc:  # Spark raises the reader's errors when the write runs
        raise explain_read_failure(source_name, exc) from exc
    ctx.record_write(metrics)
    return metrics


def audit_step(
    spark: SparkSession,
    ctx: RunContext,
    table: str,
    batch: DataFrame,
    rules: Sequence[RuleConfig],
    *,
    references: Mapping[str, DataFrame] | None = None,
    record_columns: Sequence[str] | None = None,
) -> AuditResult:
    """The ``audit`` step of a job: check ``batch`` (``ctx.rows_loaded`` rows) before it is
    published to ``table`` (``layer/name``), move quarantined rows from loaded to quarantined,
    check the counts reconcile, and raise `QualityGateError` when an error rule failed."""
    with ctx.step("audit") as step:
        step.rows_in = ctx.rows_loaded
        audited = audit(spark, ctx, table, batch, rules, references=references,
                        record_columns=record_columns)
        ctx.rows_quarantined += audited.quarantined
        ctx.rows_loaded = step.rows_out = ctx.rows_loaded - audited.quarantined
        ctx.check_reconciled()
        audited.raise_if_failed()
    return audited
