"""Parameter types shared by readers, transforms and writers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pyspark.sql import Column, DataFrame

ColumnOrName = Column | str
Transform = Callable[[DataFrame], DataFrame]
Layer = Literal["bronze", "silver", "gold"]
RunMode = Literal["incremental", "backfill", "replay", "forget"]
Severity = Literal["error", "warn"]
