"""Backfills: a job run for a range of logical dates, in batches, with a per-date ledger.

``etl backfill JOB --from D1 --to D2 --batch N --parallel P`` splits the dates that are not yet
done into batches of at most ``N`` consecutive dates; each batch is one run of the job
(``date_from``/``date_to`` = the batch's first and last date), ``P`` batches at a time.

Each run gets a session of its own (`worker_session`: ``spark.newSession()`` with the caller's
SQL settings copied), sharing the caller's SparkContext. Writers set a commit's identity
(Delta's ``txnAppId``/``txnVersion`` and ``userMetadata``) as session settings for the length
of a MERGE; in one shared session two runs at a time would stamp each other's commits, and a
run whose identity another commit had carried would report its real write as skipped.

The ledger ``<warehouse>/_etl/backfills`` (Delta) is append-only: every change of a date's
status is one row ``(job, date, status, run_id, error, updated_at)``, and the date's current
state is its latest row (`BackfillLedger.current` also counts its attempts)::

    job     date        status     run_id  attempts  error
    flights 2013-01-03  succeeded  ...     2         null

``status`` is ``pending`` (planned), ``running`` (its batch started), ``succeeded`` or
``failed``. Appends never conflict, so the ledger costs one small commit per change.
A rerun of the same range skips the succeeded dates and runs the others (failed,
pending, and ``running`` ones left by a killed process), so each date is processed successfully
exactly once; ``force`` runs every date again. The worker threads only run jobs; this thread
writes the ledger. ``ETL_PARENT_RUN_ID`` holds the backfill's own id while it runs. An interrupt (Ctrl-C) marks the
running dates ``failed`` before it propagates.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Row, SparkSession, Window
from pyspark.sql import functions as F

from etl.config import JobConfig
from etl.context import Warehouse, new_run_id
from etl.errors import ConfigError
from etl.logs import get_logger
from etl.pipeline import parent_run
from etl.records import BACKFILLS
from etl.tables import USER_METADATA_CONF
from etl.writers.delta import txn_confs

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"


def date_range(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    return [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]


#: Settings never copied into a worker's session: the identity of the write in progress.
_PER_WRITE_CONFS = frozenset([USER_METADATA_CONF, *txn_confs(None)])


def worker_session(spark: SparkSession) -> SparkSession:
    """A new session on ``spark``'s SparkContext for one run of a parallel backfill: its own SQL
    settings (a copy of ``spark``'s runtime-modifiable ones, less a write's identity), temporary
    views and UDFs; the same cluster, jars, Hadoop configuration and cached data."""
    session = spark.newSession()
    for row in spark.sql("SET").collect():  # the keys set (values may be shown redacted)
        key = row["key"]
        if key in _PER_WRITE_CONFS or not spark.conf.isModifiable(key):
            continue
        value = spark.conf.get(key, None)
        if value is not None and session.conf.get(key, None) != value:
            session.conf.set(key, value)
    return session


def plan_batches(dates: list[dt.date], size: int) -> list[list[dt.date]]:
    """Split sorted ``dates`` into batches of at most ``size`` consecutive dates (a gap always
    starts a new batch, so a batch's range never covers a date that is already done)."""
    if size < 1:
        raise ConfigError(f"--batch must be at least 1, got {size}")
    batches: list[list[dt.date]] = []
    for date in sorted(dates):
        last = batches[-1] if batches else None
        if last and len(last) < size and date - last[-1] == dt.timedelta(days=1):
            last.append(date)
        else:
            batches.append([date])
    return batches


class BackfillLedger:
    """The per-date ledger of backfills (see the module docstring)."""

    def __init__(self, spark: SparkSession, path: str):
        self.spark = spark
        self.path = path

    def current(self, job: str, dates: list[dt.date] | None = None) -> list[Row]:
        """One row per date of ``job`` (job, date, status, run_id, attempts, error), by date."""
        recorded = BACKFILLS.read(self.spark, self.path)
        if recorded is None:
            return []
        events = recorded.where(F.col("job") == job)
        if dates is not None:
            events = events.where(F.col("date").isin(dates))
        latest = Window.partitionBy("job", "date").orderBy(F.col("updated_at").desc())
        per_date = Window.partitionBy("job", "date")
        return (events
                .withColumn("attempts", F.sum((F.col("status") == RUNNING).cast("int")).over(per_date))
                .withColumn("_n", F.row_number().over(latest)).where("_n = 1")
                .select("job", "date", "status", "run_id", "attempts", "error")
                .orderBy("date").collect())

    def set(self, job: str, dates: list[dt.date], status: str, *, run_id: str | None = None,
            error: str | None = None) -> None:
        """Record the new status of ``dates`` (one append)."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = [(job, d, status, run_id, error, now) for d in dates]
        BACKFILLS.append(self.spark, self.path, rows)


@dataclass
class BackfillReport:
    """What a backfill did: the dates skipped as already done, and the dates of each outcome."""

    job: str
    skipped: list[dt.date] = field(default_factory=list)
    succeeded: list[dt.date] = field(default_factory=list)
    failed: dict[dt.date, str] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def run_backfill(
    config: JobConfig,
    date_from: dt.date,
    date_to: dt.date,
    *,
    batch: int = 1,
    parallel: int = 1,
    spark: SparkSession | None = None,
    force: bool = False,
) -> BackfillReport:
    """Run ``config``'s job for every date in ``[date_from, date_to]`` not yet succeeded in the
    ledger (all of them with ``force``), ``batch`` dates per run, ``parallel`` runs at a time.
    A failed batch does not stop the others; its dates are marked ``failed`` and retried by the
    next backfill of the range. Every run has its own session (`worker_session`); the ledger is
    written with ``spark``."""
    from etl.runner import check_dates, resolve_entrypoint, run_job
    from etl.session import get_spark

    check_dates(date_from, date_to)
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    plan_batches([], batch)
    resolve_entrypoint(config)
    session = spark or get_spark(config.spark)
    job = config.job.name
    ledger = BackfillLedger(session, Warehouse.at(config.paths.warehouse).records(BACKFILLS.name))
    log = get_logger("etl.backfill").bind(job=job, date_from=str(date_from), date_to=str(date_to))

    dates = date_range(date_from, date_to)
    known = {r["date"]: r["status"] for r in ledger.current(job, dates)}
    report = BackfillReport(job)
    todo = dates if force else [d for d in dates if known.get(d) != SUCCEEDED]
    report.skipped = [d for d in dates if d not in todo]
    new = [d for d in todo if d not in known]
    if new:
        ledger.set(job, new, PENDING)
    batches = plan_batches(todo, batch)
    log.info("backfill planned", dates=len(dates), skipped=len(report.skipped),
             batches=len(batches), batch=batch, parallel=parallel)

    running: dict[Future[Any], tuple[list[dt.date], str]] = {}
    with parent_run(new_run_id()), ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="etl-backfill") as pool:
        try:
            queue = list(batches)
            while queue or running:
                while queue and len(running) < parallel:
                    dates_ = queue.pop(0)
                    run_id = new_run_id()
                    ledger.set(job, dates_, RUNNING, run_id=run_id)
                    report.run_ids.append(run_id)
                    future = pool.submit(run_job, config, spark=worker_session(session),
                                         date_from=dates_[0],
                                         date_to=dates_[-1], run_id=run_id)
                    running[future] = (dates_, run_id)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    dates_, run_id = running.pop(future)
                    _settle(future, dates_, run_id, ledger, report, log)
        except BaseException as exc:
            for future, (dates_, run_id) in running.items():
                future.cancel()
                ledger.set(job, dates_, FAILED, run_id=run_id,
                           error=f"interrupted: {type(exc).__name__}")
            raise
    return report


def _settle(future: Future[Any], dates: list[dt.date], run_id: str, ledger: BackfillLedger,
            report: BackfillReport, log: Any) -> None:
    """Record a finished batch in the ledger and the report; re-raise an interrupt."""
    exc = future.exception()
    if exc is None:
        ledger.set(report.job, dates, SUCCEEDED, run_id=run_id)
        report.succeeded.extend(dates)
        log.info("batch succeeded", batch_from=str(dates[0]), batch_to=str(dates[-1]),
                 run_id=run_id)
        return
    message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not isinstance(exc, Exception):
        ledger.set(report.job, dates, FAILED, run_id=run_id, error=f"interrupted: {message}")
        raise exc
    ledger.set(report.job, dates, FAILED, run_id=run_id, error=message[:2000])
    report.failed.update({d: message for d in dates})
    log.error("batch failed", batch_from=str(dates[0]), batch_to=str(dates[-1]), run_id=run_id,
              error=message)
