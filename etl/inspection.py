"""What the inspection commands read from the warehouse's records, through `etl.native` (no JVM,
no PySpark import): the run record, watermarks and the file ledger, quarantines, dead letters.
The writers of these tables are `etl.runlog`, `etl.watermarks`, `etl.state`, `etl.writers`
and `etl.runner`; their schemas are declared in `etl.records`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from etl.config import S3Settings
from etl.errors import ConfigError
from etl.native import TABLE, Row, columns, literal, open_table, query, query_path, where

#: The run record's kinds of row and a run's outcomes (`etl.runlog` writes them).
RUN, STEP = "run", "step"
SUCCEEDED, FAILED, QUALITY_FAILED = "succeeded", "failed", "quality_failed"
STATUSES = (SUCCEEDED, FAILED, QUALITY_FAILED)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table (for terminals and logs)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([line, rule, *body])


def query_runs(
    path: str,
    s3: S3Settings | None,
    job: str | None = None,
    *,
    run_id: str | None = None,
    status: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    record_type: str = RUN,
    limit: int | None = None,
) -> list[Row] | None:
    """The run record's rows of ``record_type``, newest first (steps in their order within a
    run), filtered by job, status and the UTC date the run started (``since``/``until``
    inclusive), or of one run; ``None`` when nothing was recorded."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    table = open_table(path, s3)
    if table is None:
        return None
    recorded = columns(table)
    conditions = [
        f"record_type = {literal(record_type)}" if "record_type" in recorded else "",
        f"job = {literal(job)}" if job else "",
        f"run_id = {literal(run_id)}" if run_id else "",
        f"status = {literal(status)}" if status else "",
        f"CAST(started_at AS DATE) >= {literal(since)}" if since else "",
        f"CAST(started_at AS DATE) <= {literal(until)}" if until else "",
    ]
    # run ids start with their UTC start time
    order = "run_id DESC, step_index" if record_type == STEP else "started_at DESC"
    bound = f" LIMIT {int(limit)}" if limit is not None else ""
    return query(table, f"SELECT * FROM {TABLE}{where(conditions)} ORDER BY {order}{bound}")


def watermarks(path: str, s3: S3Settings | None, job: str) -> list[Row]:
    """The stored watermarks of ``job``, by source (values as stored, with their kind)."""
    return query_path(path, f"SELECT * FROM {TABLE} WHERE job = {literal(job)} ORDER BY source",
                      s3) or []


def ledger_summary(path: str, s3: S3Settings | None, job: str) -> list[Row]:
    """Per source of ``job``: how many landed files the ledger holds, and the last ingestion."""
    return query_path(path, f"SELECT source, COUNT(*) AS files, MAX(ingested_at) AS last_ingested "
                            f"FROM {TABLE} WHERE job = {literal(job)} GROUP BY source "
                            "ORDER BY source", s3) or []


def retention_enforced(path: str, s3: S3Settings | None, job: str) -> list[Row]:
    """Per table of ``job``: when its retention was last enforced (`etl.retention`), with the
    cutoff and what that enforcement removed, by layer and table."""
    return query_path(path, "SELECT layer, \"table\", cutoff, rows_deleted, files_purged, "
                            "enforced_at, run_id FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
                            "layer, \"table\" ORDER BY enforced_at DESC, run_id DESC) AS n "
                            f"FROM {TABLE} WHERE job = {literal(job)}) WHERE n = 1 "
                            "ORDER BY layer, \"table\"", s3) or []


def quarantine_rows(path: str, s3: S3Settings | None, table: str, run_id: str | None,
                    limit: int) -> list[Row]:
    """Quarantined rows of ``table`` (of ``run_id``), oldest first, with the replay columns."""
    quarantine, replay = _quarantine(path, s3, table)
    return query(quarantine, f"SELECT run_id, source_file, reasons, record, {replay} FROM {TABLE}"
                             f"{where([f'run_id = {literal(run_id)}' if run_id else ''])} "
                             f"ORDER BY quarantined_at, source_file LIMIT {int(limit)}")


def quarantine_summary(path: str, s3: S3Settings | None, table: str,
                       run_id: str | None) -> list[tuple[str, str, int, int]]:
    """``(run_id, reason, rows, replayed)`` per run and reason, by run then reason."""
    quarantine, replay = _quarantine(path, s3, table)
    selected = where([f"run_id = {literal(run_id)}" if run_id else ""])
    rows = query(quarantine, f"SELECT run_id, reason, COUNT(*) AS rows, COUNT(replayed_at) AS "
                             f"replayed FROM (SELECT run_id, unnest(reasons) AS reason, {replay} "
                             f"FROM {TABLE}{selected}) GROUP BY run_id, reason "
                             "ORDER BY run_id, reason")
    return [(r.run_id, r.reason, r.rows, r.replayed) for r in rows]


def dead_letters(path: str, s3: S3Settings | None, job: str | None) -> list[Row] | None:
    """Dead letters, newest first (of ``job``); ``None`` when none were ever recorded. Rows
    recorded before landed files could be set aside have no ``path``."""
    table = open_table(path, s3)
    if table is None:
        return None
    file_path = "path" if "path" in columns(table) else "CAST(NULL AS STRING) AS path"
    return query(table, f"SELECT recorded_at, job, run_id, source, {file_path}, error_class, "
                        f"reason FROM {TABLE}{where([f'job = {literal(job)}' if job else ''])} "
                        "ORDER BY recorded_at DESC")


def _quarantine(path: str, s3: S3Settings | None, table: str) -> tuple[Any, str]:
    """The opened quarantine table and its replay columns to select (null for a quarantine no
    replay ever touched)."""
    quarantine = open_table(path, s3)
    if quarantine is None:
        raise ConfigError(f"no quarantine table for {table!r} at {path}")
    present = columns(quarantine)
    return quarantine, ", ".join(
        c if c in present else f"CAST(NULL AS {t}) AS {c}"
        for c, t in (("replayed_at", "TIMESTAMP"), ("replay_run_id", "STRING")))
