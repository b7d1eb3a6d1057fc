"""Wiring of a change-data-capture source to its target, from the ``cdc`` section of a source's
configuration: envelopes (from `etl.readers.delta_cdf` or `etl.readers.pg_logical`) are
flattened, split into applicable events and rejects (for the quarantine), and applied with
`etl.writers.cdc.CdcApply`. `sync_source` is one run of a source, in the order that makes a
failure harmless.

Example::

    result = sync_source(spark, ctx, "customers", config.source("customers"),
                         ctx.warehouse.table("silver", "customers"))

or, step by step::

    writer = cdc_writer(spark, cdc, warehouse.table("silver", "customers"),
                        tombstones=tombstones_path(warehouse, "sync", "customers"))
    metrics, rejected = apply_envelopes(extract.df, cdc, writer.user_metadata(run_id))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from etl.config import CdcConfig, SourceConfig
from etl.context import RunContext, Warehouse, WriteMetrics, is_uri
from etl.errors import ConfigError, StateError
from etl.readers.delta_cdf import VERSION_COLUMN, read_change_feed
from etl.readers.pg_logical import PgLogicalReader
from etl.staging import Staging
from etl.transforms.cdc import flatten_changes
from etl.transforms.cleaning import RAW_RECORD, split_rejected
from etl.watermarks import Watermark, WatermarkStore
from etl.writers.cdc import CdcApply
from etl.writers.quarantine import write_quarantine


def tombstones_path(warehouse: Warehouse, job: str, source: str) -> str:
    """Where the deleted keys of a hard-deleting scd1 source are kept:
    ``<warehouse>/_etl/cdc/<job>/<source>/tombstones``."""
    return warehouse.records(f"cdc/{job}/{source}/tombstones")


def feed_table_path(warehouse: Warehouse, source: SourceConfig) -> str:
    """The upstream table of a ``delta_cdf`` source: its ``path`` under the warehouse root,
    or the ``path`` itself when it is a URI."""
    return source.path if is_uri(source.path) else f"{warehouse.root}/{source.path.strip('/')}"


def cdc_writer(
    spark: SparkSession, cdc: CdcConfig, path: str, *, tombstones: str | None = None
) -> CdcApply:
    """The `CdcApply` of ``cdc`` for the table at ``path``; ``tombstones`` is used only for
    output scd1 with hard deletes and ``cdc.tombstones`` on."""
    writer = CdcApply(spark, path).keys(*cdc.keys).deletes(cdc.deletes).output(cdc.output)
    if cdc.output == "scd1" and cdc.deletes == "hard" and cdc.tombstones:
        writer = writer.tombstones(tombstones)
    return writer


def apply_envelopes(
    envelopes: DataFrame, cdc: CdcConfig, writer: CdcApply
) -> tuple[WriteMetrics, DataFrame]:
    """Apply the valid events of ``envelopes`` in one commit; returns its metrics and the
    rejected events (``_errors`` and the event as JSON in ``_record``) for the quarantine."""
    flat = envelopes.transform(
        flatten_changes(cdc.keys, position=cdc.position, timestamp=cdc.timestamp)
    )
    valid, rejected = split_rejected(flat)
    return writer.execute(valid.drop(RAW_RECORD)), rejected


@dataclass(frozen=True)
class CdcResult:
    """One run of a change-feed source: the target commit's metrics (``None`` when there was
    nothing new), the events quarantined, and the position stored for the next run."""

    source: str
    metrics: WriteMetrics | None
    quarantined: int
    position: int | None


def sync_source(
    spark: SparkSession,
    ctx: RunContext,
    name: str,
    source: SourceConfig,
    target_path: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> CdcResult:
    """Apply what is new in the change-feed source ``name`` to the Delta table at
    ``target_path``, in this order: read past the stored position (``pg_logical``: staged as
    JSON lines first), apply in one commit, quarantine the rejected events (table = the target's
    name), advance the slot (``pg_logical``), store the position in the watermarks. A failure
    at any step leaves the slot and the stored position where they were, so the next run reads
    the same events and applies them again harmlessly."""
    cdc = source.cdc
    if cdc is None or source.type not in ("delta_cdf", "pg_logical"):
        raise ConfigError(f"source {name} is not a change feed (type delta_cdf or pg_logical "
                          "with a cdc section)", key=f"sources.{name}")
    store = WatermarkStore(spark, ctx.warehouse.records("state/watermarks"))
    column = VERSION_COLUMN if source.type == "delta_cdf" else "lsn"
    stored = stored_position(store.get(ctx.job, name), column)
    writer = cdc_writer(spark, cdc, target_path,
                        tombstones=tombstones_path(ctx.warehouse, ctx.job, name))
    writer = writer.user_metadata(ctx.run_id)
    table = target_path.rstrip("/").rsplit("/", 1)[-1]
    if source.type == "delta_cdf":
        feed = read_change_feed(spark, feed_table_path(ctx.warehouse, source), source_name=name,
                                last_version=stored)
        if feed.end is None:
            return CdcResult(name, None, 0, stored)
        applied, rejected = apply_envelopes(feed.df, cdc, writer)
        quarantined = write_quarantine(rejected, ctx, table, [])
        store.advance(ctx.job, {name: (column, feed.end)}, ctx.run_id)
        return CdcResult(name, applied, quarantined, feed.end)
    assert source.jdbc is not None
    reader = PgLogicalReader(spark, name, source.jdbc, cdc.slot, environ=environ)
    staging = Staging(spark, f"{ctx.warehouse.root}/staging")
    slot = reader.extract(staging, ctx.run_id, ctx.started_at.date(), snapshot=stored is None)
    metrics: WriteMetrics | None = None
    quarantined = 0
    if slot.changes or slot.snapshot_rows:
        metrics, rejected = apply_envelopes(slot.df, cdc, writer)
        quarantined = write_quarantine(rejected, ctx, table, [])
    reader.advance(slot.upto)
    if stored != slot.position:
        store.advance(ctx.job, {name: (column, slot.position)}, ctx.run_id)
    return CdcResult(name, metrics, quarantined, slot.position)


def stored_position(stored: Watermark | None, column: str) -> int | None:
    """The stored position of a change-feed source, which must be an integer on ``column``."""
    if stored is None:
        return None
    if stored.column != column or not isinstance(stored.value, int):
        raise StateError(
            f"source {stored.source}: the stored watermark is {stored.column} = {stored.value!r}, "
            f"expected an integer {column} (rewind it with `etl state set` or `etl state reset`)"
        )
    return stored.value


__all__ = ["CdcResult", "apply_envelopes", "cdc_writer", "feed_table_path", "stored_position",
           "sync_source", "tombstones_path"]
