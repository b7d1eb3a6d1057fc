"""Data quality: Deequ rules from YAML, the write-audit-publish gate, the metrics history.

`audit` runs a table's rules on a batch before it is published and raises `QualityGateError`
(exit code 3) when an ``error`` rule fails; ``warn`` failures are logged and returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from etl.config import RuleConfig
from etl.context import RunContext, utcnow
from etl.errors import QualityGateError
from etl.quality.deequ import RuleResult, verify

METRICS_SCHEMA = T.StructType(
    [
        T.StructField("job", T.StringType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("date_from", T.DateType(), True),
        T.StructField("date_to", T.DateType(), True),
        T.StructField("rule", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("passed", T.BooleanType(), False),
        T.StructField("constraint", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("message", T.StringType(), True),
        T.StructField("checked_at", T.TimestampType(), False),
    ]
)


def store_results(
    spark: SparkSession, ctx: RunContext, table: str, results: Sequence[RuleResult]
) -> None:
    """Append the results to ``<warehouse>/_etl/quality_metrics`` (one commit)."""
    if not results:
        return
    now: dt.datetime = utcnow()
    rows = [
        (ctx.job, table, ctx.run_id, ctx.date_from, ctx.date_to, r.rule, r.severity, r.passed,
         r.constraint, r.value, r.message, now)
        for r in results
    ]
    (
        spark.createDataFrame(rows, METRICS_SCHEMA)
        .write.format("delta")
        .mode("append")
        .save(ctx.warehouse.records("quality_metrics"))
    )


def audit(
    spark: SparkSession, ctx: RunContext, table: str, batch: DataFrame, rules: Sequence[RuleConfig]
) -> list[RuleResult]:
    """Check ``batch`` before it is published to ``table``.

    Results are stored and added to the run context. Raises `QualityGateError` naming every
    failed ``error`` rule with its observed value; ``warn`` failures only log.
    """
    results = verify(batch, rules)
    store_results(spark, ctx, table, results)
    for r in results:
        ctx.quality.append(
            {"table": table, "rule": r.rule, "constraint": r.constraint, "severity": r.severity,
             "passed": r.passed, "value": r.value}
        )
        if not r.passed:
            log = ctx.log.error if r.severity == "error" else ctx.log.warning
            log("quality rule failed", table=table, rule=r.rule, constraint=r.constraint,
                value=r.value)
    errors = [r.describe() for r in results if not r.passed and r.severity == "error"]
    if errors:
        raise QualityGateError(table, errors)
    return results


__all__ = ["RuleResult", "audit", "store_results", "verify"]
