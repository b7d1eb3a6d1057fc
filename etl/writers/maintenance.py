"""Delta table maintenance: OPTIMIZE (compaction, optional ZORDER BY) and VACUUM with a retention
guard, reporting file counts and sizes before and after.

The guard refuses a VACUUM retention that is not a finite number of hours >= 0 (``nan``,
``inf``, negative: `check_retention`, before any Spark work) or that is shorter than the table's
``delta.deletedFileRetentionDuration`` (Delta's default: 7 days = 168 hours): files younger than
that may still be read by running queries or needed for time travel. Lower the table property
(``targets.<name>.properties``) to allow shorter retention deliberately.

Example::

    report = maintain(spark, "/wh/silver/flights", zorder_by=["carrier"], retain_hours=168)
    print(report.format())
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from etl.errors import ConfigError, WriteError
from etl.tables import session_confs, table_detail, table_exists
from etl.writers.parquet import storage_files

DEFAULT_RETENTION_HOURS = 168.0
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
_INTERVAL = re.compile(
    r"^\s*interval\s+(\d+(?:\.\d+)?)\s+(week|day|hour|minute|second)s?\s*$",
    re.IGNORECASE,
)
_HOURS = {"week": 168.0, "day": 24.0, "hour": 1.0, "minute": 1 / 60, "second": 1 / 3600}


@dataclass(frozen=True)
class FileStats:
    """``table_*``: files of the current snapshot; ``storage_*``: data files in storage
    (including those only older versions reference, which VACUUM removes)."""

    table_files: int
    table_bytes: int
    storage_files: int
    storage_bytes: int


@dataclass(frozen=True)
class MaintenanceReport:
    path: str
    before: FileStats
    after: FileStats
    operations: tuple[str, ...]

    def format(self) -> str:
        header = (f"{'':8}  {'table files':>11}  {'table bytes':>13}  "
                  f"{'storage files':>13}  {'storage bytes':>13}")
        lines = [f"{self.path}: {', '.join(self.operations) or 'nothing to do'}", header]
        for name, s in (("before", self.before), ("after", self.after)):
            lines.append(f"{name:8}  {s.table_files:>11,}  {s.table_bytes:>13,}  "
                         f"{s.storage_files:>13,}  {s.storage_bytes:>13,}")
        return "\n".join(lines)


def retention_hours(interval: str | None) -> float:
    """Hours of a Delta interval property such as ``interval 7 days`` (default 168)."""
    if interval is None:
        return DEFAULT_RETENTION_HOURS
    match = _INTERVAL.match(interval)
    if not match:
        raise WriteError(f"cannot read the retention interval {interval!r}")
    return float(match.group(1)) * _HOURS[match.group(2).lower()]


def check_retention(hours: float | None, option: str = "--retain-hours") -> None:
    """Refuse (`ConfigError`, exit code 2) a retention that is not a finite number of hours
    >= 0: ``nan`` would pass every comparison with the table's minimum (``nan < 168`` is false)
    and ``inf`` or a negative number is no retention at all. ``None`` (the table's own) is fine.
    The message names ``option`` and the value given."""
    if hours is None:
        return
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) \
            or hours < 0:
        raise ConfigError(f"expected a finite number of hours >= 0, got {hours!r}", key=option)


def file_stats(spark: SparkSession, path: str) -> FileStats:
    detail = table_detail(spark, path)
    stored = storage_files(spark, path)
    return FileStats(int(detail["numFiles"]), int(detail["sizeInBytes"]), len(stored),
                     sum(stored.values()))


def maintain(
    spark: SparkSession,
    path: str,
    *,
    optimize: bool = True,
    zorder_by: Sequence[str] = (),
    vacuum: bool = True,
    retain_hours: float | None = None,
) -> MaintenanceReport:
    """OPTIMIZE then VACUUM the Delta table at ``path``; arguments are checked before any work
    (`ConfigError`, exit code 2): ``retain_hours`` must be a finite number of hours >= 0
    (`check_retention`) and at least the table's ``delta.deletedFileRetentionDuration``."""
    check_retention(retain_hours)
    if not table_exists(spark, path):
        raise ConfigError(f"no Delta table at {path}", key="TABLE")
    table = DeltaTable.forPath(spark, path)
    detail = table_detail(spark, path)
    columns = set(table.toDF().columns)
    unknown = [c for c in zorder_by if c not in columns]
    partitioned = [c for c in zorder_by if c in detail["partitionColumns"]]
    if unknown or partitioned:
        raise ConfigError(
            f"cannot ZORDER BY {unknown or partitioned}: "
            + ("not columns of the table" if unknown else "partition columns"),
            key="--zorder-by",
        )
    minimum = retention_hours((detail["properties"] or {}).get("delta.deletedFileRetentionDuration"))
    hours = minimum if retain_hours is None else retain_hours
    if vacuum and hours < minimum:
        raise ConfigError(
            f"retention of {hours:g} hours is shorter than the table's "
            f"delta.deletedFileRetentionDuration ({minimum:g} hours); refusing to VACUUM",
            key="--retain-hours",
        )
    before = file_stats(spark, path)
    done = []
    if optimize:
        builder = table.optimize()
        if zorder_by:
            builder.executeZOrderBy(*zorder_by)
            done.append(f"OPTIMIZE ZORDER BY ({', '.join(zorder_by)})")
        else:
            builder.executeCompaction()
            done.append("OPTIMIZE")
    if vacuum:
        # the guard above replaces Delta's own check, which only knows the session default
        with session_confs(spark, {_RETENTION_CHECK: "false"}):
            DeltaTable.forPath(spark, path).vacuum(hours)
        done.append(f"VACUUM RETAIN {hours:g} HOURS")
    return MaintenanceReport(path, before, file_stats(spark, path), tuple(done))


__all__ = ["FileStats", "MaintenanceReport", "check_retention", "file_stats", "maintain",
           "retention_hours"]
