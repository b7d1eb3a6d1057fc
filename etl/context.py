"""The run context: who is running (job, run id, logical dates), where tables live, and what each
step did (timing, rows in and out, writes). Jobs receive it; the runner turns it into the run
record when the run ends."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etl.errors import EtlError
from etl.logs import get_logger

if TYPE_CHECKING:  # the aliases need PySpark, which inspection commands do not import
    from etl._typing import Layer, RunMode


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (``s3a://...``, ``file:...``) rather than a local path."""
    return "://" in path or path.startswith("file:")


@dataclass(frozen=True)
class Warehouse:
    """Locations under the warehouse root: ``<root>/<layer>/<table>``, ``<root>/quarantine/<table>``
    and the project's own records under ``<root>/_etl/``."""

    root: str

    @classmethod
    def at(cls, root: str) -> Warehouse:
        return cls(root.rstrip("/") if is_uri(root) else os.path.abspath(root))

    def table(self, layer: Layer, name: str) -> str:
        return f"{self.root}/{layer}/{name}"

    def quarantine(self, name: str) -> str:
        return f"{self.root}/quarantine/{name}"

    def records(self, name: str) -> str:
        return f"{self.root}/_etl/{name}"


def landing_path(landing_root: str, source_path: str) -> str:
    """A source folder: a URI as given, else relative to the landing root."""
    if is_uri(source_path) or os.path.isabs(source_path):
        return source_path
    root = landing_root if is_uri(landing_root) else os.path.abspath(landing_root)
    return f"{root.rstrip('/')}/{source_path}"


@dataclass
class WriteMetrics:
    """What one commit to one table did."""

    table: str
    operation: str
    version: int | None = None
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    files_added: int = 0
    files_removed: int = 0


@dataclass
class StepRecord:
    name: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    duration_s: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    #: Spark jobs the step ran and their tasks (None when no Spark session tracked it).
    spark_jobs: int | None = None
    spark_tasks: int | None = None


@dataclass
class RunContext:
    job: str
    env: str
    warehouse: Warehouse
    landing: str
    mode: RunMode = "incremental"
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    run_id: str = field(default_factory=lambda: new_run_id())
    started_at: dt.datetime = field(default_factory=lambda: utcnow())
    steps: list[StepRecord] = field(default_factory=list)
    writes: list[WriteMetrics] = field(default_factory=list)
    #: Reconciliation: read = loaded + quarantined + filtered.
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_filtered: int = 0
    quality: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: ``etl run --from-staging RUN_ID``: redo transform and load from that run's staged extracts.
    staged_run: str | None = None
    #: ``--allow-empty``: writes that would replace rows with nothing may go ahead.
    allow_empty: bool = False
    #: Landed files set aside by this run (``source: file: reason``).
    files_set_aside: list[str] = field(default_factory=list)
    #: Datasets the run read, as locations (paths or URIs) for lineage; when a job leaves it
    #: empty, its configured sources are its inputs.
    inputs: list[str] = field(default_factory=list)
    #: Counts each step's Spark jobs (`etl.runlog.StepJobs`; the runner sets it).
    step_jobs: Any = None

    @property
    def log(self) -> Any:
        return get_logger("etl.run")

    @contextmanager
    def step(self, name: str) -> Iterator[StepRecord]:
        """Time a step; the caller sets ``rows_in``/``rows_out`` on the yielded record."""
        record = StepRecord(name=name, started_at=utcnow())
        self.steps.append(record)
        began = time.perf_counter()
        self.log.info("step started", step=name)
        group = self.step_jobs.begin(name) if self.step_jobs is not None else None
        try:
            yield record
        finally:
            record.ended_at = utcnow()
            record.duration_s = round(time.perf_counter() - began, 3)
            if group is not None:
                record.spark_jobs, record.spark_tasks = self.step_jobs.end(group)
            self.log.info(
                "step finished",
                step=name,
                duration_s=record.duration_s,
                rows_in=record.rows_in,
                rows_out=record.rows_out,
                spark_jobs=record.spark_jobs,
            )

    def record_write(self, metrics: WriteMetrics) -> None:
        self.writes.append(metrics)
        self.log.info("table written", **vars(metrics))

    def note(self, message: str, **fields: Any) -> None:
        self.notes.append(message)
        self.log.warning(message, **fields)

    def check_reconciled(self) -> None:
        """Raise `EtlError` unless read = loaded + quarantined + filtered."""
        if self.rows_read != self.rows_loaded + self.rows_quarantined + self.rows_filtered:
            raise EtlError(
                f"row counts do not reconcile: read {self.rows_read} != loaded {self.rows_loaded}"
                f" + quarantined {self.rows_quarantined} + filtered {self.rows_filtered}"
            )


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
