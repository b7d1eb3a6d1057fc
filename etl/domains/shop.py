"""The shop job: PostgreSQL ``customers``, ``orders``, ``order_items`` -> staging -> silver
(MERGE by id) -> gold ``daily_revenue`` -> CSV export (e.g. to ``s3a://``).

Each run extracts every source past its watermark (``updated_at``, with a look-back for late
commits), lands the rows raw in the staging area, and works from the staged copy. The latest
version of each row (by ``updated_at``) is merged into silver; an older version never replaces a
newer one, so re-reading the look-back window changes nothing. Gold is recomputed for the order
dates the batch touched. With ``--from-staging RUN_ID`` the same transform and load run on that
run's staged rows, without connecting to the database, and the watermarks are left alone.

Order of commits: staging -> quarantine -> audit -> silver (customers, orders, order_items) ->
gold -> export -> watermarks. A run that fails before the watermark commit is redone whole by
the next run.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import JobConfig
from etl.context import RunContext
from etl.errors import ConfigError
from etl.quality import audit
from etl.readers.jdbc import stage_extract
from etl.staging import StagedExtract, Staging
from etl.tables import in_predicate, read_delta
from etl.transforms.cleaning import latest_per_key, split_rejected
from etl.transforms.shop import (
    COLUMNS,
    KEY,
    REQUIRED,
    SEQUENCE,
    check_rows,
    daily_revenue,
)
from etl.watermarks import WatermarkStore, parse_value
from etl.writers.delta import DeltaMerge, DeltaOverwrite
from etl.writers.quarantine import write_quarantine

SOURCES = ("customers", "orders", "order_items")


def _extract(
    spark: SparkSession, ctx: RunContext, config: JobConfig, store: WatermarkStore,
    staging: Staging, name: str,
) -> StagedExtract:
    """Read one source past its watermark and stage it, retrying a lost database connection
    (``jdbc.retry``); or read an earlier run's staged copy."""
    if ctx.staged_run:
        return staging.read(name, ctx.staged_run)
    source = config.source(name)
    if source.jdbc is None:
        raise ConfigError(
            "the shop job reads its sources over JDBC (type: jdbc)",
            file=f"conf/jobs/{config.job.name}.yml", key=f"sources.{name}.type",
        )
    staged = stage_extract(spark, source.jdbc, staging, source_name=name, run_id=ctx.run_id,
                           ingest_date=ctx.started_at.date(), watermark=store.get(ctx.job, name))
    ctx.log.info("source extracted", source=name, path=staged.path, **{
        k: v for k, v in staged.manifest.items() if k in ("rows", "query", "watermark")})
    return staged


def _positions(staged: dict[str, StagedExtract]) -> dict[str, tuple[str, Any]]:
    """``{source: (column, high)}`` for the sources whose extract reached a new high mark."""
    positions = {}
    for name, extract in staged.items():
        mark = extract.manifest.get("watermark") or {}
        if mark.get("high") is not None:
            positions[name] = (mark["column"], parse_value(mark["high"], mark["kind"]))
    return positions


def run(spark: SparkSession, ctx: RunContext, config: JobConfig) -> None:
    if not config.staging.enabled:
        raise ConfigError(
            "the shop job works from its staged extracts: set staging.enabled: true",
            file=f"conf/jobs/{config.job.name}.yml", key="staging.enabled",
        )
    store = WatermarkStore(spark, ctx.warehouse.records("state/watermarks"))
    staging = Staging(spark, f"{ctx.warehouse.root}/staging")
    targets = {name: config.target(f"silver_{name}") for name in SOURCES}
    gold_path = ctx.warehouse.table("gold", config.target("gold_daily_revenue").table)

    with ctx.step("extract") as step:
        staged = {name: _extract(spark, ctx, config, store, staging, name) for name in SOURCES}
        ctx.rows_read = step.rows_out = sum(int(s.manifest["rows"]) for s in staged.values())
    if ctx.rows_read == 0:
        ctx.log.info("nothing new in the sources")
        return

    batches: dict[str, DataFrame] = {}
    with ctx.step("transform") as step:
        step.rows_in = ctx.rows_read
        for name, extract in staged.items():
            checked = extract.df.transform(check_rows(COLUMNS[name], REQUIRED[name], ctx.run_id))
            valid, rejected = split_rejected(checked)
            ctx.rows_quarantined += write_quarantine(
                rejected, ctx, targets[name].table, list(COLUMNS[name])
            )
            valid_rows = valid.count()
            batches[name] = valid.transform(latest_per_key(KEY, SEQUENCE)).persist()
            loaded = batches[name].count()
            ctx.rows_loaded += loaded
            ctx.rows_filtered += valid_rows - loaded
        step.rows_out = ctx.rows_loaded
        ctx.check_reconciled()

    with ctx.step("audit") as step:
        step.rows_in = ctx.rows_loaded
        audits = {
            name: audit(spark, ctx, f"silver/{targets[name].table}", batch,
                        config.quality.get(f"silver_{name}", []), record_columns=list(COLUMNS[name]))
            for name, batch in batches.items()
        }
        for name, audited in audits.items():  # every table audited (metrics kept) before any gate
            ctx.rows_quarantined += audited.quarantined
            ctx.rows_loaded -= audited.quarantined
            batches[name] = audited.batch
        ctx.check_reconciled()
        for audited in audits.values():
            audited.raise_if_failed()

    with ctx.step("publish") as step:
        for name, batch in batches.items():
            merge = (
                DeltaMerge(spark, ctx.warehouse.table("silver", targets[name].table))
                .keys(*KEY).sequence_by(*SEQUENCE).user_metadata(ctx.run_id)
            )
            ctx.record_write(merge.execute(batch))
        orders = read_delta(spark, ctx.warehouse.table("silver", targets["orders"].table))
        items = read_delta(spark, ctx.warehouse.table("silver", targets["order_items"].table))
        touched = batches["orders"].select("id").union(
            batches["order_items"].select(F.col("order_id").alias("id")))
        dates = [
            r.order_date for r in orders.join(touched.distinct(), "id")
            .select(F.to_date("ordered_at").alias("order_date")).distinct().collect()
        ]
        if dates:
            predicate = in_predicate("order_date", dates)
            gold = daily_revenue(orders.where(F.to_date("ordered_at").isin(dates)), items)
            ctx.record_write(
                DeltaOverwrite(spark, gold_path).replace_where(predicate)
                .user_metadata(ctx.run_id).execute(gold)
            )
        step.rows_out = ctx.rows_loaded

    export = str(config.params.get("export_path") or "")
    if export:
        with ctx.step("export"):
            (read_delta(spark, gold_path).orderBy("order_date").coalesce(1).write
             .mode("overwrite").option("header", "true").csv(f"{export.rstrip('/')}/daily_revenue"))

    if not ctx.staged_run:
        store.advance(ctx.job, _positions(staged), ctx.run_id)
        removed = staging.purge(config.staging.retention_days, ctx.started_at.date())
        if removed:
            ctx.log.info("staged extracts past retention deleted", folders=len(removed))
    for batch in batches.values():
        batch.unpersist()


__all__: list[Any] = ["run"]
