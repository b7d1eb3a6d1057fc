"""`RecordTable.select`, how a run reads its books: delta-rs on the local file system, Spark
elsewhere, the same rows either way, also from a table older than some of its columns."""

from __future__ import annotations

import datetime as dt

from etl import native
from etl.records import FILES, QUALITY_METRICS

AT = dt.datetime(2026, 3, 1, 12, 30, 15, 250000)
COLUMNS = ("source", "path", "size", "modified_ms", "ingested_at", "status", "reason")


def both_engines(monkeypatch, spark, records, path, columns, **equal):
    native_rows = records.select(spark, path, columns, **equal)
    with monkeypatch.context() as patch:  # delta-rs steps aside: Spark answers
        patch.setattr(native, "select", lambda *_: None)
        spark_rows = records.select(spark, path, columns, **equal)
    return ([dict(r) for r in native_rows], [dict(r) for r in spark_rows])


def key(row):
    return row["path"]


def test_a_ledger_older_than_its_status_column_reads_alike_through_both_engines(
        spark, tmp_path, monkeypatch):
    path = str(tmp_path / "files")
    spark.createDataFrame(  # a ledger written before `status` and `reason` existed
        [("flights", "flights", "file:/landing/a%20b.csv", 10, 1000, "r1", AT),
         ("shop", "orders", "file:/landing/orders.csv", 5, 500, "r1", AT)],
        "job string, source string, path string, size long, modified_ms long, run_id string, "
        "ingested_at timestamp").write.format("delta").save(path)
    FILES.append(spark, path, [("flights", "flights", "file:/landing/c.csv", 20, 2000, "r2",
                                AT + dt.timedelta(hours=1), "set_aside", "no header")],
                 run_id="r2")

    native_rows, spark_rows = both_engines(monkeypatch, spark, FILES, path, COLUMNS,
                                           job="flights")

    expected = [
        {"source": "flights", "path": "file:/landing/a%20b.csv", "size": 10,
         "modified_ms": 1000, "ingested_at": AT, "status": None, "reason": None},
        {"source": "flights", "path": "file:/landing/c.csv", "size": 20, "modified_ms": 2000,
         "ingested_at": AT + dt.timedelta(hours=1), "status": "set_aside",
         "reason": "no header"},
    ]
    assert sorted(native_rows, key=key) == expected
    assert sorted(spark_rows, key=key) == expected


def test_reserved_column_names_and_a_missing_table(spark, tmp_path, monkeypatch):
    path = str(tmp_path / "quality_metrics")
    day = dt.date(2026, 3, 1)
    row = ("flights", "silver/flights", "r1", day, None, day, "metric", None, None, None, None,
           "Column", "dep_delay", "Mean", 12.5, None, None, True, AT)
    QUALITY_METRICS.append(spark, path, [
        row, (*row[:1], "gold/daily", *row[2:]), (*row[:6], "rule", *row[7:])], run_id="r1")
    columns = ("table", "metric", "instance", "value", "logical_date", "checked_at")

    native_rows, spark_rows = both_engines(monkeypatch, spark, QUALITY_METRICS, path, columns,
                                           job="flights", table="silver/flights", kind="metric")

    expected = [{"table": "silver/flights", "metric": "Mean", "instance": "dep_delay",
                 "value": 12.5, "logical_date": day, "checked_at": AT}]
    assert native_rows == spark_rows == expected
    assert both_engines(monkeypatch, spark, FILES, str(tmp_path / "none"), COLUMNS,
                        job="flights") == ([], [])
