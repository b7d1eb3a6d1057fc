"""Data quality: Deequ rules from YAML, quarantine, the write-audit-publish gate, the metrics
history and anomaly detection.

`audit` checks a batch before it is published to a table:

1. every rule of the table runs in one Deequ ``VerificationSuite`` (`etl.quality.deequ`), with the
   metrics anomaly rules need;
2. anomaly rules compare those metrics with the table's history (`etl.quality.anomaly`);
3. rule results and metrics go to ``<warehouse>/_etl/quality_metrics`` (`etl.quality.history`);
4. rows failing a row-level rule marked ``quarantine: true`` leave the batch and go to
   ``<warehouse>/quarantine/<table>`` with the run id, the rules' names and the record.

It returns an `AuditResult` whose ``batch`` holds the passing rows; the job publishes that batch
only after `AuditResult.raise_if_failed`, which raises `QualityGateError` (exit code 3) when an
``error`` rule failed. ``warn`` failures are logged and recorded in the run context. Example::

    result = audit(spark, ctx, "silver/flights", batch, config.quality["silver_flights"],
                   references={"airports": airports})
    ctx.rows_quarantined += result.quarantined
    result.raise_if_failed()
    DeltaMerge(...).execute(result.batch)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import RuleConfig
from etl.context import RunContext
from etl.errors import ConfigError, QualityGateError, SourceError
from etl.quality.anomaly import Verdict, online_normal, relative_rate_of_change
from etl.quality.deequ import ANALYZERS, Metric, RuleResult, verify
from etl.quality.history import metric_history, store
from etl.quality.rules import (
    FAILED_RULES,
    with_failed_rules,
    with_reference_flags,
)
from etl.tables import read_delta, table_exists
from etl.transforms.cleaning import ERRORS
from etl.writers.quarantine import write_quarantine


@dataclass
class AuditResult:
    """What `audit` found: the rows that may be published and the rules' outcomes."""

    table: str
    #: The passing rows, with the batch's own columns only.
    batch: DataFrame
    results: list[RuleResult] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    #: Rows moved to quarantine by rules with ``quarantine: true``.
    quarantined: int = 0

    @property
    def failures(self) -> list[str]:
        """Failed ``error`` rules, each with its observed value."""
        return [r.describe() for r in self.results if not r.passed and r.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [r.describe() for r in self.results if not r.passed and r.severity != "error"]

    def raise_if_failed(self) -> None:
        """Raise `QualityGateError` naming every failed ``error`` rule."""
        if self.failures:
            raise QualityGateError(self.table, self.failures)


def _check_columns(table: str, batch: DataFrame, rules: Sequence[RuleConfig]) -> None:
    for rule in rules:
        missing = [c for c in rule.columns if c not in batch.columns]
        if missing:
            raise ConfigError(
                f"quality rule {rule.name!r} for {table}: columns {missing} are not in the batch "
                f"(columns: {', '.join(batch.columns)})"
            )


def _reference_frames(
    spark: SparkSession, ctx: RunContext, rules: Sequence[RuleConfig],
    references: Mapping[str, DataFrame],
) -> dict[str, DataFrame]:
    """The frames ``foreign_key`` rules look up: given by the job, or warehouse tables."""
    frames = {}
    for rule in rules:
        if rule.references is None:
            continue
        name = rule.references.table
        if name in references:
            frames[name] = references[name]
        elif "/" in name:
            layer, table = name.split("/", 1)
            path = ctx.warehouse.table(layer, table)  # type: ignore[arg-type]
            if not table_exists(spark, path):
                raise SourceError(f"quality rule {rule.name!r}: referenced table {name} does "
                                  f"not exist at {path}")
            frames[name] = read_delta(spark, path)
        else:
            raise ConfigError(
                f"quality rule {rule.name!r}: references.table {name!r} is neither a warehouse "
                f"table (layer/name) nor a frame the job provides ({sorted(references)})"
            )
        missing = [c for c in rule.references.columns if c not in frames[name].columns]
        if missing:
            raise ConfigError(f"quality rule {rule.name!r}: references.columns {missing} are not "
                              f"in {name} (columns: {', '.join(frames[name].columns)})")
    return frames


def _metric_key(rule: RuleConfig) -> tuple[str, str]:
    assert rule.metric is not None
    return ANALYZERS[rule.metric], rule.columns[0] if rule.columns else "*"


def detect_anomalies(
    rules: Sequence[RuleConfig],
    metrics: Sequence[Metric],
    history: Mapping[tuple[str, str], Sequence[float]],
) -> list[RuleResult]:
    """One result per ``anomaly`` rule: the current metric tested against its history. Too
    short a history passes, with a message saying so."""
    current = {(m.name, m.instance): m.value for m in metrics}
    results = []
    for rule in rules:
        key = _metric_key(rule)
        if key not in current:  # Deequ reports no value, e.g. the mean of a column of nulls
            results.append(RuleResult(
                rule=rule.name, severity=rule.severity, passed=False,
                constraint=f"Anomaly({rule.strategy}, {key[0]}({key[1]}))",
                message=f"metric {key[0]}({key[1]}) could not be computed on this batch",
                value=None,
            ))
            continue
        value = current[key]
        earlier = list(history.get(key, []))
        verdict: Verdict
        if rule.strategy == "relative_rate_of_change":
            verdict = relative_rate_of_change(
                earlier, value, max_rate_decrease=rule.max_rate_decrease,
                max_rate_increase=rule.max_rate_increase, min_history=rule.min_history or 1)
        else:
            verdict = online_normal(
                earlier, value, lower_deviations=rule.lower_deviations or 3.0,
                upper_deviations=rule.upper_deviations or 3.0, min_history=rule.min_history or 3)
        results.append(RuleResult(
            rule=rule.name, severity=rule.severity, passed=not verdict.anomalous,
            constraint=f"Anomaly({rule.strategy}, {key[0]}({key[1]}))",
            message=verdict.message, value=value,
        ))
    return results


def evaluate(
    spark: SparkSession,
    ctx: RunContext,
    table: str,
    batch: DataFrame,
    rules: Sequence[RuleConfig],
    *,
    references: Mapping[str, DataFrame] | None = None,
) -> tuple[DataFrame, list[RuleResult], list[Metric]]:
    """Run ``rules`` on ``batch`` (one Deequ pass, then the anomaly tests against the stored
    history of ``ctx.job``/``table``) and return the batch with the rules' flag columns, the
    results and the metrics. Stores, logs and quarantines nothing: `audit` does that, and
    ``etl.check`` shows the results in a notebook."""
    _check_columns(table, batch, rules)
    frames = _reference_frames(spark, ctx, rules, references or {})
    checks = [r for r in rules if r.type != "anomaly"]
    anomalies = [r for r in rules if r.type == "anomaly"]
    to_quarantine = [r for r in checks if r.quarantine]
    checked = batch.transform(with_reference_flags(checks, frames))
    if to_quarantine:
        checked = checked.transform(with_failed_rules(to_quarantine))
    wanted = [(r.metric, r.columns[0] if r.columns else None) for r in anomalies]
    results, metrics = verify(checked, checks, metrics=wanted)  # type: ignore[arg-type]
    if anomalies:
        results += detect_anomalies(anomalies, metrics, metric_history(spark, ctx, table))
    return checked, results, metrics


def audit(
    spark: SparkSession,
    ctx: RunContext,
    table: str,
    batch: DataFrame,
    rules: Sequence[RuleConfig],
    *,
    references: Mapping[str, DataFrame] | None = None,
    record_columns: Sequence[str] | None = None,
) -> AuditResult:
    """Check ``batch`` before it is published to ``table`` (``layer/name``).

    ``references`` maps the names used by ``foreign_key`` rules to frames; other names are read
    as warehouse tables ``layer/name``. Quarantined rows keep ``record_columns`` of the batch
    (default: all). Results are stored, logged and added to ``ctx.quality``; nothing is raised
    for failed rules: call `AuditResult.raise_if_failed` before publishing.
    """
    if not rules:
        return AuditResult(table, batch)
    checked, results, metrics = evaluate(spark, ctx, table, batch, rules, references=references)
    to_quarantine = [r for r in rules if r.type != "anomaly" and r.quarantine]
    outcome = AuditResult(table, batch, results, metrics)
    store(spark, ctx, table, results, metrics, gate_passed=not outcome.failures)

    names = {r.name for r in to_quarantine}
    # Deequ counted the failing rows of each rule: when none failed, the batch goes on as it is
    # (no second pass, and the publish does not recompute the reference joins)
    if any(r.rows_failed for r in results if r.rule in names):
        descriptions = {r.name: f"{r.name}: {r.description or r.type}" for r in to_quarantine}
        reason = F.transform(FAILED_RULES, lambda name: _lookup(descriptions, name))
        rejected = checked.where(F.size(FAILED_RULES) > 0).withColumn(ERRORS, reason)
        outcome.quarantined = write_quarantine(
            rejected, ctx, table.split("/")[-1], list(record_columns or batch.columns),
            rules=FAILED_RULES,
        )
        outcome.batch = checked.where(F.size(FAILED_RULES) == 0).select(*batch.columns)

    for r in results:
        ctx.quality.append({
            "table": table, "rule": r.rule, "constraint": r.constraint, "severity": r.severity,
            "passed": r.passed, "value": r.value, "rows_failed": r.rows_failed,
            "message": r.message,
        })
        if not r.passed:
            log = ctx.log.error if r.severity == "error" else ctx.log.warning
            log("quality rule failed", table=table, rule=r.rule, constraint=r.constraint,
                value=r.value, rows_failed=r.rows_failed, message=r.message)
    if outcome.quarantined:
        ctx.note(f"{outcome.quarantined} rows of {table} quarantined by quality rules "
                 f"{sorted(descriptions)}", table=table, rows=outcome.quarantined)
    return outcome


def _lookup(mapping: Mapping[str, str], key: Column) -> Column:
    expr = F.lit(None).cast("string")
    for name, text in mapping.items():
        expr = F.when(key == name, F.lit(text)).otherwise(expr)
    return expr


__all__ = ["AuditResult", "Metric", "RuleResult", "audit", "detect_anomalies", "evaluate", "verify"]
