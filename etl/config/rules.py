"""Data-quality rules as configured (``quality.<target>`` in a job's YAML): the rule types, the
parameters each takes, and `rule_problems`, which says what does not fit. See docs/quality.md."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

RuleType = Literal[
    "complete", "unique", "primary_key", "range", "allowed_values", "pattern", "non_negative",
    "size", "foreign_key", "sql", "anomaly",
]


@dataclass(frozen=True)
class ReferenceConfig:
    """The table a ``foreign_key`` rule looks keys up in: a warehouse table ``layer/name``
    (``silver/airports``) or the name of a frame the job passes to `etl.quality.audit`."""

    table: str
    columns: list[str]


@dataclass(frozen=True)
class RuleConfig:
    """A data-quality rule checked on a batch before it is published (see `etl.quality.rules`).

    ``type`` decides which of the optional parameters apply; `rule_problems`
    lists the parameters of each type, and `load_job_config` rejects a missing or foreign one
    with the file and key named.
    """

    name: str
    type: RuleType
    severity: Literal["error", "warn"] = "error"
    description: str = ""
    columns: list[str] = field(default_factory=list)
    #: Row-level types: the least share of rows that must pass (default 1.0: every row).
    threshold: float | None = None
    #: Row-level types: failing rows leave the batch and go to ``<warehouse>/quarantine/<table>``.
    quarantine: bool = False
    min: float | None = None
    max: float | None = None
    values: list[str] = field(default_factory=list)
    pattern: str | None = None
    expression: str | None = None
    references: ReferenceConfig | None = None
    metric: Literal["row_count", "completeness", "distinct_count", "mean"] | None = None
    strategy: Literal["relative_rate_of_change", "online_normal"] | None = None
    max_rate_decrease: float | None = None
    max_rate_increase: float | None = None
    lower_deviations: float | None = None
    upper_deviations: float | None = None
    min_history: int | None = None


_COMMON_PARAMS = frozenset({"name", "type", "severity", "description"})
_ROW_LEVEL = frozenset({"threshold", "quarantine"})
#: Per rule type: (required parameters, optional parameters).
RULE_PARAMETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "complete": (frozenset({"columns"}), _ROW_LEVEL),
    "unique": (frozenset({"columns"}), frozenset()),
    "primary_key": (frozenset({"columns"}), frozenset()),
    "range": (frozenset({"columns"}), _ROW_LEVEL | {"min", "max"}),
    "allowed_values": (frozenset({"columns", "values"}), _ROW_LEVEL),
    "pattern": (frozenset({"columns", "pattern"}), _ROW_LEVEL),
    "non_negative": (frozenset({"columns"}), _ROW_LEVEL),
    "size": (frozenset(), frozenset({"min", "max"})),
    "foreign_key": (frozenset({"columns", "references"}), _ROW_LEVEL),
    "sql": (frozenset({"expression"}), _ROW_LEVEL),
    "anomaly": (
        frozenset({"metric", "strategy"}),
        frozenset({"columns", "max_rate_decrease", "max_rate_increase", "lower_deviations",
                   "upper_deviations", "min_history"}),
    ),
}
ROW_LEVEL_TYPES = frozenset(t for t, (_, optional) in RULE_PARAMETERS.items() if "quarantine" in optional)


def _given(rule: RuleConfig) -> set[str]:
    return {
        f.name for f in dataclasses.fields(rule)
        if f.name not in _COMMON_PARAMS and getattr(rule, f.name) != (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    }


def rule_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    """``(parameter, problem)`` for every parameter of ``rule`` that does not fit its type."""
    required, optional = RULE_PARAMETERS[rule.type]
    allowed = ", ".join(sorted(required | optional))
    given = _given(rule)
    problems = [(p, f"parameter does not apply to this type (it takes: {allowed})")
                for p in sorted(given - required - optional)]
    problems += [(p, "required parameter missing") for p in sorted(required - given)]
    if problems:
        return problems
    if rule.threshold is not None and not 0 < rule.threshold <= 1:
        problems.append(("threshold", f"expected a share in (0, 1], got {rule.threshold}"))
    if rule.type in ("range", "size") and rule.min is None and rule.max is None:
        problems.append(("min", "give min, max or both"))
    if rule.min is not None and rule.max is not None and rule.min > rule.max:
        problems.append(("max", f"max {rule.max} is below min {rule.min}"))
    if rule.pattern is not None:
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            problems.append(("pattern", f"not a regular expression: {exc}"))
    if rule.references is not None:
        ref = rule.references
        if len(ref.columns) != len(rule.columns):
            problems.append(("references.columns", (
                f"expected {len(rule.columns)} columns to match {rule.columns}, got {ref.columns}")))
        if "/" in ref.table and ref.table.split("/")[0] not in ("bronze", "silver", "gold"):
            problems.append(("references.table", (
                f"expected layer/name (bronze, silver or gold) or a frame name, got {ref.table!r}")))
    if rule.type == "anomaly":
        problems += _anomaly_problems(rule)
    return problems


def _anomaly_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    problems = []
    if rule.metric == "row_count" and rule.columns:
        problems.append(("columns", "row_count is measured on the whole batch; remove columns"))
    if rule.metric != "row_count" and len(rule.columns) != 1:
        problems.append(("columns", f"metric {rule.metric} needs exactly one column"))
    rate = {"max_rate_decrease", "max_rate_increase"}
    normal = {"lower_deviations", "upper_deviations"}
    given = _given(rule)
    if rule.strategy == "relative_rate_of_change":
        problems += [(p, "applies to strategy online_normal") for p in sorted(given & normal)]
        if not given & rate:
            problems.append(("max_rate_increase", "give max_rate_decrease, max_rate_increase or both"))
    else:
        problems += [(p, "applies to strategy relative_rate_of_change") for p in sorted(given & rate)]
    for p in sorted(given & (rate | normal)):
        if getattr(rule, p) <= 0:
            problems.append((p, f"expected a positive number, got {getattr(rule, p)}"))
    if rule.min_history is not None and rule.min_history < 1:
        problems.append(("min_history", f"expected at least 1, got {rule.min_history}"))
    return problems

