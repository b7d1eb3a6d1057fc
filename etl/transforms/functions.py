"""Column -> Column functions."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from etl._typing import ColumnOrName


def as_column(c: ColumnOrName) -> Column:
    """A column from a column or a column name."""
    return F.col(c) if isinstance(c, str) else c


def values_where(checks: Sequence[tuple[Column, Column]]) -> Column:
    """The string ``value`` of each ``(condition, value)`` whose condition holds and whose value
    is not null, in order, as an ``array<string>`` (empty when none holds).

    Built from ``concat`` and ``when``, which Spark compiles to code, rather than
    ``array_compact``, a lambda Spark interprets row by row: on every row of a batch (the
    failed rules; the typing's ``_errors`` has the same form, written as Spark SQL text) that
    halved the typing of TPC-H lines."""
    empty = F.array().cast("array<string>")
    if not checks:
        return empty
    return F.concat(*[
        F.when(condition & value.isNotNull(), F.array(value)).otherwise(empty)
        for condition, value in checks
    ])


def null_if_in(c: ColumnOrName, values: Sequence[str]) -> Column:
    """``null`` where the value is one of ``values`` (e.g. ``"NA"``), else the value trimmed."""
    trimmed = F.trim(as_column(c))
    if not values:
        return trimmed
    return F.when(trimmed.isin(list(values)), F.lit(None)).otherwise(trimmed)


def hhmm_to_minutes(c: ColumnOrName) -> Column:
    """Clock time written as an ``hhmm`` integer (``517`` = 05:17, ``2400`` = midnight) in
    minutes after midnight; ``null`` stays ``null``."""
    value = as_column(c)
    return (F.floor(value / 100) * 60 + value % 100).cast("int")


def local_clock_to_utc(date: ColumnOrName, minutes: ColumnOrName, tz: str) -> Column:
    """The instant at which the wall clock of time zone ``tz`` shows ``date`` plus ``minutes``
    (``1440`` is midnight of the next day). Independent of the session time zone, and right
    across daylight-saving changes (the fields are read in ``tz``, not added as a duration)."""
    mins = as_column(minutes)
    day = F.date_add(as_column(date), F.floor(mins / 1440).cast("int"))
    of_day = mins % 1440
    return F.make_timestamp(
        F.year(day), F.month(day), F.dayofmonth(day),
        F.floor(of_day / 60).cast("int"), (of_day % 60).cast("int"), F.lit(0), F.lit(tz),
    )


def add_minutes(ts: ColumnOrName, minutes: ColumnOrName) -> Column:
    return as_column(ts) + F.make_interval(mins=as_column(minutes).cast("int"))


def safe_ratio(numerator: ColumnOrName, denominator: ColumnOrName) -> Column:
    """``numerator / denominator`` as a double, ``null`` when the denominator is 0 or null."""
    den = as_column(denominator)
    return F.when(den == 0, F.lit(None)).otherwise(as_column(numerator).cast("double") / den)
