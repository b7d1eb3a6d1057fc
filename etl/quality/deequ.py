"""The one module that talks to PyDeequ.

PyDeequ reads ``SPARK_VERSION`` when it is imported and starts py4j's callback server when a
check carries a Python assertion (a lambda), which keeps the process alive. So it is imported
lazily, inside the functions below, after setting ``SPARK_VERSION`` from the running Spark, and
the callback server is shut down in ``finally``. The rest of the library sees plain values
(`RuleResult`, `Metric`, dictionaries).

Assertions: a rule that asks for *every* row (no ``threshold``) uses Deequ's own JVM assertion
``Check.IsOne``, so it needs no callback at all; only a ``threshold`` below 1 and ``size`` bounds
are Python lambdas called back from the JVM.

All rules of a table become checks of one ``VerificationSuite`` run, together with the analyzers
that anomaly rules need: Deequ computes every scan-shareable metric (size, completeness,
compliance, pattern match, mean, approximate distinct count…) in a single pass over the batch;
uniqueness adds one aggregation per column set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pyspark.sql import DataFrame, SparkSession

from etl.config import RuleConfig
from etl.quality.rules import (
    constraint_label,
    non_negative_sql,
    range_sql,
    reference_flag,
)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one Deequ constraint (or one anomaly test) of a rule."""

    rule: str
    severity: str
    passed: bool
    constraint: str
    message: str
    value: float | None
    #: Row-level rules: rows of the batch that fail this constraint.
    rows_failed: int | None = None

    def describe(self) -> str:
        observed = f" (observed {self.value:g})" if self.value is not None else ""
        return f"{self.rule} [{self.severity}] {self.constraint}{observed}"


@dataclass(frozen=True)
class Metric:
    """One Deequ metric of a batch: ``entity`` (Dataset, Column, Mutlicolumn), ``instance``
    (``*`` or the column), ``name`` (Size, Completeness, Compliance, Mean…), ``value``."""

    entity: str
    instance: str
    name: str
    value: float


#: Constraints whose value is the share of rows that pass.
_SHARE_CONSTRAINTS = ("CompletenessConstraint", "ComplianceConstraint", "PatternMatchConstraint")

#: Anomaly metric -> Deequ analyzer (class name in pydeequ.analyzers and metric name).
ANALYZERS = {
    "row_count": "Size",
    "completeness": "Completeness",
    "distinct_count": "ApproxCountDistinct",
    "mean": "Mean",
}


def _import_pydeequ(spark: SparkSession) -> Any:
    os.environ.setdefault("SPARK_VERSION", ".".join(spark.version.split(".")[:2]))
    _ensure_callback_server(spark)
    import pydeequ.analyzers  # type: ignore[import-untyped]
    import pydeequ.checks  # type: ignore[import-untyped]
    import pydeequ.profiles  # type: ignore[import-untyped]
    import pydeequ.scala_utils  # type: ignore[import-untyped]
    import pydeequ.suggestions  # type: ignore[import-untyped]
    import pydeequ.verification  # type: ignore[import-untyped]

    return pydeequ


def _ensure_callback_server(spark: SparkSession) -> None:
    """Start py4j's callback server the way PySpark does for streaming (daemon threads, daemon
    connections, a free port) before PyDeequ needs one. PyDeequ would otherwise start a
    non-daemon server that keeps the process alive, and shutting a server down after each use
    can hang on a connection another caller (a streaming ``foreachBatch``) still holds — so
    this one is shared and never shut down."""
    from pyspark.java_gateway import ensure_callback_server_started

    gateway = getattr(spark.sparkContext, "_gateway", None)
    if gateway is not None:
        ensure_callback_server_started(gateway)


class _Compiler:
    """Adds a rule's constraints to the JVM ``Check`` behind a pydeequ ``Check``."""

    def __init__(self, spark: SparkSession, pydeequ: Any):
        self.spark = spark
        self.jvm: Any = cast(Any, spark._jvm)
        self.pydeequ = pydeequ
        self.none = self.jvm.scala.Option.apply(None)

    def assertion(self, rule: RuleConfig) -> Any:
        """Deequ's ``IsOne`` (no callback), or ``share >= threshold`` as a Python callback."""
        if rule.threshold is None or rule.threshold >= 1:
            return self.jvm.com.amazon.deequ.checks.Check.IsOne()
        threshold = rule.threshold
        return self.pydeequ.scala_utils.ScalaFunction1(
            self.spark.sparkContext._gateway, lambda share: share >= threshold
        )

    def strings(self, values: Sequence[str]) -> Any:
        gateway: Any = self.spark.sparkContext._gateway
        array = gateway.new_array(self.jvm.java.lang.String, len(values))
        for i, value in enumerate(values):
            array[i] = value
        return array

    def add(self, check: Any, rule: RuleConfig) -> None:
        j = check._Check
        assertion = self.assertion(rule)
        none = self.none
        if rule.type == "complete":
            for column in rule.columns:
                j = (j.isComplete(column, none, none) if rule.threshold is None
                     else j.hasCompleteness(column, assertion, none, none))
        elif rule.type in ("unique", "primary_key"):
            if rule.type == "primary_key":
                for column in rule.columns:
                    j = j.isComplete(column, none, none)
            first, *rest = rule.columns
            check._Check = j
            j = (check.isPrimaryKey(first, *rest) if rest else check.isUnique(first))._Check
        elif rule.type == "range":
            for column in rule.columns:
                if rule.min is not None and rule.max is not None and rule.threshold is None:
                    j = j.isContainedIn(column, float(rule.min), float(rule.max), True, True,
                                        none, none)
                else:
                    j = self.satisfies(j, range_sql(column, rule.min, rule.max),
                                       constraint_label(rule, column), assertion)
        elif rule.type == "allowed_values":
            for column in rule.columns:
                j = j.isContainedIn(column, self.strings(rule.values), assertion, none)
        elif rule.type == "pattern":
            regex = self.jvm.scala.util.matching.Regex(rule.pattern, None)
            for column in rule.columns:
                j = j.hasPattern(column, regex, assertion, none, none, none)
        elif rule.type == "non_negative":
            for column in rule.columns:
                j = (j.isNonNegative(column, assertion, none) if rule.threshold is None
                     else self.satisfies(j, non_negative_sql(column),
                                         constraint_label(rule, column), assertion))
        elif rule.type == "foreign_key":
            j = self.satisfies(j, f"`{reference_flag(rule)}`", constraint_label(rule), assertion)
        elif rule.type == "sql":
            assert rule.expression is not None
            j = self.satisfies(j, rule.expression, constraint_label(rule), assertion)
        elif rule.type == "size":
            low = rule.min if rule.min is not None else float("-inf")
            high = rule.max if rule.max is not None else float("inf")
            size_ok = self.pydeequ.scala_utils.ScalaFunction1(
                self.spark.sparkContext._gateway, lambda n: low <= n <= high
            )
            j = j.hasSize(size_ok, none)
        else:
            raise ValueError(f"rule {rule.name!r}: type {rule.type!r} is not a Deequ check")
        check._Check = j

    def satisfies(self, j: Any, condition: str, label: str, assertion: Any) -> Any:
        empty = self.jvm.scala.collection.immutable.List.empty()
        return j.satisfies(condition, label, assertion, self.none, empty, self.none)

    def analyzer(self, metric: str, column: str | None) -> Any:
        cls = getattr(self.pydeequ.analyzers, ANALYZERS[metric])
        analyzer = cls() if metric == "row_count" else cls(column)
        analyzer._set_jvm(self.jvm)
        return analyzer._analyzer_jvm


def _constraint_results(outcome: Any) -> list[tuple[str, str, bool, str, float | None]]:
    """``(check, constraint, passed, message, value)`` for every constraint, read from the JVM
    result, so that passing constraints carry their observed value too."""
    out = []
    checks = outcome.verificationRun.checkResults().values().toList()
    for i in range(checks.size()):
        check_result = checks.apply(i)
        name = check_result.check().description()
        constraints = check_result.constraintResults()
        for k in range(constraints.size()):
            result = constraints.apply(k)
            message = result.message()
            metric = result.metric()
            value = None
            if metric.isDefined() and metric.get().value().isSuccess():
                raw = metric.get().value().get()
                value = float(raw) if isinstance(raw, (int, float)) else None
            out.append((
                name,
                result.constraint().toString(),
                result.status().toString() == "Success",
                message.get() if message.isDefined() else "",
                value,
            ))
    return out


def verify(
    df: DataFrame, rules: Sequence[RuleConfig], metrics: Sequence[tuple[str, str | None]] = ()
) -> tuple[list[RuleResult], list[Metric]]:
    """Run ``rules`` on ``df`` in one Deequ verification.

    ``metrics`` are extra ``(metric, column)`` pairs to compute in the same pass (see
    `ANALYZERS`). Returns one `RuleResult` per constraint, in the order of ``rules``, and every
    metric Deequ computed (the batch's size always among them). Rows failing a row-level
    constraint are counted from its compliance share and the batch's size.
    """
    spark = df.sparkSession
    pydeequ = _import_pydeequ(spark)
    Check, CheckLevel = pydeequ.checks.Check, pydeequ.checks.CheckLevel
    VerificationResult = pydeequ.verification.VerificationResult
    by_name = {rule.name: rule for rule in rules}
    compiler = _Compiler(spark, pydeequ)
    suite = pydeequ.verification.VerificationSuite(spark).onData(df)
    for rule in rules:
        level = CheckLevel.Error if rule.severity == "error" else CheckLevel.Warning
        check = Check(spark, level, rule.name)
        compiler.add(check, rule)
        suite = suite.addCheck(check)
    for metric, column in {("row_count", None), *metrics}:
        suite._VerificationRunBuilder.addRequiredAnalyzer(compiler.analyzer(metric, column))
    outcome = suite.run()
    constraints = _constraint_results(outcome)
    metric_rows = VerificationResult.successMetricsAsJson(spark, outcome)
    found = [Metric(m["entity"], m["instance"], m["name"], float(m["value"])) for m in metric_rows]
    size = next(m.value for m in found if m.name == "Size" and m.entity == "Dataset")
    order = {rule.name: i for i, rule in enumerate(rules)}
    results = []
    for check, constraint, passed, message, value in sorted(constraints, key=lambda c: order[c[0]]):
        rule = by_name[check]
        rows_failed = (round((1.0 - value) * size)
                       if value is not None and constraint.startswith(_SHARE_CONSTRAINTS) else None)
        results.append(RuleResult(rule.name, rule.severity, passed, constraint, message, value,
                                  rows_failed))
    return results, found


def profile(df: DataFrame) -> list[dict[str, Any]]:
    """Deequ's column profile of ``df``: one dict per column with ``column``, ``type``,
    ``completeness``, ``approx_distinct`` and, for numeric columns, ``min``, ``max``, ``mean``,
    ``stddev``."""
    spark = df.sparkSession
    pydeequ = _import_pydeequ(spark)
    result = pydeequ.profiles.ColumnProfilerRunner(spark).onData(df).run()
    out = []
    for column in df.columns:
        p = result.profiles[column]
        out.append({
            "column": column,
            "type": p.dataType,
            "completeness": p.completeness,
            "approx_distinct": p.approximateNumDistinctValues,
            "min": getattr(p, "minimum", None),
            "max": getattr(p, "maximum", None),
            "mean": getattr(p, "mean", None),
            "stddev": getattr(p, "stdDev", None),
        })
    return out


#: Deequ's suggestion rules that pydeequ 1.7.0 can build against Deequ 2.0.7 (its DEFAULT set
#: and FractionalCategoricalRangeRule call constructors that 2.0.7 does not have).
SUGGESTION_RULES = (
    "CompleteIfCompleteRule",
    "NonNegativeNumbersRule",
    "CategoricalRangeRule",
    "UniqueIfApproximatelyUniqueRule",
    "RetainTypeRule",
)


def suggest(df: DataFrame) -> list[dict[str, Any]]:
    """Deequ's constraint suggestions for ``df``: dicts with ``column_name``, ``description``,
    ``code_for_constraint`` (Scala, e.g. ``.isComplete("dest")``) and ``current_value``."""
    spark = df.sparkSession
    pydeequ = _import_pydeequ(spark)
    runner = pydeequ.suggestions.ConstraintSuggestionRunner(spark).onData(df)
    for name in SUGGESTION_RULES:
        runner = runner.addConstraintRule(getattr(pydeequ.suggestions, name)())
    result = runner.run()
    return list(result.get("constraint_suggestions", []))
