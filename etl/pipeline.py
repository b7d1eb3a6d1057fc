"""Pipelines: named sets of jobs with dependencies, a schedule, retries and timeouts.

A pipeline is ``conf/pipelines/<name>.yml``::

    pipeline:
      name: daily
      schedule: "0 6 * * *"      # cron, used by exported Airflow DAGs
      start_date: "2013-01-01"   # first logical date of the schedule
      catchup: true              # Airflow runs the missed dates (a backfill)
      target: emr                # how exported DAGs run a job: emr or dataproc
      retries: 2                 # per job, unless the job says otherwise
      retry_delay_s: 30          # first wait; then multiplied by retry_backoff
      retry_backoff: 2.0
      max_retry_delay_s: 600
      timeout_s: 3600
    jobs:
      flights: {}
      report:
        depends_on: [flights]
        retries: 0

`run_pipeline` runs it locally for one logical date, in dependency order, in one SparkSession:
every job runs as ``etl run JOB --date D``. A failed job is retried (with backoff) unless the
error is a configuration error or a failed quality gate, which would fail the same way again;
jobs that depend on a failed job are skipped; a rerun for the same date skips the jobs whose run
record already says they succeeded for that date, unless ``force``. While a pipeline runs, the
environment variable ``ETL_PARENT_RUN_ID`` holds the pipeline's run id.
"""

from __future__ import annotations

import datetime as dt
import functools
import graphlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from etl.config import (
    DEFAULT_ENV,
    JobConfig,
    conf_dir,
    convert,
    list_jobs,
    load_job_config,
    read_yaml,
)
from etl.config.names import check_pipeline_name
from etl.errors import ConfigError, EtlError, QualityGateError
from etl.logs import get_logger

SUCCEEDED, FAILED, ALREADY_SUCCEEDED, UPSTREAM_FAILED = (
    "succeeded", "failed", "already_succeeded", "upstream_failed")
PARENT_RUN_ID = "ETL_PARENT_RUN_ID"
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z?LW#]+$")
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@once"}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a failed job."""

    retries: int = 0
    delay_s: float = 30.0
    backoff: float = 2.0
    max_delay_s: float = 600.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        return min(self.delay_s * self.backoff ** (retry - 1), self.max_delay_s)


@dataclass(frozen=True)
class PipelineJob:
    """One job of a pipeline; unset retry settings come from the pipeline."""

    depends_on: list[str] = field(default_factory=list)
    retries: int | None = None
    retry_delay_s: float | None = None
    timeout_s: int | None = None
    #: ``--set`` overrides for this job in this pipeline.
    set: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    description: str = ""
    schedule: str | None = None
    start_date: str | None = None
    catchup: bool = False
    target: Literal["emr", "dataproc"] = "emr"
    retries: int = 0
    retry_delay_s: float = 30.0
    retry_backoff: float = 2.0
    max_retry_delay_s: float = 600.0
    timeout_s: int | None = None


@dataclass(frozen=True)
class PipelineConfig:
    pipeline: PipelineInfo
    jobs: dict[str, PipelineJob]

    @property
    def name(self) -> str:
        return self.pipeline.name

    def retry_policy(self, job: str) -> RetryPolicy:
        spec, info = self.jobs[job], self.pipeline
        return RetryPolicy(
            retries=info.retries if spec.retries is None else spec.retries,
            delay_s=info.retry_delay_s if spec.retry_delay_s is None else spec.retry_delay_s,
            backoff=info.retry_backoff,
            max_delay_s=info.max_retry_delay_s,
        )

    def timeout(self, job: str) -> int | None:
        spec = self.jobs[job]
        return self.pipeline.timeout_s if spec.timeout_s is None else spec.timeout_s

    def order(self) -> list[str]:
        """Jobs in dependency order; among ready jobs, the order of the file."""
        position = {job: i for i, job in enumerate(self.jobs)}
        sorter = graphlib.TopologicalSorter({j: s.depends_on for j, s in self.jobs.items()})
        sorter.prepare()
        done: list[str] = []
        ready: list[str] = []
        while sorter.is_active():
            ready = sorted([*ready, *sorter.get_ready()], key=position.__getitem__)
            job = ready.pop(0)
            done.append(job)
            sorter.done(job)
        return done


def list_pipelines(directory: str | os.PathLike[str] | None = None) -> list[str]:
    root = conf_dir(directory) / "pipelines"
    return sorted(p.stem for p in root.glob("*.yml")) if root.is_dir() else []


def load_pipeline(name: str, directory: str | os.PathLike[str] | None = None) -> PipelineConfig:
    """Read and validate ``conf/pipelines/<name>.yml``: known jobs, known dependencies, no
    cycle, a cron schedule of five fields (or a preset such as ``@daily``), an ISO start date."""
    check_pipeline_name(name)
    root = conf_dir(directory)
    path = root / "pipelines" / f"{name}.yml"
    if not path.exists():
        known = ", ".join(list_pipelines(root)) or "none"
        raise ConfigError(f"unknown pipeline {name!r} (known pipelines: {known})", file=str(path))
    file = str(path)
    document = read_yaml(path)
    config: PipelineConfig = convert(PipelineConfig, document, {k: file for k in document}, "",
                                      file)
    if config.pipeline.name != name:
        raise ConfigError(f"names pipeline {config.pipeline.name!r} but the file is for {name!r}",
                          file=file, key="pipeline.name")
    if not config.jobs:
        raise ConfigError("a pipeline needs at least one job", file=file, key="jobs")
    known_jobs = set(list_jobs(root))
    for job, spec in config.jobs.items():
        if job not in known_jobs:
            raise ConfigError(f"unknown job {job!r} (known jobs: {', '.join(sorted(known_jobs))})",
                              file=file, key=f"jobs.{job}")
        for dep in spec.depends_on:
            if dep not in config.jobs:
                raise ConfigError(f"depends on {dep!r}, which is not a job of this pipeline "
                                  f"(jobs: {', '.join(config.jobs)})",
                                  file=file, key=f"jobs.{job}.depends_on")
    _check_acyclic(config, file)
    _check_schedule(config.pipeline, file)
    return config


def _check_acyclic(config: PipelineConfig, file: str) -> None:
    graph = {job: spec.depends_on for job, spec in config.jobs.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(reversed(exc.args[1]))
        raise ConfigError(f"dependency cycle: {cycle}", file=file, key="jobs") from None


def _check_schedule(info: PipelineInfo, file: str) -> None:
    if info.schedule is not None and info.schedule not in _CRON_PRESETS:
        fields = info.schedule.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ConfigError(f"expected a cron expression of 5 fields or one of "
                              f"{', '.join(sorted(_CRON_PRESETS))}, got {info.schedule!r}",
                              file=file, key="pipeline.schedule")
    if info.start_date is not None:
        try:
            dt.date.fromisoformat(info.start_date)
        except ValueError:
            raise ConfigError(f"expected a date YYYY-MM-DD, got {info.start_date!r}",
                              file=file, key="pipeline.start_date") from None


# --------------------------------------------------------------------------------------------
# Running locally
# --------------------------------------------------------------------------------------------


@dataclass
class JobOutcome:
    """What happened to one job of a pipeline run."""

    job: str
    status: str
    attempts: int = 0
    run_ids: list[str] = field(default_factory=list)
    error: str | None = None


class JobTimeoutError(EtlError):
    """A pipeline job ran longer than its ``timeout_s``; its Spark jobs were cancelled."""


def retryable(exc: BaseException) -> bool:
    """Whether a failed job may succeed if run again: not for configuration errors or a failed
    quality gate (deterministic), never for an interrupt (KeyboardInterrupt, SystemExit)."""
    return isinstance(exc, Exception) and not isinstance(exc, (ConfigError, QualityGateError))


def succeeded_for(spark: object, configs: dict[str, JobConfig], date: dt.date) -> set[str]:
    """The jobs among ``configs`` whose run log has a succeeded run for exactly that logical
    date (one query per warehouse)."""
    from pyspark.sql import functions as F

    from etl.context import Warehouse
    from etl.runlog import read_runs

    done: set[str] = set()
    by_warehouse: dict[str, list[str]] = {}
    for job, config in configs.items():
        by_warehouse.setdefault(Warehouse.at(config.paths.warehouse).records("runs"), []).append(job)
    for path, jobs in by_warehouse.items():
        runs = read_runs(spark, path)  # type: ignore[arg-type]
        if runs is None:
            continue
        match = runs.where(F.col("job").isin(jobs) & (F.col("date_from") == F.lit(date))
                           & (F.col("date_to") == F.lit(date)) & (F.col("status") == SUCCEEDED))
        done.update(r["job"] for r in match.select("job").distinct().collect())
    return done


@contextmanager
def parent_run(run_id: str) -> Iterator[None]:
    """Set ``ETL_PARENT_RUN_ID`` to ``run_id`` for the runs started in this block (a pipeline's
    or a backfill's jobs), restoring the previous value afterwards."""
    previous = os.environ.get(PARENT_RUN_ID)
    os.environ[PARENT_RUN_ID] = run_id
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_ID, None)
        else:
            os.environ[PARENT_RUN_ID] = previous


@contextmanager
def spark_timeout(spark: object, seconds: int | None, label: str) -> Iterator[threading.Event]:
    """Cancel the Spark jobs started in this block once ``seconds`` have passed; the yielded
    event is set if that happened."""
    fired = threading.Event()
    if not seconds:
        yield fired
        return
    sc = spark.sparkContext  # type: ignore[attr-defined]
    # a job tag, not a job group: the steps of the run put their jobs in groups of their own
    tag = f"etl-timeout-{label}-{time.monotonic_ns()}"
    sc.addJobTag(tag)
    sc.setInterruptOnCancel(True)

    def cancel() -> None:
        fired.set()
        sc.cancelJobsWithTag(tag)

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        sc.removeJobTag(tag)
        sc.setInterruptOnCancel(False)


def run_pipeline(
    pipeline: PipelineConfig,
    date: dt.date,
    *,
    env: str = DEFAULT_ENV,
    overrides: list[str] | tuple[str, ...] = (),
    directory: str | os.PathLike[str] | None = None,
    spark: object | None = None,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[JobOutcome]:
    """Run every job of ``pipeline`` for the logical ``date`` in dependency order; return one
    outcome per job, in the order they were considered. Never raises for a failed job (its
    outcome says ``failed``); configuration errors are raised before anything runs."""
    from etl.context import new_run_id
    from etl.runner import resolve_entrypoint, run_job
    from etl.secrets import resolve_overrides
    from etl.session import get_spark

    order = pipeline.order()
    configs = {
        job: load_job_config(job, env=env, directory=directory,
                             overrides=resolve_overrides([*overrides, *pipeline.jobs[job].set]))
        for job in order
    }
    # checked before Spark starts, and made once: a job's plan reads its key (etl.privacy)
    entries = {job: resolve_entrypoint(config) for job, config in configs.items()}
    session = spark or get_spark(configs[order[0]].spark)
    pipeline_run = new_run_id()
    log = get_logger("etl.pipeline").bind(pipeline=pipeline.name, pipeline_run_id=pipeline_run,
                                          logical_date=str(date))
    outcomes: dict[str, JobOutcome] = {}
    done = set() if force else succeeded_for(session, configs, date)
    with parent_run(pipeline_run):
        for job in order:
            failed_deps = [d for d in pipeline.jobs[job].depends_on
                           if outcomes[d].status in (FAILED, UPSTREAM_FAILED)]
            if failed_deps:
                outcomes[job] = JobOutcome(job, UPSTREAM_FAILED,
                                           error=f"upstream failed: {', '.join(failed_deps)}")
                log.warning("job skipped: an upstream job failed", job=job, upstream=failed_deps)
                continue
            if job in done:
                outcomes[job] = JobOutcome(job, ALREADY_SUCCEEDED)
                log.info("job skipped: already succeeded for this date", job=job)
                continue
            outcomes[job] = _run_with_retries(
                job, configs[job], date, pipeline.retry_policy(job), pipeline.timeout(job),
                session, functools.partial(run_job, entry=entries[job]), sleep, log)
    return [outcomes[job] for job in order]


def _run_with_retries(
    job: str, config: JobConfig, date: dt.date, policy: RetryPolicy, timeout_s: int | None,
    session: object, run_job: Callable[..., object], sleep: Callable[[float], None], log: object,
) -> JobOutcome:
    from etl.context import new_run_id

    outcome = JobOutcome(job, FAILED)
    while True:
        outcome.attempts += 1
        run_id = new_run_id()
        outcome.run_ids.append(run_id)
        try:
            with spark_timeout(session, timeout_s, job) as timed_out:
                try:
                    run_job(config, spark=session, date_from=date, date_to=date, run_id=run_id)
                except Exception as exc:
                    if timed_out.is_set():
                        raise JobTimeoutError(
                            f"job {job} ran longer than its timeout of {timeout_s}s") from exc
                    raise
            outcome.status, outcome.error = SUCCEEDED, None
            return outcome
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            retry = outcome.attempts
            if not retryable(exc) or retry > policy.retries:
                log.error("job failed", job=job, attempts=outcome.attempts,  # type: ignore[attr-defined]
                          error=outcome.error)
                return outcome
            wait = policy.delay(retry)
            log.warning("job failed; retrying", job=job, attempt=outcome.attempts,  # type: ignore[attr-defined]
                        wait_s=wait, error=outcome.error)
            sleep(wait)


def pipeline_path(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    return conf_dir(directory) / "pipelines" / f"{name}.yml"


__all__ = [
    "ALREADY_SUCCEEDED", "FAILED", "SUCCEEDED", "UPSTREAM_FAILED", "JobOutcome", "JobTimeoutError",
    "PipelineConfig", "PipelineInfo", "PipelineJob", "RetryPolicy", "list_pipelines",
    "load_pipeline", "retryable", "run_pipeline",
]
