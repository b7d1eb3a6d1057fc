"""The run record: ``<warehouse>/_etl/runs`` (Delta), one row per run and one per step of it,
appended in one commit when a run ends, whatever its outcome. ``etl runs`` reads it.

``record_type`` tells the rows apart: ``run`` (the whole run; ``step`` is null) or ``step`` (one
``ctx.step(...)`` block, in ``step_index`` order). Row counts: on a run row ``rows_read``,
``rows_loaded``, ``rows_quarantined`` and ``rows_filtered`` are the job's reconciliation
(``read = loaded + quarantined + filtered``) and ``rows_written`` is the sum of rows inserted and
updated over every table write; on a step row ``rows_read``/``rows_written`` are the step's
``rows_in``/``rows_out``. A run row also carries the writes (table, Delta version, counts), the
quality results (JSON), the schema changes of the tables written, notes, the error class and
message, Spark's application id and a summary of the Spark stages the run ran (executor time,
shuffle and spill bytes), the OpenLineage run id, the library version and the git commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self, TextIO

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import etl
from etl.context import RunContext, utcnow
from etl.inspection import FAILED, QUALITY_FAILED, RUN, STATUSES, STEP, SUCCEEDED
from etl.records import RUNS

__all__ = ["FAILED", "QUALITY_FAILED", "RUN", "STEP", "SUCCEEDED", "ProgressPrinter",
           "StageTracker", "StepJobs", "build_info", "read_runs", "record_run"]


@functools.cache
def build_info() -> dict[str, str | None]:
    """``etl_version`` and ``git_commit``: ``$ETL_GIT_COMMIT`` when set (stamp it when building
    the wheel), else ``git rev-parse HEAD`` of the source tree the package runs from, else
    ``None`` (an installed wheel outside a checkout)."""
    commit = os.environ.get("ETL_GIT_COMMIT") or None
    if commit is None:
        package_dir = Path(etl.__file__).resolve().parent
        try:
            done = subprocess.run(
                ["git", "-C", str(package_dir), "rev-parse", "HEAD"],
                capture_output=True, text=True, timeout=5, check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            commit = done.stdout.strip() or None
    return {"etl_version": etl.__version__, "git_commit": commit}


@dataclass(frozen=True)
class StageSummary:
    """Spark stages a run ran: how many, executor time, shuffle read/write and spilled bytes."""

    stages: int = 0
    executor_time_ms: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    spill_bytes: int = 0


class StageTracker:
    """Summarises the Spark stages run between `begin` and `summary` from Spark's status store
    (kept even with the UI off). Stages of other work running in the same session at the same
    time are counted too. ``summary`` returns ``None`` when the status store is unavailable
    (e.g. a Spark Connect session).

    The store lists its stages newest first, so both ends read only the head of the list: the
    newest stage at `begin`, the run's own stages at `summary`. The cost is the run's stages,
    not every stage the session retained (up to ``spark.ui.retainedStages``, 1,000 by
    default, each a call to the JVM), which a long session such as `etl backfill --parallel`
    or a test worker would otherwise pay at every run."""

    def __init__(self, spark: SparkSession):
        self.spark = spark
        self.first_stage: int | None = None

    def _newest_first(self) -> Iterator[Any] | None:
        from py4j.protocol import Py4JError  # type: ignore[import-untyped]

        context = self.spark.sparkContext
        gateway: Any = context._gateway
        try:
            store = context._jsc.sc().statusStore()  # type: ignore[union-attr]
            # AppStatusStore.stageList(statuses, details, withSummaries, quantiles, taskStatus)
            seq = store.stageList(gateway.jvm.java.util.ArrayList(), False, False,
                                  gateway.new_array(gateway.jvm.double, 0),
                                  gateway.jvm.java.util.ArrayList())
            return (seq.apply(i) for i in range(seq.size()))
        except (Py4JError, AttributeError):
            return None

    def begin(self) -> StageTracker:
        stages = self._newest_first()
        if stages is not None:
            newest = next(stages, None)
            self.first_stage = 0 if newest is None else newest.stageId() + 1
        return self

    def summary(self) -> StageSummary | None:
        first = self.first_stage
        stages = self._newest_first() if first is not None else None
        if first is None or stages is None:
            return None
        ids, mine = set(), []
        for stage in stages:  # a stage's attempts are listed one after the other
            stage_id = stage.stageId()
            if stage_id < first:
                break
            ids.add(stage_id)
            mine.append(stage)
        return StageSummary(
            stages=len(ids),
            executor_time_ms=sum(int(s.executorRunTime()) for s in mine),
            shuffle_read_bytes=sum(int(s.shuffleReadBytes()) for s in mine),
            shuffle_write_bytes=sum(int(s.shuffleWriteBytes()) for s in mine),
            spill_bytes=sum(int(s.memoryBytesSpilled()) + int(s.diskBytesSpilled()) for s in mine),
        )


class StepJobs:
    """Puts the Spark jobs of each step of a run in a job group of its own
    (``<run id>:<step>``) and counts them, with their tasks, from Spark's status tracker when
    the step ends. Job groups are per thread, so runs in parallel (`etl backfill --parallel`)
    count their own jobs only; the group a step replaces (a caller's) is restored after it."""

    def __init__(self, spark: SparkSession, run_id: str):
        self.context = spark.sparkContext
        self.run_id = run_id

    def begin(self, step: str) -> tuple[str, str | None, str | None]:
        previous = (self.context.getLocalProperty("spark.jobGroup.id"),
                    self.context.getLocalProperty("spark.job.description"))
        group = f"{self.run_id}:{step}"
        self.context.setJobGroup(group, f"etl {step} ({self.run_id})")
        return group, *previous

    def end(self, begun: tuple[str, str | None, str | None]) -> tuple[int, int]:
        group, previous_group, previous_description = begun
        self.context.setLocalProperty("spark.jobGroup.id", previous_group)  # type: ignore[arg-type]
        self.context.setLocalProperty("spark.job.description",
                                      previous_description)  # type: ignore[arg-type]
        tracker = self.context.statusTracker()
        jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group)]
        stages = {s for job in jobs if job is not None for s in job.stageIds}
        tasks = sum(info.numTasks for info in map(tracker.getStageInfo, stages) if info)
        return len(jobs), tasks


def progress_line(stages: Sequence[tuple[int, str, int, int]]) -> str:
    """One terminal line for active stages ``(stage id, name, tasks done, tasks)``."""
    if not stages:
        return "spark: idle"
    parts = [f"stage {sid} {done}/{total} ({name.split(' at ')[0][:40]})"
             for sid, name, done, total in sorted(stages)]
    return "spark: " + "; ".join(parts)


class ProgressPrinter:
    """Prints Spark's active stages to a terminal every ``interval_s`` seconds while a run is
    going (a daemon thread reading `pyspark.StatusTracker`); does nothing when ``stream`` is not
    a terminal, so logs and CI output stay clean."""

    def __init__(self, spark: SparkSession, stream: TextIO | None = None, interval_s: float = 2.0):
        self.spark = spark
        # the sys.stderr of the moment (a default argument would keep the one seen at import)
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _stages(self) -> list[tuple[int, str, int, int]]:
        tracker = self.spark.sparkContext.statusTracker()
        infos = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
        return [(i.stageId, i.name, i.numCompletedTasks, i.numTasks) for i in infos if i]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.stream.write("\r\x1b[2K" + progress_line(self._stages())[:160])
            self.stream.flush()
        self.stream.write("\r\x1b[2K")
        self.stream.flush()

    def __enter__(self) -> Self:
        if self.stream.isatty():
            self._thread = threading.Thread(target=self._loop, name="etl-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def schema_changes(spark: SparkSession, ctx: RunContext) -> list[str]:
    """Columns added, dropped or retyped by the run's writes (``table: +col type``,
    ``table: -col``, ``table: col old -> new``), or ``table: created``. Reads Delta logs only."""
    changes: list[str] = []
    for write in ctx.writes:
        if write.version is None:
            continue
        layer, _, name = write.table.partition("/")
        path = f"{ctx.warehouse.root}/{layer}/{name}"
        if write.version == 0:
            changes.append(f"{write.table}: created")
            continue
        reader = spark.read.format("delta")
        before = {f.name: f.dataType.simpleString()
                  for f in reader.option("versionAsOf", write.version - 1).load(path).schema}
        after = {f.name: f.dataType.simpleString()
                 for f in reader.option("versionAsOf", write.version).load(path).schema}
        changes += [f"{write.table}: +{c} {t}" for c, t in after.items() if c not in before]
        changes += [f"{write.table}: -{c}" for c in before if c not in after]
        changes += [f"{write.table}: {c} {before[c]} -> {t}" for c, t in after.items()
                    if c in before and before[c] != t]
    return changes


def record_run(
    spark: SparkSession,
    ctx: RunContext,
    status: str,
    error: BaseException | None = None,
    *,
    stages: StageSummary | None = None,
    lineage_run_id: str | None = None,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Append the run's rows (the run, then each step) in one commit; return the run row."""
    ended = utcnow()
    info = build_info()
    common = {
        "run_id": ctx.run_id, "job": ctx.job, "env": ctx.env, "mode": ctx.mode,
        "date_from": ctx.date_from, "date_to": ctx.date_to, "spark_app_id":
        spark.sparkContext.applicationId, "lineage_run_id": lineage_run_id,
        "parent_run_id": parent_run_id, **info,
    }
    run = {
        **common,
        "record_type": RUN, "step": None, "step_index": None, "status": status,
        "started_at": ctx.started_at, "ended_at": ended,
        "duration_s": round((ended - ctx.started_at).total_seconds(), 3),
        "rows_read": ctx.rows_read,
        "rows_written": sum(w.rows_inserted + w.rows_updated for w in ctx.writes),
        "rows_loaded": ctx.rows_loaded, "rows_quarantined": ctx.rows_quarantined,
        "rows_filtered": ctx.rows_filtered,
        "writes": [tuple(asdict(w).values()) for w in ctx.writes],
        "quality": json.dumps(ctx.quality),
        "schema_changes": schema_changes(spark, ctx),
        "notes": list(ctx.notes),
        "files_set_aside": list(ctx.files_set_aside),
        "error_class": type(error).__name__ if error else None,
        "error_message": str(error)[:4000] if error else None,
        **_stage_columns(stages),
        **_step_sums(ctx),
    }
    rows = [run]
    for index, step in enumerate(ctx.steps):
        failed_here = status != SUCCEEDED and index == len(ctx.steps) - 1
        rows.append({
            **common,
            "record_type": STEP, "step": step.name, "step_index": index,
            "status": status if failed_here else SUCCEEDED,
            "started_at": step.started_at, "ended_at": step.ended_at,
            "duration_s": float(step.duration_s), "rows_read": step.rows_in,
            "rows_written": step.rows_out, "spark_jobs": step.spark_jobs,
            "spark_tasks": step.spark_tasks,
            "error_class": run["error_class"] if failed_here else None,
            "error_message": run["error_message"] if failed_here else None,
        })
    RUNS.append(spark, ctx.warehouse.records(RUNS.name),
                [tuple(r.get(f.name) for f in RUNS.schema.fields) for r in rows], run_id=ctx.run_id)
    return run


def _step_sums(ctx: RunContext) -> dict[str, int]:
    """The Spark jobs and tasks of the run's steps, summed (none when no step was tracked)."""
    tracked = [s for s in ctx.steps if s.spark_jobs is not None]
    if not tracked:
        return {}
    return {"spark_jobs": sum(s.spark_jobs or 0 for s in tracked),
            "spark_tasks": sum(s.spark_tasks or 0 for s in tracked)}


def _stage_columns(stages: StageSummary | None) -> dict[str, Any]:
    if stages is None:
        return {}
    return {f"spark_{k}": v for k, v in asdict(stages).items()}


def read_runs(
    spark: SparkSession,
    path: str,
    job: str | None = None,
    *,
    status: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    record_type: str = RUN,
) -> DataFrame | None:
    """The run record's rows of ``record_type``, newest first, filtered by job, status and the
    date the run started (``since``/``until`` inclusive); ``None`` when nothing was recorded."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    if since and until and since > until:
        raise ValueError(f"since {since} is after until {until}")
    df = RUNS.read(spark, path)
    if df is None:
        return None
    if "record_type" in df.columns:
        df = df.where(F.col("record_type") == record_type)
    if job:
        df = df.where(F.col("job") == job)
    if status:
        df = df.where(F.col("status") == status)
    if since:
        df = df.where(F.to_date("started_at") >= F.lit(since))
    if until:
        df = df.where(F.to_date("started_at") <= F.lit(until))
    if record_type == STEP:  # run ids start with their UTC start time
        return df.orderBy(F.col("run_id").desc(), F.col("step_index"))
    return df.orderBy(F.col("started_at").desc())
