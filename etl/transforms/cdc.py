"""Change events in the Debezium envelope, flattened to one row per change.

A change event carries ``op`` (``c`` insert, ``u`` update, ``d`` delete, ``r`` snapshot read),
``before`` and ``after`` (the row image as a struct; ``after`` is null for a delete, ``before``
may be null or carry only the key), ``ts_ms`` (epoch milliseconds of the change) and a log
position (``lsn`` or ``source.lsn``: a number, or PostgreSQL's text form ``16/B374D848``).

`flatten_changes` turns such a feed into the row image (``after``, or ``before`` for a delete)
plus ``_cdc_op``, ``_cdc_seq`` (``struct<position: bigint, ts_ms: bigint>``: events of a key are
ordered by log position, then by time) and ``_cdc_ts`` (the change time as a timestamp). Events
that cannot be applied get reasons in ``_errors`` (see `etl.transforms.cleaning.split_rejected`)
and keep the event as JSON in ``_record`` for the quarantine.

Example::

    changes = feed.transform(flatten_changes(["id"], position="source.lsn"))
    valid, rejected = split_rejected(changes)
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl._typing import ColumnOrName, Transform
from etl.transforms.cleaning import ERRORS, RAW_RECORD
from etl.transforms.functions import as_column, values_where

OP, SEQ, TS = "_cdc_op", "_cdc_seq", "_cdc_ts"
OPS = ("c", "u", "d", "r")
SEQ_TYPE = T.StructType(
    [T.StructField("position", T.LongType()), T.StructField("ts_ms", T.LongType())]
)


def lsn_to_long(c: ColumnOrName) -> Column:
    """PostgreSQL's text LSN ``X/Y`` (two hexadecimal halves) as the 64-bit number it stands
    for, so positions compare numerically; ``null`` and malformed text give ``null``."""
    text = F.trim(as_column(c))
    high = F.conv(F.substring_index(text, "/", 1), 16, 10).cast("decimal(20,0)")
    low = F.conv(F.substring_index(text, "/", -1), 16, 10).cast("decimal(20,0)")
    well_formed = text.rlike("^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
    return F.when(well_formed, (high * F.lit(4294967296) + low).cast("long"))


def change_sequence(position: Column, ts_ms: Column) -> Column:
    """The ``_cdc_seq`` struct of a change: its log position, then its time."""
    return F.struct(position.cast("long").alias("position"), ts_ms.cast("long").alias("ts_ms"))


def _position(df: DataFrame, position: str) -> Column:
    """The position column as a number (PostgreSQL text LSNs are converted)."""
    head, _, rest = position.partition(".")
    if head not in df.columns:
        raise ValueError(f"flatten_changes: the feed has no column {head!r}; columns: {df.columns}")
    field = df.schema[head].dataType
    if rest:
        if not isinstance(field, T.StructType) or rest not in field.fieldNames():
            raise ValueError(f"flatten_changes: position {position!r} is not a field of the feed")
        field = field[rest].dataType
    column = F.col(position)
    return lsn_to_long(column) if isinstance(field, T.StringType) else column.cast("long")


def flatten_changes(
    keys: Sequence[str], *, position: str = "source.lsn", timestamp: str = "ts_ms"
) -> Transform:
    """One row per change event: the row image's columns (``after``; ``before`` for a delete),
    ``_cdc_op``, ``_cdc_seq`` and ``_cdc_ts``; reasons in ``_errors`` for an unknown ``op``, a
    missing image, a null key or neither a position nor a time. ``position`` and ``timestamp``
    name the feed's columns (``a.b`` for a struct field); ``position`` may be absent from the
    feed's schema only when it is ``""`` (order by time alone)."""
    if not keys:
        raise ValueError("flatten_changes: keys must name at least one column")

    def transform(df: DataFrame) -> DataFrame:
        for column in ("op", "after", timestamp.split(".")[0]):
            if column not in df.columns:
                raise ValueError(
                    f"flatten_changes: the feed has no column {column!r}; columns: {df.columns}"
                )
        image = df.schema["after"].dataType
        if not isinstance(image, T.StructType):
            raise ValueError(f"flatten_changes: 'after' must be a struct, got {image.simpleString()}")
        missing = [k for k in keys if k not in image.fieldNames()]
        if missing:
            raise ValueError(f"flatten_changes: keys {missing} not in the row image {image.names}")
        has_before = "before" in df.columns
        op = F.lower(F.trim(F.col("op")))
        deleted = op == "d"
        source = (F.when(deleted, F.col("before")).otherwise(F.col("after")) if has_before
                  else F.when(~deleted, F.col("after")))
        pos = _position(df, position) if position else F.lit(None).cast("long")
        ts = F.col(timestamp).cast("long")
        checks = [
            (~F.coalesce(op.isin(*OPS), F.lit(False)),
             F.concat(F.lit("unknown op "), F.coalesce(op, F.lit("null")))),
            (source.isNull(), F.concat(F.lit("op "), op, F.lit(" without a row image"))),
            (pos.isNull() & ts.isNull(), F.lit("no log position and no ts_ms")),
        ]
        checks += [(source[k].isNull(), F.lit(f"key {k} is null")) for k in keys]
        return df.select(
            *(source[f.name].alias(f.name) for f in image.fields),
            op.alias(OP),
            change_sequence(pos, ts).alias(SEQ),
            F.timestamp_millis(ts).alias(TS),
            F.to_json(F.struct(*(F.col(f"`{c}`") for c in df.columns))).alias(RAW_RECORD),
            values_where(checks).alias(ERRORS),
        )

    return transform


__all__ = ["OP", "OPS", "SEQ", "SEQ_TYPE", "TS", "change_sequence", "flatten_changes",
           "lsn_to_long"]
