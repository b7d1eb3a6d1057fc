"""The quality metrics history: ``<warehouse>/_etl/quality_metrics`` (Delta).

One row per rule result (``kind = 'rule'``) and per Deequ metric (``kind = 'metric'``) of every
audit, keyed by ``job``, ``table``, ``logical_date`` (the last date of a backfill, else the
run's start date) and ``run_id``. ``gate_passed`` tells whether the audit let the batch through
(no ``error`` rule failed); anomaly detection only learns from such batches, so a rejected batch
never becomes the baseline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import SparkSession

from etl.context import RunContext, utcnow
from etl.quality.deequ import Metric, RuleResult
from etl.records import QUALITY_METRICS


def logical_date(ctx: RunContext) -> dt.date:
    return ctx.date_to or ctx.started_at.date()


def store(
    spark: SparkSession,
    ctx: RunContext,
    table: str,
    results: Sequence[RuleResult],
    metrics: Sequence[Metric],
    gate_passed: bool,
) -> None:
    """Append the audit's rule results and metrics (one commit)."""
    if not results and not metrics:
        return
    now, day = utcnow(), logical_date(ctx)
    key = (ctx.job, table, ctx.run_id, day, ctx.date_from, ctx.date_to)
    rows = [
        (*key, "rule", r.rule, r.severity, r.passed, r.constraint, None, None, None,
         None if r.value is None else float(r.value), r.rows_failed, r.message, gate_passed, now)
        for r in results
    ] + [
        (*key, "metric", None, None, None, None, m.entity, m.instance, m.name, float(m.value),
         None, None, gate_passed, now)
        for m in metrics
    ]
    QUALITY_METRICS.append(spark, ctx.warehouse.records(QUALITY_METRICS.name), rows,
                           run_id=ctx.run_id)


def metric_history(
    spark: SparkSession, ctx: RunContext, table: str
) -> dict[tuple[str, str], list[float]]:
    """Earlier values of every metric of ``job``/``table``, oldest first, keyed by
    ``(metric name, instance)``; only audits whose gate passed, never the current run."""
    rows = [row for row in QUALITY_METRICS.select(
                spark, ctx.warehouse.records(QUALITY_METRICS.name),
                ("metric", "instance", "value", "logical_date", "checked_at", "run_id",
                 "gate_passed"), job=ctx.job, table=table, kind="metric")
            if row["gate_passed"] and row["run_id"] != ctx.run_id]
    history: dict[tuple[str, str], list[float]] = {}
    for row in sorted(rows, key=lambda r: (r["logical_date"], r["checked_at"], r["run_id"])):
        history.setdefault((row["metric"], row["instance"]), []).append(row["value"])
    return history


__all__ = ["logical_date", "metric_history", "store"]
