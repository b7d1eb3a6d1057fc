"""The notebook API (`etl.notebook`, served lazily by `import etl`): no work at import, the
session in use reused, arguments checked before Spark, tables and quality checks as frames."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

import etl
from etl.errors import ConfigError, SourceError
from etl.notebook import CHECK_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
TINY_JOB = """\
job:
  name: tiny
  entrypoint: tests.jobs_for_tests:record_dates
targets:
  items: {layer: silver, table: items}
quality:
  items:
    - name: id_complete
      type: complete
      columns: [id]
    - name: amount_not_negative
      type: range
      columns: [amount]
      min: 0
      severity: warn
"""
ITEMS = T.StructType([T.StructField("id", T.LongType()), T.StructField("amount", T.DoubleType())])


def test_import_etl_does_no_work_and_serves_the_api_lazily():
    code = ("import sys, etl; print('pyspark' in sys.modules, 'etl.notebook' in sys.modules); "
            "f = etl.check; print(f.__module__, 'pyspark' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.split() == ["False", "False", "etl.notebook", "True"]
    with pytest.raises(AttributeError, match="module 'etl' has no attribute 'nothing'"):
        etl.nothing  # noqa: B018


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: etl.run("flights", date="2013-01-02", start="2013-01-01", conf_dir=CONF),
         "give either date or start/end, not both"),
        (lambda: etl.run("flights", date="02/01/2013", conf_dir=CONF),
         "date must be a date or 'YYYY-MM-DD', got '02/01/2013'"),
        (lambda: etl.run("flights", start="2013-01-03", end="2013-01-02", conf_dir=CONF),
         "--from 2013-01-03 is after --to 2013-01-02"),
        (lambda: etl.preview("flights", conf_dir=CONF), "preview needs date, or start and end"),
        (lambda: etl.table("gold", conf_dir=CONF),
         "table must be layer/name with layer one of bronze, silver, gold, quarantine, _etl, "
         "got 'gold'"),
        (lambda: etl.check("gold/carrier_daily_performance", job="flights", conf_dir=CONF),
         "job flights has no quality rules for 'gold/carrier_daily_performance'; tables with "
         "rules: ['silver/flights']"),
        (lambda: etl.run("nope", conf_dir=CONF), "unknown job 'nope'"),
    ],
)
def test_arguments_are_checked_before_spark(call, message):
    with pytest.raises(ConfigError) as caught:
        call()
    assert message in str(caught.value)


@pytest.fixture()
def tiny(tmp_path, spark):
    """A configuration folder with the job ``tiny`` and a warehouse holding silver/items."""
    conf = Path(shutil.copytree(CONF, tmp_path / "conf"))
    (conf / "jobs" / "tiny.yml").write_text(TINY_JOB)
    warehouse = tmp_path / "warehouse"
    items = spark.createDataFrame([(1, 5.0), (2, -1.0), (None, 3.0)], ITEMS)
    items.write.format("delta").save(str(warehouse / "silver" / "items"))
    return {"conf_dir": conf, "overrides": [f"paths.warehouse={warehouse}"]}, items


def test_session_table_and_check_reuse_the_active_session(spark, tiny):
    where, items = tiny
    assert etl.spark() is spark
    assert_df_equality(etl.table("silver/items", **where), items, ignore_row_order=True)
    with pytest.raises(SourceError, match=r"^table silver/other: no Delta table at .*/silver/other$"):
        etl.table("silver/other", **where)

    checks = etl.check("silver/items", job="tiny", **where)
    expected = spark.createDataFrame([
        ("silver/items", "id_complete", "error", False,
         "CompletenessConstraint(Completeness(id,None,None))", 2 / 3, 1,
         "Value: 0.6666666666666666 does not meet the constraint requirement!"),
        ("silver/items", "amount_not_negative", "warn", False,
         "ComplianceConstraint(Compliance(amount >= 0,`amount` IS NULL OR (`amount` >= 0),None,"
         "List(),None))",
         2 / 3, 1, "Value: 0.6666666666666666 does not meet the constraint requirement!"),
    ], CHECK_SCHEMA)
    assert_df_equality(checks, expected)
    # nothing stored: no quality metrics, no quarantine
    warehouse = Path(where["overrides"][0].split("=", 1)[1])
    assert sorted(p.name for p in warehouse.iterdir()) == ["silver"]
