"""The tpch job: landed TPC-H CSVs (``lineitem``, ``orders``, ``customer``, ``nation``) ->
bronze -> silver ``order_lines`` -> gold ``revenue_by_month_nation``.

Each run takes the files the ledger has not seen: an append source (``lineitem``, ``orders``)
replaces those files' rows in bronze, a snapshot source (``customer``, ``nation``) replaces its
bronze table with the newest file. The new lines are typed (bad rows quarantined), reduced to
the latest version of each ``(l_orderkey, l_linenumber)``, enriched with order, customer and
nation, audited with Deequ, then published to silver: built in one write the first time, merged
by key afterwards (only the ship months in the batch are scanned; with the deletion vectors that
conf/jobs/tpch.yml enables, only the changed lines are written). Gold is recomputed for exactly
the ship months of the batch. The silver and gold targets' table ``properties`` are set after
their writes.

Performance: no Python UDF; the small dimensions are broadcast; the lines are shuffled once
(by order key, for both the de-duplication and the join with ``orders``), carrying only the
columns silver keeps; a merge run of at most ``SMALL_BATCH_LINES`` lines types and
de-duplicates only the orders its lines name (their keys broadcast); the batch is computed once
(persisted for one aggregate that counts its lines, the duplicate versions dropped and its ship
months, then for the audit and the write; the rejected lines are looked for only when fewer
lines are valid than were read) and every other action reads Delta tables or commit metrics
(bronze row counts come from the bronze commit, not a ``count()``).

Order of commits, so that a failure at any point loses nothing and duplicates nothing:
bronze -> quarantine -> audit -> silver -> gold -> file ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import JobConfig
from etl.context import RunContext, landing_path
from etl.domains.common import audit_step, ingest_files
from etl.errors import ConfigError, EtlError, SourceError
from etl.readers.files import LandedFile, list_files
from etl.state import FileLedger
from etl.tables import in_predicate, read_delta, table_exists
from etl.transforms.cleaning import keep_raw_record, split_rejected
from etl.transforms.tpch import (
    LINE_KEY,
    PARTITION_BY,
    SEQUENCE,
    customer_reference,
    nation_reference,
    order_lines,
    orders_reference,
    revenue_by_month_nation,
    type_customer,
    type_lineitem,
    type_nation,
    type_orders,
)
from etl.writers.delta import DeltaMerge, DeltaOverwrite
from etl.writers.quarantine import write_quarantine

#: The column counting each line's versions in the batch (dropped before the audit).
VERSIONS = "_versions"
#: Reference sources in load order, with the typer whose rejects they quarantine.
REFERENCE_TYPERS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "nation": type_nation, "customer": type_customer, "orders": type_orders,
}
#: A merge run with at most this many lines enriches them from the orders they name (their
#: keys broadcast) instead of typing and de-duplicating every order.
SMALL_BATCH_LINES = 1_000_000


def merge_prune(config: JobConfig) -> bool:
    """``params.merge_prune`` (default ``true``): add the batch's ship months to the MERGE
    condition so that other months are neither scanned nor rewritten."""
    value = config.params.get("merge_prune", True)
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}",
                          file=f"conf/jobs/{config.job.name}.yml", key="params.merge_prune")
    return value


def _ingest_new(
    spark: SparkSession, ctx: RunContext, config: JobConfig, ledger: FileLedger, name: str,
    ingested: dict[str, list[LandedFile]],
) -> int | None:
    """Land the source's new files in bronze; the rows read, or ``None`` when nothing is new."""
    source = config.source(name)
    bronze = ctx.warehouse.table("bronze", config.target(f"bronze_{name}").table)
    files = list_files(spark, landing_path(ctx.landing, source.path), source.pattern)
    discovery = ledger.discover(ctx.job, name, files)
    for changed in discovery.changed:
        ctx.note("landed file changed since it was ingested; ingesting the new version",
                 path=changed.path)
    if not discovery.to_ingest:
        if not table_exists(spark, bronze):
            raise SourceError(f"source {name}: no files landed in {source.path} and no bronze table")
        return None
    snapshot = source.kind == "snapshot"
    to_land = files[-1:] if snapshot else discovery.to_ingest
    metrics = ingest_files(spark, ctx, config, name, to_land, bronze, replace_files=not snapshot)
    ingested[name] = discovery.to_ingest
    return metrics.rows_inserted


def _new_rows(spark: SparkSession, path: str, files: list[LandedFile]) -> DataFrame:
    return read_delta(spark, path).where(F.col("_source_file").isin([f.uri for f in files]))


def _references(
    spark: SparkSession, ctx: RunContext, config: JobConfig, ledger: FileLedger,
    ingested: dict[str, list[LandedFile]],
) -> dict[str, DataFrame]:
    """The bronze reference tables, landed files ingested first. Rows of newly ingested files
    that fail typing are quarantined once, when their file is ingested: one action counts the
    rejects of every newly ingested reference, and only those with some are written."""
    frames, rejects = {}, {}
    for name, typer in REFERENCE_TYPERS.items():
        source = config.source(name)
        bronze = ctx.warehouse.table("bronze", config.target(f"bronze_{name}").table)
        if _ingest_new(spark, ctx, config, ledger, name, ingested) is not None:
            landed = (read_delta(spark, bronze) if source.kind == "snapshot"
                      else _new_rows(spark, bronze, ingested[name]))
            rejects[name] = split_rejected(landed.transform(typer))[1]
        frames[name] = read_delta(spark, bronze)
    for name, counted in _row_counts(rejects).items():
        if counted:
            written = write_quarantine(rejects[name], ctx, name, list(config.source(name).columns))
            ctx.note("reference rows quarantined", source=name, rows=written)
    return frames


def _row_counts(frames: dict[str, DataFrame]) -> dict[str, int]:
    """The number of rows of each frame, counted by one Spark action."""
    if not frames:
        return {}
    counts = [df.agg(F.count(F.lit(1)).alias(name)) for name, df in frames.items()]
    row = reduce(DataFrame.crossJoin, counts).first()
    assert row is not None
    return {name: int(row[name]) for name in frames}


def run(spark: SparkSession, ctx: RunContext, config: JobConfig) -> None:
    """Load what landed since the last run (see the module docstring). The job has no
    backfill: ``--from/--to`` are refused."""
    if ctx.mode == "backfill":
        raise EtlError("the tpch job has no backfill: it loads the files that landed")
    prune = merge_prune(config)
    ledger = FileLedger(spark, ctx.warehouse.records("state/files"))
    ingested: dict[str, list[LandedFile]] = {}
    bronze = ctx.warehouse.table("bronze", config.target("bronze_lineitem").table)

    with ctx.step("extract") as step:
        refs = _references(spark, ctx, config, ledger, ingested)
        rows_read = _ingest_new(spark, ctx, config, ledger, "lineitem", ingested)
        step.rows_out = sum(len(files) for files in ingested.values())
    if rows_read is None:
        ctx.log.info("nothing new landed", source="lineitem")
    else:
        batch = _new_rows(spark, bronze, ingested["lineitem"])
        _load(spark, ctx, config, batch, rows_read, refs, prune=prune)
    ledger.record(ctx.job, ingested, ctx.run_id)


def _load(
    spark: SparkSession, ctx: RunContext, config: JobConfig, batch: DataFrame, rows_read: int,
    refs: dict[str, DataFrame], *, prune: bool,
) -> None:
    """Bronze lineitem rows -> typed (bad rows quarantined) -> latest per key, enriched ->
    audited -> silver (first write, else MERGE) -> gold for the ship months touched."""
    columns = list(config.source("lineitem").columns)
    silver_target = config.target("silver_order_lines")
    silver_path = ctx.warehouse.table("silver", silver_target.table)
    gold_target = config.target("gold_revenue")
    gold_path = ctx.warehouse.table("gold", gold_target.table)
    merging = table_exists(spark, silver_path)  # else the first load writes silver

    with ctx.step("transform") as step:
        ctx.rows_read = step.rows_in = rows_read
        typed = batch.transform(keep_raw_record(columns)).transform(type_lineitem)
        valid, rejected = split_rejected(typed)
        small = merging and rows_read <= SMALL_BATCH_LINES
        orders = refs["orders"].transform(
            orders_reference, valid.select(F.col("l_orderkey").alias("o_orderkey")) if small else None
        )
        lines = valid.transform(order_lines(
            orders, refs["customer"].transform(customer_reference),
            refs["nation"].transform(nation_reference), versions_as=VERSIONS,
        )).persist(StorageLevel.MEMORY_AND_DISK)
        # one action computes the batch and counts its lines, the versions the de-duplication
        # saw (its input: the valid lines) and the ship months, so the duplicates dropped are
        # counted, not derived, and the counts can fail to reconcile (e.g. a join fan-out)
        totals = lines.agg(
            F.count(F.lit(1)), F.sum(VERSIONS), F.collect_set("ship_month")
        ).first()
        loaded, versions, batch_months = totals if totals is not None else (0, 0, [])
        versions = versions or 0
        # the versions are the valid lines: when they are all the lines read, none was
        # rejected, and the batch is not scanned again to look for rejected lines
        ctx.rows_quarantined = (
            0 if versions == rows_read
            else write_quarantine(rejected, ctx, silver_target.table, columns)
        )
        silver_batch = lines.drop(VERSIONS)
        ctx.rows_loaded = step.rows_out = loaded
        ctx.rows_filtered = versions - loaded
        if ctx.rows_filtered:
            ctx.log.info("duplicate versions of a line in the batch: kept the latest",
                         rows=ctx.rows_filtered)

    audited = audit_step(
        spark, ctx, f"silver/{silver_target.table}", silver_batch,
        config.quality.get("silver_order_lines", []),
        # a line the gate quarantines keeps its landed columns that silver holds (no comment)
        record_columns=[c for c in columns if c in silver_batch.columns],
    )

    with ctx.step("publish") as step:
        if audited.batch is silver_batch:  # the gate moved no line: the months counted above
            months = sorted(batch_months)
        else:
            months = [r["ship_month"] for r in audited.batch.select("ship_month").distinct().collect()]
        if months:
            silver: DeltaMerge | DeltaOverwrite
            if merging:
                silver = (
                    DeltaMerge(spark, silver_path).keys(*LINE_KEY).sequence_by(*SEQUENCE)
                    .partitioned_by(*PARTITION_BY, prune=prune)
                )
            else:  # the first load: one write, no MERGE (the batch is already one row per key)
                silver = DeltaOverwrite(spark, silver_path).partitioned_by(*PARTITION_BY)
            ctx.record_write(
                silver.properties(silver_target.properties).user_metadata(ctx.run_id)
                .execute(audited.batch)
            )
            touched = in_predicate("ship_month", months)
            gold = read_delta(spark, silver_path).where(touched).transform(revenue_by_month_nation)
            ctx.record_write(
                DeltaOverwrite(spark, gold_path).replace_where(touched)
                .properties(gold_target.properties).user_metadata(ctx.run_id).execute(gold)
            )
        step.rows_out = ctx.rows_loaded
    lines.unpersist()
