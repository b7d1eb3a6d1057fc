"""Running a job: configuration in, run record out.

`run_job` is the programmatic entry (tests, notebooks, the CLI): it resolves the job's
entrypoint, gets the SparkSession (reusing an active one), runs the job with a `RunContext`, and
always appends the run record, whatever the outcome. Errors propagate to the caller; the CLI maps
them to exit codes (`etl.errors.exit_code`).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import re
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from etl.alerts import alert_failed_run, error_line, run_alert, send_alert
from etl.config import JobConfig
from etl.context import RunContext, Warehouse, utcnow
from etl.errors import ConfigError, QualityGateError, SourceError
from etl.lineage import ParentRun, RunLineage, column_lineage, lineage_run_id
from etl.logs import get_logger, run_context
from etl.records import DEAD_LETTERS
from etl.runlog import (
    FAILED,
    QUALITY_FAILED,
    SUCCEEDED,
    ProgressPrinter,
    StageTracker,
    StepJobs,
    record_run,
)
from etl.session import get_spark
from etl.storage import configure_s3a

JobFunction = Callable[[SparkSession, RunContext, JobConfig], Any]


def resolve_entrypoint(config: JobConfig) -> JobFunction:
    """What runs the job, checked before Spark starts: the flow (`etl.flow.run_flow`) with the
    job's plan (its transforms module imported and its functions checked), or the
    ``module:function`` named by ``job.entrypoint``."""
    spec = config.job.entrypoint
    if not spec:
        from etl.flow import make_plan, run_flow

        return functools.partial(run_flow, plan=make_plan(config))
    where = {"file": config.file, "key": "job.entrypoint"}
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"expected 'module:function', got {spec!r}", **where)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}", **where) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"{module_name!r} has no function {function_name!r}", **where)
    return function


def check_dates(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if (date_from is None) != (date_to is None):
        raise ConfigError("give both --from and --to (or --date), or neither")
    if date_from and date_to and date_from > date_to:
        raise ConfigError(f"--from {date_from} is after --to {date_to}")


def new_context(
    config: JobConfig,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    run_id: str | None = None,
) -> RunContext:
    check_dates(date_from, date_to)
    ctx = RunContext(
        job=config.job.name,
        env=config.env,
        warehouse=Warehouse.at(config.paths.warehouse),
        landing=config.paths.landing,
        mode="backfill" if date_from else "incremental",
        date_from=date_from,
        date_to=date_to,
    )
    if run_id:
        ctx.run_id = run_id
    return ctx


def check_from_staging(config: JobConfig, staged_run: str | None, dated: bool) -> None:
    """``--from-staging`` needs a job that stages its extracts, and no dates."""
    if staged_run is None:
        return
    if dated:
        raise ConfigError("use either --from-staging or dates, not both")
    if not config.staging.enabled:
        raise ConfigError(
            f"job {config.job.name} does not stage its extracts, so it cannot re-run from "
            "staging (set staging.enabled: true)",
            file=config.file, key="staging.enabled",
        )


def run_job(
    config: JobConfig,
    *,
    spark: SparkSession | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    run_id: str | None = None,
    from_staging: str | None = None,
    parent: ParentRun | None = None,
    entry: JobFunction | None = None,
    allow_empty: bool = False,
) -> RunContext:
    """Run the job of ``config``; return its context (rows, writes, steps, quality).

    Without dates the run is incremental; with ``date_from``/``date_to`` it reprocesses exactly
    those logical dates; with ``from_staging`` it redoes the transform and load of that earlier
    run from its staged extracts, without reading the sources; ``allow_empty`` lets a write
    that would replace rows with nothing go ahead (a backfill of dates without rows). Around the job it emits the
    OpenLineage START and COMPLETE/FAIL events (``parent``, else ``$OPENLINEAGE_PARENT_ID``, names
    the pipeline's run), appends the run record under ``<warehouse>/_etl/runs`` in every case,
    records a failure to read a source in ``<warehouse>/_etl/dead_letters``, and sends alerts
    (failure, quality gate, slow run). A failed run's alert goes out before its records are
    written, so it is sent even when the warehouse refuses them; the run's own error propagates
    (`etl.alerts.alert_failed_run`). A run whose work succeeded but whose record cannot be
    written raises that error, after a failure alert saying so. ``entry`` replaces the
    configured entrypoint (``etl replay`` uses it).
    """
    entry = entry or resolve_entrypoint(config)
    check_from_staging(config, from_staging, date_from is not None)
    parent = parent or ParentRun.from_env()
    ctx = new_context(config, date_from, date_to, run_id)
    ctx.staged_run = from_staging
    ctx.allow_empty = allow_empty
    with run_context(
        job=ctx.job, run_id=ctx.run_id, env=ctx.env, mode=ctx.mode,
        date_from=str(date_from) if date_from else None,
        date_to=str(date_to) if date_to else None,
    ):
        return _run(config, ctx, entry, session=spark or get_spark(config.spark),
                    parent=parent, from_staging=from_staging)


def _run(config: JobConfig, ctx: RunContext, entry: JobFunction, *, session: SparkSession,
         parent: ParentRun | None, from_staging: str | None) -> RunContext:
    log = get_logger("etl.run")
    configure_s3a(session, config.s3)
    lineage = RunLineage(config, ctx, parent)
    record = functools.partial(
        record_run, session, ctx, lineage_run_id=lineage_run_id(ctx.run_id),
        parent_run_id=parent.run_id if parent else None,
    )
    log.info("run started", warehouse=ctx.warehouse.root, from_staging=from_staging)
    tracker = StageTracker(session).begin()
    ctx.step_jobs = StepJobs(session, ctx.run_id)
    lineage.start()
    try:
        with column_lineage(session, config.lineage, ctx), ProgressPrinter(session):
            entry(session, ctx, config)
    except QualityGateError as exc:
        log.error("run stopped by the quality gate", error=str(exc))
        alert_failed_run(
            config.alerts,
            run_alert(ctx, "quality_gate", str(exc), table=exc.table, failures=exc.failures), exc,
            functools.partial(_record_failure, config, ctx, record, QUALITY_FAILED, exc, tracker),
            functools.partial(lineage.fail, session, exc))
        raise
    except BaseException as exc:
        log.error("run failed", error_class=type(exc).__name__, error=str(exc)[:2000])
        records = [functools.partial(_record_failure, config, ctx, record, FAILED, exc, tracker),
                   functools.partial(lineage.fail, session, exc)]
        if isinstance(exc, SourceError):
            records.insert(0, functools.partial(record_dead_letter, session, ctx, exc))
        alert_failed_run(
            config.alerts,
            run_alert(ctx, "failure", f"{type(exc).__name__}: {exc}"[:1000],
                      error_class=type(exc).__name__), exc, *records)
        raise
    try:
        result = record(SUCCEEDED, stages=tracker.summary())
    except Exception as exc:  # the job's work is done, but the warehouse refused its record
        send_alert(config.alerts, run_alert(
            ctx, "failure", f"the run record could not be written: {type(exc).__name__}: "
            f"{error_line(exc)}", error_class=type(exc).__name__))
        raise
    lineage.complete(session)
    _finish(config, ctx, result)
    if ctx.files_set_aside:
        send_alert(config.alerts, run_alert(
            ctx, "bad_file", f"{len(ctx.files_set_aside)} landed files set aside: "
            + "; ".join(ctx.files_set_aside)[:900], files=list(ctx.files_set_aside)))
    log.info("run succeeded", duration_s=result["duration_s"], rows_read=ctx.rows_read,
             rows_loaded=ctx.rows_loaded, rows_quarantined=ctx.rows_quarantined)
    return ctx


def _record_failure(config: JobConfig, ctx: RunContext, record: Callable[..., dict[str, Any]],
                    status: str, error: BaseException, tracker: StageTracker) -> None:
    _finish(config, ctx, record(status, error, stages=tracker.summary()))


def _finish(config: JobConfig, ctx: RunContext, record: dict[str, Any]) -> None:
    """Alert when the run took longer than ``alerts.max_duration_s``."""
    limit = config.alerts.max_duration_s
    if limit > 0 and record["duration_s"] > limit:
        send_alert(config.alerts, run_alert(
            ctx, "slow_run", f"took {record['duration_s']:.1f}s, limit {limit:g}s",
            duration_s=record["duration_s"], limit_s=limit, status=record["status"]))


_SOURCE_NAME = re.compile(r"^source (?P<name>[A-Za-z0-9_.-]+):")


def record_dead_letter(spark: SparkSession, ctx: RunContext, error: SourceError) -> None:
    """Append a whole-source failure (an unreadable file, an API that kept failing) to
    ``<warehouse>/_etl/dead_letters`` with the source's name and the reason."""
    match = _SOURCE_NAME.match(str(error))
    row = (ctx.job, ctx.run_id, match.group("name") if match else None, type(error).__name__,
           str(error)[:4000], utcnow(), None, None, None)
    DEAD_LETTERS.append(spark, ctx.warehouse.records(DEAD_LETTERS.name), [row], run_id=ctx.run_id)
