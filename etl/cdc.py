"""Wiring of a change-data-capture source to its target, from the ``cdc`` section of a source's
configuration: envelopes (from `etl.readers.delta_cdf` or `etl.readers.pg_logical`) are
flattened, split into applicable events and rejects (for the quarantine), and applied with
`etl.writers.cdc.CdcApply`.

Example::

    writer = cdc_writer(spark, cdc, warehouse.table("silver", "customers"),
                        tombstones=tombstones_path(warehouse, "sync", "customers"))
    metrics, rejected = apply_envelopes(extract.df, cdc, writer.user_metadata(run_id))
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from etl.config import CdcConfig, SourceConfig
from etl.context import Warehouse, WriteMetrics, _is_uri
from etl.transforms.cdc import flatten_changes
from etl.transforms.cleaning import RAW_RECORD, split_rejected
from etl.writers.cdc import CdcApply


def tombstones_path(warehouse: Warehouse, job: str, source: str) -> str:
    """Where the deleted keys of a hard-deleting scd1 source are kept:
    ``<warehouse>/_etl/cdc/<job>/<source>/tombstones``."""
    return warehouse.records(f"cdc/{job}/{source}/tombstones")


def feed_table_path(warehouse: Warehouse, source: SourceConfig) -> str:
    """The upstream table of a ``delta_cdf`` source: its ``path`` under the warehouse root,
    or the ``path`` itself when it is a URI."""
    return source.path if _is_uri(source.path) else f"{warehouse.root}/{source.path.strip('/')}"


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


__all__ = ["apply_envelopes", "cdc_writer", "feed_table_path", "tombstones_path"]
