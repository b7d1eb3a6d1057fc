"""The run log: one row per run in ``<warehouse>/_etl/runs`` (Delta), written when a run ends,
whatever its outcome. ``etl runs`` reads it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

import etl
from etl.context import RunContext, utcnow
from etl.writers.delta import table_exists

STEP = T.StructType(
    [
        T.StructField("name", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("ended_at", T.TimestampType()),
        T.StructField("duration_s", T.DoubleType()),
        T.StructField("rows_in", T.LongType()),
        T.StructField("rows_out", T.LongType()),
    ]
)
WRITE = T.StructType(
    [
        T.StructField("table", T.StringType()),
        T.StructField("operation", T.StringType()),
        T.StructField("version", T.LongType()),
        T.StructField("rows_inserted", T.LongType()),
        T.StructField("rows_updated", T.LongType()),
        T.StructField("rows_deleted", T.LongType()),
        T.StructField("files_added", T.LongType()),
        T.StructField("files_removed", T.LongType()),
    ]
)
RUN_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("env", T.StringType(), False),
        T.StructField("mode", T.StringType(), False),
        T.StructField("date_from", T.DateType()),
        T.StructField("date_to", T.DateType()),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), False),
        T.StructField("duration_s", T.DoubleType(), False),
        T.StructField("rows_read", T.LongType(), False),
        T.StructField("rows_loaded", T.LongType(), False),
        T.StructField("rows_quarantined", T.LongType(), False),
        T.StructField("rows_filtered", T.LongType(), False),
        T.StructField("steps", T.ArrayType(STEP)),
        T.StructField("writes", T.ArrayType(WRITE)),
        T.StructField("quality", T.StringType()),
        T.StructField("notes", T.ArrayType(T.StringType())),
        T.StructField("error_class", T.StringType()),
        T.StructField("error_message", T.StringType()),
        T.StructField("spark_app_id", T.StringType()),
        T.StructField("etl_version", T.StringType(), False),
    ]
)

SUCCEEDED, FAILED, QUALITY_FAILED = "succeeded", "failed", "quality_failed"


def record_run(
    spark: SparkSession, ctx: RunContext, status: str, error: BaseException | None = None
) -> dict[str, Any]:
    """Append the run's record (one commit) and return it as a dict."""
    ended = utcnow()
    record: dict[str, Any] = {
        "run_id": ctx.run_id,
        "job": ctx.job,
        "env": ctx.env,
        "mode": ctx.mode,
        "date_from": ctx.date_from,
        "date_to": ctx.date_to,
        "status": status,
        "started_at": ctx.started_at,
        "ended_at": ended,
        "duration_s": round((ended - ctx.started_at).total_seconds(), 3),
        "rows_read": ctx.rows_read,
        "rows_loaded": ctx.rows_loaded,
        "rows_quarantined": ctx.rows_quarantined,
        "rows_filtered": ctx.rows_filtered,
        "steps": [
            (s.name, s.started_at, s.ended_at, float(s.duration_s), s.rows_in, s.rows_out)
            for s in ctx.steps
        ],
        "writes": [tuple(asdict(w).values()) for w in ctx.writes],
        "quality": json.dumps(ctx.quality),
        "notes": list(ctx.notes),
        "error_class": type(error).__name__ if error else None,
        "error_message": str(error)[:4000] if error else None,
        "spark_app_id": spark.sparkContext.applicationId,
        "etl_version": etl.__version__,
    }
    row = tuple(record[f.name] for f in RUN_SCHEMA.fields)
    (
        spark.createDataFrame([row], RUN_SCHEMA)
        .write.format("delta")
        .mode("append")
        .save(ctx.warehouse.records("runs"))
    )
    return record


def read_runs(spark: SparkSession, path: str, job: str | None = None) -> DataFrame | None:
    if not table_exists(spark, path):
        return None
    df = spark.read.format("delta").load(path)
    if job:
        df = df.where(F.col("job") == job)
    return df.orderBy(F.col("started_at").desc())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table (for terminals and logs)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, rule, *body])
