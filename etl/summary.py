"""The summary printed at the end of ``etl run``: what was read, loaded and quarantined, what
each table holds now, the quality results, and where to look next."""

from __future__ import annotations

from pyspark.sql import SparkSession

from etl.config import JobConfig
from etl.context import RunContext
from etl.inspection import format_table
from etl.tables import table_exists


def table_rows(spark: SparkSession, ctx: RunContext, config: JobConfig) -> list[tuple[str, int]]:
    """``(layer/table, rows)`` for every configured target that exists, plus quarantine."""
    out = []
    seen = set()
    for target in config.targets.values():
        name = f"{target.layer}/{target.table}"
        path = ctx.warehouse.table(target.layer, target.table)
        if name not in seen and table_exists(spark, path):
            out.append((name, spark.read.format("delta").load(path).count()))
            seen.add(name)
        quarantine = ctx.warehouse.quarantine(target.table)
        if f"quarantine/{target.table}" not in seen and table_exists(spark, quarantine):
            out.append((f"quarantine/{target.table}", spark.read.format("delta").load(quarantine).count()))
            seen.add(f"quarantine/{target.table}")
    return out


def render_summary(ctx: RunContext, tables: list[tuple[str, int]]) -> str:
    duration = sum(s.duration_s for s in ctx.steps)
    lines = [
        f"run {ctx.run_id} of {ctx.job} ({ctx.mode}"
        + (f" {ctx.date_from}..{ctx.date_to}" if ctx.date_from else "")
        + f"): succeeded in {duration:.1f}s",
        (f"rows: read {ctx.rows_read:,} = loaded {ctx.rows_loaded:,} + quarantined "
        f"{ctx.rows_quarantined:,} + filtered (older duplicate versions) {ctx.rows_filtered:,}"),
    ]
    if ctx.files_set_aside:
        lines.append(f"files set aside: {len(ctx.files_set_aside)} (their rows are not read; "
                     f"etl dead-letters {ctx.job}): " + "; ".join(ctx.files_set_aside))
    lines.append("")
    if ctx.writes:
        lines.append(format_table(
            ["table", "operation", "version", "inserted", "updated", "deleted"],
            [(w.table, w.operation, w.version, f"{w.rows_inserted:,}", f"{w.rows_updated:,}",
              f"{w.rows_deleted:,}") for w in ctx.writes],
        ))
        lines.append("")
    else:
        lines += ["nothing new to load: no table changed", ""]
    if ctx.quality:
        lines.append(format_table(
            ["quality rule", "table", "severity", "result", "observed", "failing rows",
             "constraint"],
            [(q["rule"], q["table"], q["severity"], "pass" if q["passed"] else "FAIL",
              _observed(q.get("value")), _count(q.get("rows_failed")), _short(q["constraint"]))
             for q in ctx.quality],
        ))
        lines.append("")
    if tables:
        lines.append(format_table(["table", "rows"], [(t, f"{n:,}") for t, n in tables]))
        lines.append("")
    for note in ctx.notes:
        lines.append(f"note: {note}")
    lines.append(f"tables under {ctx.warehouse.root}; run history: etl runs {ctx.job}")
    return "\n".join(lines)


def _observed(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def print_summary(ctx: RunContext, config: JobConfig) -> None:
    spark = SparkSession.getActiveSession()
    tables = table_rows(spark, ctx, config) if spark is not None else []
    print(render_summary(ctx, tables))
