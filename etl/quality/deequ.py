"""The one module that talks to PyDeequ.

PyDeequ reads ``SPARK_VERSION`` when it is imported and may start py4j's callback server (for
Python assertions), which keeps a process alive. So it is imported lazily, inside `verify`, after
setting ``SPARK_VERSION`` from the running Spark, and the callback server is shut down before
`verify` returns. The rest of the library sees plain `RuleResult` values.

All rules of a table become checks of one ``VerificationSuite`` run: Deequ computes every
scan-shareable metric in a single pass over the batch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from etl.config import RuleConfig

_VALUE = re.compile(r"Value: (?P<value>[-+0-9.eE]+)")


@dataclass(frozen=True)
class RuleResult:
    rule: str
    severity: str
    passed: bool
    constraint: str
    message: str
    value: float | None

    def describe(self) -> str:
        observed = f" (observed {self.value:g})" if self.value is not None else ""
        return f"{self.rule} [{self.severity}] {self.constraint}{observed}"


def _import_pydeequ(spark_version: str) -> Any:
    os.environ.setdefault("SPARK_VERSION", ".".join(spark_version.split(".")[:2]))
    import pydeequ.checks
    import pydeequ.verification

    return pydeequ


def _add_rule(check: Any, rule: RuleConfig) -> Any:
    if rule.type == "complete":
        for column in rule.columns:
            check = check.isComplete(column)
        return check
    if rule.type == "unique":
        first, *rest = rule.columns
        return check.isPrimaryKey(first, *rest) if rest else check.isUnique(first)
    raise ValueError(f"unsupported rule type {rule.type!r} in rule {rule.name!r}")


def verify(df: DataFrame, rules: Sequence[RuleConfig]) -> list[RuleResult]:
    """Run ``rules`` on ``df`` in one Deequ verification; one result per constraint."""
    if not rules:
        return []
    spark = df.sparkSession
    pydeequ = _import_pydeequ(spark.version)
    Check, CheckLevel = pydeequ.checks.Check, pydeequ.checks.CheckLevel
    VerificationSuite = pydeequ.verification.VerificationSuite
    VerificationResult = pydeequ.verification.VerificationResult
    by_name = {rule.name: rule for rule in rules}
    try:
        suite = VerificationSuite(spark).onData(df)
        for rule in rules:
            level = CheckLevel.Error if rule.severity == "error" else CheckLevel.Warning
            suite = suite.addCheck(_add_rule(Check(spark, level, rule.name), rule))
        outcome = suite.run()
        rows = VerificationResult.checkResultsAsJson(spark, outcome)
    finally:
        gateway = getattr(spark.sparkContext, "_gateway", None)
        if gateway is not None:
            gateway.shutdown_callback_server()
    results = []
    for row in rows:
        rule = by_name[row["check"]]
        message = row.get("constraint_message") or ""
        match = _VALUE.search(message)
        results.append(
            RuleResult(
                rule=rule.name,
                severity=rule.severity,
                passed=row["constraint_status"] == "Success",
                constraint=row["constraint"],
                message=message,
                value=float(match.group("value")) if match else None,
            )
        )
    return results
