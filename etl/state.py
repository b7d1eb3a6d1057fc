"""Run state kept under ``<warehouse>/_etl/``: the ledger of landed files.

The ledger is a Delta table with one row per (job, source, file version) and what happened to
it: ``ingested`` (its rows are in bronze), ``set_aside`` (it could not be used; the dead letters
say why) or ``readmitted`` (``etl state readmit``: try it again). The latest row of a file's
latest version decides: an ingested or set-aside version is not read again, a changed version
(new size or modification time) or a readmitted one is. The flow records files only after its
targets have committed, so a failed run leaves the ledger where it was and the next run picks
the same files up again.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from etl.errors import StateError
from etl.readers.files import LandedFile
from etl.records import FILES

INGESTED, SET_ASIDE, READMITTED = "ingested", "set_aside", "readmitted"
#: What a run reads of the ledger (``status`` and ``reason`` are null in rows older than them).
LEDGER_COLUMNS = ("source", "path", "size", "modified_ms", "ingested_at", "status", "reason")


@dataclass(frozen=True)
class Discovery:
    """Files of a source split by what the ledger knows of them."""

    new: list[LandedFile]
    changed: list[LandedFile]
    known: list[LandedFile]
    #: Versions set aside by an earlier run: not read again.
    set_aside: list[LandedFile] = field(default_factory=list)

    @property
    def to_ingest(self) -> list[LandedFile]:
        return sorted(self.new + self.changed, key=lambda f: (f.modified_ms, f.path))


@dataclass(frozen=True)
class Entry:
    """The ledger's latest word on a file: its version and what happened to it."""

    size: int
    modified_ms: int
    status: str
    reason: str | None = None


class FileLedger:
    def __init__(self, spark: SparkSession, path: str):
        self.spark = spark
        self.path = path
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _job_rows(self, job: str) -> list[dict[str, Any]]:
        """The job's ledger rows, read once per ledger object (`RecordTable.select`), also
        when sources land side by side."""
        with self._lock:
            if job not in self._rows:
                self._rows[job] = [
                    {**row, "status": row["status"] or INGESTED}
                    for row in FILES.select(self.spark, self.path, LEDGER_COLUMNS, job=job)
                ]
            return self._rows[job]

    def entries(self, job: str, source: str) -> dict[str, Entry]:
        """file uri -> the latest row of its latest version."""
        latest: dict[str, tuple[tuple[int, dt.datetime], Entry]] = {}
        for row in self._job_rows(job):
            if row["source"] != source:
                continue
            order = (row["modified_ms"], row["ingested_at"])
            current = latest.get(row["path"])
            if current is None or order >= current[0]:
                latest[row["path"]] = (order, Entry(row["size"], row["modified_ms"],
                                                    row["status"], row["reason"]))
        return {path: entry for path, (_, entry) in latest.items()}

    def ingested(self, job: str, source: str) -> dict[str, tuple[int, int]]:
        """file uri -> (size, modified_ms) of the latest ingested version of each file."""
        return {path: (e.size, e.modified_ms) for path, e in self.entries(job, source).items()
                if e.status == INGESTED}

    def discover(self, job: str, source: str, files: Sequence[LandedFile]) -> Discovery:
        seen = self.entries(job, source)
        new, changed, known, set_aside = [], [], [], []
        for f in files:
            entry = seen.get(f.uri)
            if entry is None:
                new.append(f)
            elif (entry.size, entry.modified_ms) != (f.size, f.modified_ms):
                changed.append(f)
            elif entry.status == SET_ASIDE:
                set_aside.append(f)
            elif entry.status == READMITTED:
                new.append(f)
            else:
                known.append(f)
        return Discovery(new=new, changed=changed, known=known, set_aside=set_aside)

    def record(
        self, job: str, files_by_source: Mapping[str, Sequence[LandedFile]], run_id: str,
        set_aside: Mapping[str, Sequence[tuple[LandedFile, str]]] | None = None,
    ) -> None:
        """Append the ingested files of every source, and the set-aside ones with their
        reason, in one commit."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = [
            (job, source, f.uri, f.size, f.modified_ms, run_id, now, INGESTED, None)
            for source, files in files_by_source.items()
            for f in files
        ] + [
            (job, source, f.uri, f.size, f.modified_ms, run_id, now, SET_ASIDE, reason)
            for source, pairs in (set_aside or {}).items()
            for f, reason in pairs
        ]
        if not rows:
            return
        self._rows.pop(job, None)
        FILES.append(self.spark, self.path, rows, run_id=run_id)

    def readmit(self, job: str, source: str, path: str, run_id: str) -> str:
        """Try a set-aside file again on the next run: ``path`` is its URI, its path or its
        name. Returns the file's URI; `StateError` when no set-aside file matches."""
        entries = self.entries(job, source)
        aside = {uri: e for uri, e in entries.items() if e.status == SET_ASIDE}
        matches = [uri for uri in aside
                   if path in (uri, uri.rsplit("/", 1)[-1], uri.removeprefix("file:"))]
        if len(matches) != 1:
            names = sorted(u.rsplit("/", 1)[-1] for u in aside)
            raise StateError(f"source {source} of job {job}: {len(matches)} set-aside files "
                             f"match {path!r} (set aside: {', '.join(names) or 'none'})")
        entry = aside[matches[0]]
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        FILES.append(self.spark, self.path, [
            (job, source, matches[0], entry.size, entry.modified_ms, run_id, now, READMITTED,
             None)], run_id=run_id)
        self._rows.pop(job, None)
        return matches[0]
