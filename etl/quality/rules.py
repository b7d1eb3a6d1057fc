"""Rules as Spark expressions: what "a row passes" means for each row-level rule type.

Deequ measures a row-level rule as the share of rows that pass; these functions state the same
condition per row, so the batch can be split (passing rows go on, failing rows to quarantine)
with exactly the counts Deequ reports. The conditions follow Deequ's semantics:

========================  =================================================================
type                      a row passes when
========================  =================================================================
``complete``              the column is not null
``range``                 the column is null or ``min <= value <= max``
``allowed_values``        the column is null or one of ``values``
``pattern``               the regular expression finds a match in the value (null fails)
``non_negative``          the column is null or ``>= 0``
``foreign_key``           a column is null, or the key exists in ``references``
``sql``                   ``expression`` is true (null fails)
========================  =================================================================

``foreign_key`` has no Deequ constraint in Deequ 2.0.7: the batch gets a boolean flag column per
rule from a left join with the referenced keys (`with_reference_flags`), and Deequ checks the
flag with ``satisfies``. Everything here is pure: DataFrame in, DataFrame or Column out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl._typing import Transform
from etl.config import ROW_LEVEL_TYPES, RuleConfig
from etl.tables import sql_literal
from etl.transforms.functions import values_where

#: Prefix of the helper columns added for ``foreign_key`` rules (dropped before publishing).
FLAG_PREFIX = "_dq_ref_"
FAILED_RULES = "_dq_failed_rules"


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def range_sql(column: str, low: float | None, high: float | None) -> str:
    bounds = []
    if low is not None:
        bounds.append(f"`{column}` >= {_number(low)}")
    if high is not None:
        bounds.append(f"`{column}` <= {_number(high)}")
    return f"`{column}` IS NULL OR ({' AND '.join(bounds)})"


def allowed_values_sql(column: str, values: Sequence[str]) -> str:
    return f"`{column}` IS NULL OR `{column}` IN ({', '.join(sql_literal(v) for v in values)})"


def non_negative_sql(column: str) -> str:
    return f"COALESCE(CAST(`{column}` AS DECIMAL(20,10)), 0.0) >= 0"


def reference_flag(rule: RuleConfig) -> str:
    return f"{FLAG_PREFIX}{rule.name}"


def constraint_label(rule: RuleConfig, column: str | None = None) -> str:
    """The name Deequ shows for a ``satisfies`` constraint of ``rule``."""
    if rule.type == "foreign_key":
        assert rule.references is not None
        return (f"{', '.join(rule.columns)} in {rule.references.table}"
                f"({', '.join(rule.references.columns)})")
    if rule.type == "range":
        if rule.min is not None and rule.max is not None:
            return f"{column} between {_number(rule.min)} and {_number(rule.max)}"
        if rule.min is not None:
            return f"{column} >= {_number(rule.min)}"
        return f"{column} <= {_number(rule.max)}"  # type: ignore[arg-type]
    if rule.type == "allowed_values":
        return f"{column} in {list(rule.values)}"
    if rule.type == "non_negative":
        return f"{column} is non-negative"
    return rule.name


def row_passes(rule: RuleConfig) -> Column:
    """True for a row that passes every column of a row-level ``rule``; never null."""
    if rule.type not in ROW_LEVEL_TYPES:
        raise ValueError(f"rule {rule.name!r}: type {rule.type!r} is not checked row by row")
    if rule.type == "foreign_key":
        return F.col(reference_flag(rule))
    if rule.type == "sql":
        assert rule.expression is not None
        return F.coalesce(F.expr(rule.expression), F.lit(False))
    conditions = []
    for column in rule.columns:
        if rule.type == "complete":
            conditions.append(F.col(column).isNotNull())
        elif rule.type == "range":
            conditions.append(F.expr(range_sql(column, rule.min, rule.max)))
        elif rule.type == "allowed_values":
            conditions.append(F.expr(allowed_values_sql(column, rule.values)))
        elif rule.type == "non_negative":
            conditions.append(F.expr(non_negative_sql(column)))
        else:  # pattern: as Deequ's PatternMatch, a value passes when the regex finds a match
            assert rule.pattern is not None
            found = F.regexp_extract(F.col(column), rule.pattern, 0) != F.lit("")
            conditions.append(F.coalesce(found, F.lit(False)))
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition
    return F.coalesce(combined, F.lit(False))


def with_reference_flags(
    rules: Sequence[RuleConfig], references: Mapping[str, DataFrame]
) -> Transform:
    """Add one boolean column per ``foreign_key`` rule: true when a key column is null or the
    key exists in the referenced frame (``references[rule.references.table]``). A left join on
    the referenced keys made distinct, so no row is dropped or repeated."""

    def transform(df: DataFrame) -> DataFrame:
        for rule in rules:
            if rule.type != "foreign_key":
                continue
            assert rule.references is not None
            flag = reference_flag(rule)
            marker = f"{flag}_found"
            keys = (
                references[rule.references.table]
                .select(*[F.col(r).alias(c) for r, c in zip(rule.references.columns, rule.columns, strict=True)])
                .distinct()
                .withColumn(marker, F.lit(True))
            )
            any_null = F.lit(False)
            for column in rule.columns:
                any_null = any_null | F.col(column).isNull()
            df = df.join(F.broadcast(keys), list(rule.columns), "left").select(
                *df.columns, (any_null | F.col(marker).isNotNull()).alias(flag)
            )
        return df

    return transform


def with_failed_rules(rules: Sequence[RuleConfig]) -> Transform:
    """Add ``_dq_failed_rules``: the names of the given row-level rules the row fails."""

    def transform(df: DataFrame) -> DataFrame:
        failed = values_where([(~row_passes(rule), F.lit(rule.name)) for rule in rules])
        return df.withColumn(FAILED_RULES, failed)

    return transform


__all__ = [
    "FAILED_RULES",
    "FLAG_PREFIX",
    "allowed_values_sql",
    "constraint_label",
    "non_negative_sql",
    "range_sql",
    "reference_flag",
    "row_passes",
    "with_failed_rules",
    "with_reference_flags",
]
