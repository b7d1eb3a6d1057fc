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
from etl.tables import sql_literal

ERRORS = "_errors"
#: A row as landed (JSON of its raw strings), kept through typing for the quarantine.
RAW_RECORD = "_record"
_INTEGRAL = {"tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"}


#: An empty ``_errors`` in Spark SQL.
_NO_ERRORS = "CAST(array() AS array<string>)"


def _name(column: str) -> str:
    """``column`` as a Spark SQL identifier (any name: backquoted, backquotes doubled)."""
    return "`" + column.replace("`", "``") + "`"


#: A whole number, as text (Spark casts '1.5' to the integer 1).
_WHOLE_NUMBER = sql_literal("^[+-]?[0-9]+$")


def _with_errors(df: DataFrame) -> DataFrame:
    if ERRORS in df.columns:
        return df
    return df.withColumn(ERRORS, F.expr(_NO_ERRORS))


def _errors(df: DataFrame, checks: Sequence[tuple[str, str]]) -> str:
    """Spark SQL of ``df``'s ``_errors`` (empty when it has none) with the reason of every
    ``(condition, reason)`` that holds and is not null appended, in order (`values_where`'s
    form, as SQL text)."""
    base = _name(ERRORS) if ERRORS in df.columns else _NO_ERRORS
    if not checks:
        return base
    appended = [f"CASE WHEN ({condition}) AND ({reason}) IS NOT NULL THEN array({reason}) "
                f"ELSE {_NO_ERRORS} END" for condition, reason in checks]
    return f"concat({base}, {', '.join(appended)})"


def _add_errors(df: DataFrame, checks: Sequence[tuple[str, str]],
                columns: Mapping[str, str] | None = None) -> DataFrame:
    """``df`` with the reason of every ``(condition, reason)`` (Spark SQL) that holds appended
    to ``_errors`` and ``columns`` (name: Spark SQL) in place of the columns they name, by one
    projection: the typing of a wide source is parsed by Spark from text, not built call by
    call through the JVM bridge (tens of round trips a column)."""
    columns = dict(columns or {})
    columns[ERRORS] = _errors(df, checks)
    out = list(df.columns) if ERRORS in df.columns else [*df.columns, ERRORS]
    return df.selectExpr(*[f"{columns[c]} AS {_name(c)}" if c in columns else _name(c)
                           for c in out])


def _raw(name: str, na_values: Sequence[str]) -> str:
    """Spark SQL of string column ``name`` trimmed, ``null`` for ``na_values`` (`null_if_in`)."""
    trimmed = f"trim({_name(name)})"
    if not na_values:
        return trimmed
    return (f"CASE WHEN {trimmed} IN ({', '.join(map(sql_literal, na_values))}) THEN NULL "
            f"ELSE {trimmed} END")


def _parsed(raw: str, type_: str) -> str:
    """Spark SQL of ``raw`` cast to ``type_``; ``null`` where it does not parse (an integral
    type takes whole numbers only: Spark casts '1.5' to 1)."""
    value = f"CAST({raw} AS {type_})"
    if type_ in _INTEGRAL:
        return f"CASE WHEN {raw} RLIKE {_WHOLE_NUMBER} THEN {value} END"
    return value


def _parse_checks(types: Mapping[str, str], na_values: Sequence[str]
                  ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``(columns, checks)`` of `cast_columns`: each typed column's Spark SQL, and a check for
    each present value that does not parse."""
    columns, checks = {}, []
    for name, type_ in types.items():
        raw = _raw(name, na_values)
        columns[name] = value = _parsed(raw, type_)
        if type_ != "string":
            before, after = sql_literal(f"{name}: cannot parse '"), sql_literal(f"' as {type_}")
            reason = f"concat({before}, {raw}, {after})"
            checks.append((f"{raw} IS NOT NULL AND {value} IS NULL", reason))
    return columns, checks


def parsed_value(name: str, type_: str, na_values: Sequence[str] = ()) -> Column:
    """String column ``name`` as `cast_columns` types it: ``null`` for ``na_values``, else trimmed
    and cast to ``type_``; ``null`` where it does not parse (a fraction is not an integer)."""
    return F.expr(_parsed(_raw(name, na_values), type_))


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
        columns, checks = _parse_checks(types, na_values)
        return _add_errors(df, checks, columns)

    return transform


def _required(columns: Sequence[str]) -> list[tuple[str, str]]:
    return [(f"{_name(c)} IS NULL", sql_literal(f"{c}: required value missing")) for c in columns]


def require(columns: Sequence[str]) -> Transform:
    """Add the reason ``"<column>: required value missing"`` for each null in ``columns``."""

    def transform(df: DataFrame) -> DataFrame:
        return _add_errors(df, _required(columns))

    return transform


def _malformed(df: DataFrame, corrupt_column: str, reason: str) -> list[tuple[str, str]]:
    return ([(f"{_name(corrupt_column)} IS NOT NULL", sql_literal(reason))]
            if corrupt_column in df.columns else [])


def reject_malformed(
    corrupt_column: str = "_corrupt_record",
    reason: str = "malformed record: wrong number of fields",
) -> Transform:
    """Add ``reason`` (by default ``"malformed record: wrong number of fields"``, the CSV case)
    where the reader kept the raw text of a record it could not parse."""

    def transform(df: DataFrame) -> DataFrame:
        return _add_errors(df, _malformed(df, corrupt_column, reason))

    return transform


#: What a decoder puts in place of bytes that are not valid in the file's encoding.
REPLACEMENT_CHARACTER = "\ufffd"


def _undecodable(columns: Sequence[str]) -> list[tuple[str, str]]:
    return [(f"instr({_name(c)}, {sql_literal(REPLACEMENT_CHARACTER)}) > 0",
             sql_literal(f"{c}: bytes not valid in the file's encoding")) for c in columns]


def reject_undecodable(columns: Sequence[str]) -> Transform:
    """Add ``"<column>: bytes not valid in the file's encoding"`` for each of ``columns`` whose
    text holds U+FFFD, the character a reader substitutes for bytes it cannot decode (a file
    landed in Latin-1 and read as UTF-8): such a value is garbled, not data."""

    def transform(df: DataFrame) -> DataFrame:
        return _add_errors(df, _undecodable(columns))

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
    a value that does not parse (`cast_columns`), a required value missing (`require`, on the
    typed values). Columns not in ``types`` are kept as they are. Two projections, each parsed
    from Spark SQL text."""

    def transform(df: DataFrame) -> DataFrame:
        missing = [c for c in types if c not in df.columns]
        if missing:
            raise ValueError(f"cast_columns: columns {missing} not in {df.columns}")
        checks = _malformed(df, "_corrupt_record", malformed_reason) if malformed_reason else []
        if undecodable:
            checks += _undecodable(list(types))
        columns, parse = _parse_checks(types, na_values)
        out = _add_errors(df, checks + parse, columns)
        return _add_errors(out, _required(required)) if required else out

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
