"""Generic cleaning: typing with per-row error reasons, splitting valid from rejected rows,
de-duplication by key.

Rows are never dropped silently. Each check appends a reason to the ``_errors`` array column;
`split_rejected` then separates rows without reasons (they go on) from rows with reasons (they go
to quarantine with the reasons and their raw record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl._typing import Transform
from etl.transforms.functions import null_if_in, values_where

ERRORS = "_errors"
#: A row as landed (JSON of its raw strings), kept through typing for the quarantine.
RAW_RECORD = "_record"
_INTEGRAL = {"tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"}


def _with_errors(df: DataFrame) -> DataFrame:
    if ERRORS in df.columns:
        return df
    return df.withColumn(ERRORS, F.array().cast("array<string>"))


def _add_errors(df: DataFrame, checks: Sequence[tuple[Column, Column]]) -> DataFrame:
    """Append the reason of every ``(condition, reason)`` that holds to ``_errors``.

    One expression per call that refers to ``_errors`` once, so chaining many checks keeps the
    plan linear in their number.
    """
    df = _with_errors(df)
    if not checks:
        return df
    return df.withColumn(ERRORS, F.concat(F.col(ERRORS), values_where(checks)))


def parsed_value(name: str, type_: str, na_values: Sequence[str] = ()) -> Column:
    """String column ``name`` as `cast_columns` types it: ``null`` for ``na_values``, else trimmed
    and cast to ``type_``; ``null`` where it does not parse (a fraction is not an integer)."""
    raw = null_if_in(name, na_values)
    value = raw.cast(type_)
    if type_ in _INTEGRAL:  # Spark casts '1.5' to 1
        value = F.when(raw.rlike(r"^[+-]?\d+$"), value)
    return value


def cast_columns(types: Mapping[str, str], na_values: Sequence[str] = ()) -> Transform:
    """Cast string columns to Spark SQL ``types`` (``{"dep_delay": "int"}``).

    Values in ``na_values`` become ``null``; other values are trimmed. A value that is present
    but does not parse becomes ``null`` and adds the reason
    ``"<column>: cannot parse '<value>' as <type>"`` to ``_errors``.
    """

    def transform(df: DataFrame) -> DataFrame:
        missing = [c for c in types if c not in df.columns]
        if missing:
            raise ValueError(f"cast_columns: columns {missing} not in {df.columns}")
        df = _with_errors(df)
        checks, parsed = [], {}
        for name, type_ in types.items():
            raw = null_if_in(name, na_values)
            parsed[name] = value = parsed_value(name, type_, na_values)
            if type_ != "string":
                checks.append(
                    (
                        raw.isNotNull() & value.isNull(),
                        F.format_string(f"{name}: cannot parse '%s' as {type_}", raw),
                    )
                )
        with_reasons = _add_errors(df, checks)
        return with_reasons.select(
            *[parsed[c].alias(c) if c in parsed else F.col(c) for c in with_reasons.columns]
        )

    return transform


def require(columns: Sequence[str]) -> Transform:
    """Add the reason ``"<column>: required value missing"`` for each null in ``columns``."""

    def transform(df: DataFrame) -> DataFrame:
        return _add_errors(
            df, [(F.col(c).isNull(), F.lit(f"{c}: required value missing")) for c in columns]
        )

    return transform


def reject_malformed(
    corrupt_column: str = "_corrupt_record",
    reason: str = "malformed record: wrong number of fields",
) -> Transform:
    """Add ``reason`` (by default ``"malformed record: wrong number of fields"``, the CSV case)
    where the reader kept the raw text of a record it could not parse."""

    def transform(df: DataFrame) -> DataFrame:
        if corrupt_column not in df.columns:
            return _with_errors(df)
        return _add_errors(df, [(F.col(corrupt_column).isNotNull(), F.lit(reason))])

    return transform


#: What a decoder puts in place of bytes that are not valid in the file's encoding.
REPLACEMENT_CHARACTER = "\ufffd"


def reject_undecodable(columns: Sequence[str]) -> Transform:
    """Add ``"<column>: bytes not valid in the file's encoding"`` for each of ``columns`` whose
    text holds U+FFFD, the character a reader substitutes for bytes it cannot decode (a file
    landed in Latin-1 and read as UTF-8): such a value is garbled, not data."""

    def transform(df: DataFrame) -> DataFrame:
        return _add_errors(df, [
            (F.instr(F.col(c), REPLACEMENT_CHARACTER) > 0,
             F.lit(f"{c}: bytes not valid in the file's encoding"))
            for c in columns
        ])

    return transform


def type_columns(
    types: Mapping[str, str],
    *,
    required: Sequence[str] = (),
    na_values: Sequence[str] = (),
    undecodable: bool = False,
    malformed_reason: str | None = None,
) -> Transform:
    """Landed rows typed as declared, with a reason in ``_errors`` for everything unusable, in
    this order: a record the reader could not split (``malformed_reason``, when the frame has
    ``_corrupt_record``), text holding undecodable bytes in a typed column (``undecodable``),
    a value that does not parse (`cast_columns`), a required value missing (`require`).
    Columns not in ``types`` are kept as they are."""

    def transform(df: DataFrame) -> DataFrame:
        out = df
        if malformed_reason is not None:
            out = out.transform(reject_malformed(reason=malformed_reason))
        if undecodable:
            out = out.transform(reject_undecodable(list(types)))
        out = out.transform(cast_columns(types, na_values)) if types else _with_errors(out)
        return out.transform(require(required))

    return transform


def keep_raw_record(columns: Sequence[str]) -> Transform:
    """Add ``_record``: the landed columns as JSON, so a row rejected after typing is
    quarantined with its original text (``"dep_delay":"soon"``), not its typed nulls."""

    def transform(df: DataFrame) -> DataFrame:
        return df.withColumn(RAW_RECORD, F.to_json(F.struct(*columns)))

    return transform


def split_rejected(df: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``(valid, rejected)``: rows without reasons (``_errors`` dropped) and rows with reasons."""
    df = _with_errors(df)
    has_errors = F.size(ERRORS) > 0
    return df.where(~has_errors).drop(ERRORS), df.where(has_errors)


def latest_per_key(
    keys: Sequence[str], order_by: Sequence[str], *, count_as: str | None = None
) -> Transform:
    """Keep one row per key: the greatest by ``order_by`` (compared left to right; ties are
    broken by every remaining column so the result never depends on partitioning).

    With ``count_as``, the kept row gets that extra ``bigint`` column: how many rows its key
    had in the input. It is computed by the same window as the choice, so it costs no extra
    pass: the sum of the column over the output is the input's row count, and that sum minus
    the output's row count is the number of rows dropped."""
    if not keys:
        raise ValueError("latest_per_key: keys must name at least one column")
    if not order_by:
        raise ValueError("latest_per_key: order_by must name at least one column")

    def transform(df: DataFrame) -> DataFrame:
        if count_as in df.columns:
            raise ValueError(f"latest_per_key: count_as {count_as!r} is already a column")
        tie_breakers = [c for c in df.columns if c not in keys and c not in order_by]
        ordering = [F.col(c).desc_nulls_last() for c in [*order_by, *tie_breakers]]
        window = Window.partitionBy(*keys).orderBy(*ordering)
        columns = {"_rank": F.row_number().over(window)}
        if count_as:
            whole_key = window.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
            columns[count_as] = F.count(F.lit(1)).over(whole_key)
        return df.withColumns(columns).where("_rank = 1").drop("_rank")

    return transform
