"""Parameter types shared by readers, transforms and writers."""

from __future__ import annotations

from typing import Callable, Literal, Union

from pyspark.sql import Column, DataFrame

ColumnOrName = Union[Column, str]
Transform = Callable[[DataFrame], DataFrame]
Layer = Literal["bronze", "silver", "gold"]
RunMode = Literal["incremental", "backfill"]
Severity = Literal["error", "warn"]
