"""Watermarks: how far each (job, source) has been extracted, in ``<warehouse>/_etl/state/
watermarks`` (Delta, one row per job and source).

A job reads a source past its stored watermark, publishes its targets, and only then calls
`WatermarkStore.advance` (one commit for all its sources). A run that fails before that leaves
every watermark where it was, so the next run reads the same rows again (and the MERGE by key
makes that harmless). ``etl state show|set|reset`` inspect and rewind them for backfills.

Values are typed by ``kind``: ``timestamp`` (naive, in the database's time), ``date`` or
``integer`` (an increasing id); they are stored as text (ISO-8601 or digits) so the table's
schema does not depend on the source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl.errors import StateError
from etl.records import WATERMARKS

WatermarkValue = dt.datetime | dt.date | int
Kind = Literal["timestamp", "date", "integer"]

@dataclass(frozen=True)
class Watermark:
    """The stored position of one source: rows with ``column <= value`` have been loaded."""

    job: str
    source: str
    column: str
    value: WatermarkValue
    run_id: str = ""
    updated_at: dt.datetime | None = None

    @property
    def kind(self) -> Kind:
        return kind_of(self.value)


def kind_of(value: WatermarkValue) -> Kind:
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return "integer"
    raise StateError(f"a watermark must be a timestamp, a date or an integer, got {value!r}")


def format_value(value: WatermarkValue) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(int(value))


def parse_value(text: str, kind: str | None = None) -> WatermarkValue:
    """Parse a stored (or typed-in) value; without ``kind`` it is guessed: digits are an
    integer, ``YYYY-MM-DD`` a date, anything ISO-8601 with a time a timestamp."""
    text = text.strip()
    try:
        if kind == "integer" or (kind is None and text.lstrip("-").isdigit()):
            return int(text)
        if kind == "date" or (kind is None and len(text) == 10):
            return dt.date.fromisoformat(text)
        if kind in (None, "timestamp"):
            return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    expected = kind or "an integer, a date (YYYY-MM-DD) or a timestamp (YYYY-MM-DD HH:MM:SS)"
    raise StateError(f"cannot read {text!r} as {expected}")


class WatermarkStore:
    """The watermarks table of a warehouse (``Warehouse.records("state/watermarks")``)."""

    def __init__(self, spark: SparkSession, path: str):
        self.spark = spark
        self.path = path

    def all(self, job: str) -> list[Watermark]:
        """Every stored watermark of ``job``, by source name."""
        rows = WATERMARKS.select(self.spark, self.path,
                                 ("source", "column", "kind", "value", "run_id", "updated_at"),
                                 job=job)
        return [
            Watermark(job=job, source=r["source"], column=r["column"],
                      value=parse_value(r["value"], r["kind"]), run_id=r["run_id"],
                      updated_at=r["updated_at"])
            for r in sorted(rows, key=lambda r: r["source"])
        ]

    def get(self, job: str, source: str) -> Watermark | None:
        return next((w for w in self.all(job) if w.source == source), None)

    def advance(
        self, job: str, positions: Mapping[str, tuple[str, WatermarkValue]], run_id: str
    ) -> None:
        """Store ``{source: (column, value)}`` for ``job`` in one commit (call it only after the
        run's targets have committed). Nothing is written for an empty mapping."""
        if not positions:
            return
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        rows = [
            (job, source, column, kind_of(value), format_value(value), run_id, now)
            for source, (column, value) in sorted(positions.items())
        ]
        WATERMARKS.merge(self.spark, self.path, rows, run_id=run_id)

    def reset(self, job: str, source: str | None = None) -> int:
        """Forget the watermark of one source of ``job`` (or all of them); the next run extracts
        those sources in full. Returns how many were removed."""
        recorded = WATERMARKS.read(self.spark, self.path)
        if recorded is None:
            return 0
        condition = F.col("job") == job
        if source is not None:
            condition = condition & (F.col("source") == source)
        count = recorded.where(condition).count()
        if count:
            DeltaTable.forPath(self.spark, self.path).delete(condition)
        return count


__all__ = [
    "StateError",
    "Watermark",
    "WatermarkStore",
    "WatermarkValue",
    "format_value",
    "kind_of",
    "parse_value",
]
