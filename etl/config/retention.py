"""How long a job keeps its rows, per layer and per table: the ``retention:`` section of its
YAML, enforced by ``etl maintain --retention JOB`` (`etl.retention`). docs/privacy.md
describes it.

Example (shop)::

    retention:
      staging: 30 days          # staged extracts, by the date folder they were staged in
      quarantine: 90 days       # the job's quarantined rows, by quarantined_at
      dead_letters: 90 days     # the job's dead letters, by recorded_at
      bronze: 400 days          # bronze rows, by _ingested_at (when they were loaded)
      tables:                   # a target, by a time column it declares
        silver_orders: {keep: 730 days, column: updated_at}

A layer or table not named is kept forever. Durations are ``N days`` (``N`` >= 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DAYS = re.compile(r"^\s*(\d+)\s+days?\s*$")

#: The layers ``retention`` names, and the column holding each one's ingestion time.
LAYER_COLUMNS = {"bronze": "_ingested_at", "quarantine": "quarantined_at",
                 "dead_letters": "recorded_at"}


def days(text: str) -> int | None:
    """The number of days of a duration ``"N days"`` (``N`` >= 1), or ``None`` when ``text``
    is not one."""
    match = _DAYS.match(text)
    return int(match.group(1)) if match and int(match.group(1)) >= 1 else None


@dataclass(frozen=True)
class TableRetention:
    """A target kept ``keep`` (``N days``) by its ``column`` (a date or timestamp column)."""

    keep: str
    column: str


@dataclass(frozen=True)
class RetentionConfig:
    """Durations (``N days``) per layer, and per target in ``tables``; ``None``: keep."""

    staging: str | None = None
    bronze: str | None = None
    quarantine: str | None = None
    dead_letters: str | None = None
    tables: dict[str, TableRetention] = field(default_factory=dict)

    def durations(self) -> dict[str, str]:
        """Every duration given, by its key under ``retention`` (``tables.<target>.keep``)."""
        given = {"staging": self.staging, "bronze": self.bronze, "quarantine": self.quarantine,
                 "dead_letters": self.dead_letters}
        return {**{k: v for k, v in given.items() if v is not None},
                **{f"tables.{name}.keep": t.keep for name, t in self.tables.items()}}

    def problems(self) -> list[tuple[str, str]]:
        """``(key under retention, message)`` for durations that are not ``N days``."""
        return [(key, f"expected a duration of whole days such as '30 days', got {text!r}")
                for key, text in self.durations().items() if days(text) is None]

    def days_of(self, key: str) -> int | None:
        """The days of a layer's duration (``staging``, ``bronze``...), ``None`` when absent."""
        text = self.durations().get(key)
        return None if text is None else days(text)

    @property
    def declared(self) -> bool:
        return bool(self.durations())


__all__ = ["LAYER_COLUMNS", "RetentionConfig", "TableRetention", "days"]
