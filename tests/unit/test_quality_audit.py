"""`etl.quality.audit` on small frames with known defects: every rule type's exact Deequ result,
the exact quarantined rows with their rule names, the metrics history and anomaly detection."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from etl.config import ReferenceConfig, RuleConfig
from etl.context import RunContext, Warehouse
from etl.errors import QualityGateError
from etl.quality import audit
from etl.quality.deequ import Metric
from etl.quality.history import store

SCHEMA = T.StructType([
    T.StructField("id", T.IntegerType(), False),
    T.StructField("code", T.StringType(), True),
    T.StructField("amount", T.DoubleType(), True),
    T.StructField("country", T.StringType(), True),
    T.StructField("ref", T.StringType(), True),
])
ROWS = [
    (1, "AB1", 10.0, "FR", "x"),
    (2, "ab2", -5.0, "DE", "y"),
    (3, None, 200.0, "XX", "zz"),
    (4, "CD4", None, "FR", None),
]
RULES = [
    RuleConfig(name="id_unique", type="unique", columns=["id"]),
    RuleConfig(name="code_complete", type="complete", columns=["code"], severity="warn"),
    RuleConfig(name="code_pattern", type="pattern", columns=["code"], pattern="^[A-Z]{2}[0-9]$",
               severity="warn", quarantine=True, description="code is two capitals and a digit"),
    RuleConfig(name="amount_range", type="range", columns=["amount"], min=0, max=100,
               severity="warn"),
    RuleConfig(name="amount_at_least_zero", type="range", columns=["amount"], min=0,
               severity="warn"),
    RuleConfig(name="country_allowed", type="allowed_values", columns=["country"],
               values=["FR", "DE"], threshold=0.7),
    RuleConfig(name="amount_non_negative", type="non_negative", columns=["amount"],
               severity="warn"),
    RuleConfig(name="ref_exists", type="foreign_key", columns=["ref"],
               references=ReferenceConfig(table="refs", columns=["key"]), severity="warn",
               quarantine=True),
    RuleConfig(name="amount_positive", type="sql", expression="amount > 0", severity="warn"),
    RuleConfig(name="size_bounds", type="size", min=1, max=10),
]


def context(tmp_path, run_id: str = "run-1", day: dt.date | None = None) -> RunContext:
    return RunContext(job="demo", env="test", warehouse=Warehouse.at(str(tmp_path / "wh")),
                      landing=str(tmp_path / "landing"), run_id=run_id,
                      started_at=dt.datetime.combine(day or dt.date(2024, 1, 1), dt.time()))


@pytest.fixture(scope="module")
def audited(spark, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("audit")
    ctx = context(tmp_path)
    batch = spark.createDataFrame(ROWS, SCHEMA)
    refs = spark.createDataFrame([("x",), ("y",)], "key string")
    result = audit(spark, ctx, "silver/demo", batch, RULES, references={"refs": refs})
    return spark, ctx, result


def test_every_rule_type_gives_its_exact_deequ_result(audited):
    _, _, result = audited
    assert [(r.rule, r.severity, r.passed, r.constraint, r.value, r.rows_failed)
            for r in result.results] == [
        ("id_unique", "error", True, "UniquenessConstraint(Uniqueness(List(id),None,None))",
         1.0, None),
        ("code_complete", "warn", False, "CompletenessConstraint(Completeness(code,None,None))",
         0.75, 1),
        ("code_pattern", "warn", False, "PatternMatchConstraint(code, ^[A-Z]{2}[0-9]$)", 0.5, 2),
        ("amount_range", "warn", False,
         ("ComplianceConstraint(Compliance(amount between 0.0 and 100.0,`amount` IS NULL OR "
         "(`amount` >= 0.0 AND `amount` <= 100.0),None,List(amount),None))"), 0.5, 2),
        ("amount_at_least_zero", "warn", False,
         ("ComplianceConstraint(Compliance(amount >= 0,`amount` IS NULL OR "
         "(`amount` >= 0),None,List(),None))"), 0.75, 1),
        ("country_allowed", "error", True,
         ("ComplianceConstraint(Compliance(country contained in FR,DE,`country` IS NULL OR "
         "`country` IN ('FR','DE'),None,List(country),None))"), 0.75, 1),
        ("amount_non_negative", "warn", False,
         ("ComplianceConstraint(Compliance(amount is non-negative,COALESCE(CAST(amount AS "
         "DECIMAL(20,10)), 0.0) >= 0,None,List(amount),None))"), 0.75, 1),
        ("ref_exists", "warn", False,
         ("ComplianceConstraint(Compliance(ref in refs(key),`_dq_ref_ref_exists`,None,List(),"
         "None))"), 0.75, 1),
        ("amount_positive", "warn", False,
         "ComplianceConstraint(Compliance(amount_positive,amount > 0,None,List(),None))", 0.5, 2),
        ("size_bounds", "error", True, "SizeConstraint(Size(None))", 4.0, None),
    ]
    assert result.failures == []
    assert result.warnings[0] == (
        "code_complete [warn] CompletenessConstraint(Completeness(code,None,None)) (observed 0.75)")


def test_rows_failing_quarantine_rules_leave_the_batch(audited):
    spark, ctx, result = audited
    assert result.quarantined == 2
    assert_df_equality(result.batch, spark.createDataFrame([ROWS[0], ROWS[3]], SCHEMA),
                       ignore_row_order=True)
    quarantine = spark.read.format("delta").load(ctx.warehouse.quarantine("demo"))
    got = sorted((r.run_id, r.table, r.rules, r.reasons, r.record) for r in quarantine.collect())
    assert got == [
        ("run-1", "demo", ["code_pattern"], ["code_pattern: code is two capitals and a digit"],
         '{"id":2,"code":"ab2","amount":-5.0,"country":"DE","ref":"y"}'),
        ("run-1", "demo", ["code_pattern", "ref_exists"],
         ["code_pattern: code is two capitals and a digit", "ref_exists: foreign_key"],
         '{"id":3,"amount":200.0,"country":"XX","ref":"zz"}'),
    ]


def test_results_and_deequ_metrics_are_stored_and_recorded(audited):
    spark, ctx, _ = audited
    stored = spark.read.format("delta").load(ctx.warehouse.records("quality_metrics"))
    assert stored.where("kind = 'rule'").count() == 10
    metrics = sorted((r.entity, r.instance, r.metric, r.value) for r in
                     stored.where("kind = 'metric' AND entity != 'Column'").collect())
    assert metrics == [("Dataset", "*", "Size", 4.0)]
    assert {(r.metric, r.value) for r in stored.where("instance = 'code'").collect()} == {
        ("Completeness", 0.75), ("PatternMatch", 0.5)}
    assert {(r.job, r.table, r.run_id, r.logical_date, r.gate_passed)
            for r in stored.collect()} == {("demo", "silver/demo", "run-1", dt.date(2024, 1, 1), True)}
    assert [q["rule"] for q in ctx.quality] == [r.name for r in RULES]
    assert ctx.notes == [("2 rows of silver/demo quarantined by quality rules "
                         "['code_pattern', 'ref_exists']")]


def test_failed_error_rule_gate(spark, tmp_path):
    rules = [RuleConfig(name="code_complete", type="complete", columns=["code"]),
             RuleConfig(name="small", type="size", max=3, severity="warn")]
    ctx = context(tmp_path)
    result = audit(spark, ctx, "silver/demo", spark.createDataFrame(ROWS, SCHEMA), rules)
    assert result.failures == [
        ("code_complete [error] CompletenessConstraint(Completeness(code,None,None)) "
        "(observed 0.75)")]
    assert result.warnings == ["small [warn] SizeConstraint(Size(None)) (observed 4)"]
    with pytest.raises(QualityGateError) as info:
        result.raise_if_failed()
    assert str(info.value) == (
        "quality gate failed for silver/demo: code_complete [error] "
        "CompletenessConstraint(Completeness(code,None,None)) (observed 0.75)")
    stored = spark.read.format("delta").load(ctx.warehouse.records("quality_metrics"))
    assert {r.gate_passed for r in stored.collect()} == {False}


ROW_COUNT_ANOMALY = [
    RuleConfig(name="rows_normal", type="anomaly", metric="row_count", strategy="online_normal"),
    RuleConfig(name="rows_rate", type="anomaly", metric="row_count",
               strategy="relative_rate_of_change", max_rate_decrease=0.5, max_rate_increase=2.0,
               severity="warn"),
]


def write_history(spark, ctx: RunContext, sizes: list[float]) -> None:
    """Earlier audits of the same job and table: one stored Size metric per day."""
    for i, size in enumerate(sizes):
        past = context_at(ctx, f"past-{i}", dt.date(2023, 12, 20 + i))
        store(spark, past, "silver/demo", [], [Metric("Dataset", "*", "Size", size)], True)
    rejected = context_at(ctx, "rejected", dt.date(2023, 12, 31))  # never a baseline
    store(spark, rejected, "silver/demo", [], [Metric("Dataset", "*", "Size", 5000.0)], False)


def context_at(ctx: RunContext, run_id: str, day: dt.date) -> RunContext:
    return RunContext(job=ctx.job, env=ctx.env, warehouse=ctx.warehouse, landing=ctx.landing,
                      run_id=run_id, started_at=dt.datetime.combine(day, dt.time()))


@pytest.mark.parametrize("rows, passed, message", [
    (100, (True, True), ("100 within [95.2566, 104.743] (mean 100, stddev 1.58114 of 5 runs)",
                         "100 within [49.5, 198] (previous 99)")),
    (40, (False, False), ("40 outside [95.2566, 104.743] (mean 100, stddev 1.58114 of 5 runs)",
                          "40 outside [49.5, 198] (previous 99)")),
])
def test_row_count_anomaly_against_history(spark, tmp_path, rows, passed, message):
    ctx = context(tmp_path)
    write_history(spark, ctx, [100.0, 102.0, 98.0, 101.0, 99.0])
    result = audit(spark, ctx, "silver/demo", spark.range(rows), ROW_COUNT_ANOMALY)
    assert tuple(r.passed for r in result.results) == passed
    assert tuple(r.message for r in result.results) == message
    assert [r.constraint for r in result.results] == [
        "Anomaly(online_normal, Size(*))", "Anomaly(relative_rate_of_change, Size(*))"]
    assert result.failures == ([] if passed[0] else [
        f"rows_normal [error] Anomaly(online_normal, Size(*)) (observed {rows})"])
