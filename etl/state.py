"""Run state kept under ``<warehouse>/_etl/``: the ledger of ingested files.

The ledger is a Delta table with one row per (job, source, file version) ingested. A job records
files only after its targets have committed, so a failed run leaves the ledger where it was and
the next run picks the same files up again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from etl.readers.files import LandedFile
from etl.records import FILES


@dataclass(frozen=True)
class Discovery:
    """Files of a source split by what the ledger knows of them."""

    new: list[LandedFile]
    changed: list[LandedFile]
    known: list[LandedFile]

    @property
    def to_ingest(self) -> list[LandedFile]:
        return sorted(self.new + self.changed, key=lambda f: (f.modified_ms, f.path))


class FileLedger:
    def __init__(self, spark: SparkSession, path: str):
        self.spark = spark
        self.path = path
        self._rows: dict[str, list[Row]] = {}

    def _job_rows(self, job: str) -> list[Row]:
        """The job's ledger rows, read once per ledger object (one small Delta scan)."""
        if job not in self._rows:
            recorded = FILES.read(self.spark, self.path)
            if recorded is None:
                return []
            self._rows[job] = (
                recorded
                .where(F.col("job") == job)
                .select("source", "path", "size", "modified_ms")
                .collect()
            )
        return self._rows[job]

    def ingested(self, job: str, source: str) -> dict[str, tuple[int, int]]:
        """file uri -> (size, modified_ms) of the latest ingested version of each file."""
        latest: dict[str, tuple[int, int]] = {}
        for row in self._job_rows(job):
            if row["source"] != source:
                continue
            current = latest.get(row["path"])
            if current is None or row["modified_ms"] > current[1]:
                latest[row["path"]] = (row["size"], row["modified_ms"])
        return latest

    def discover(self, job: str, source: str, files: Sequence[LandedFile]) -> Discovery:
        seen = self.ingested(job, source)
        new, changed, known = [], [], []
        for f in files:
            version = seen.get(f.uri)
            if version is None:
                new.append(f)
            elif version != (f.size, f.modified_ms):
                changed.append(f)
            else:
                known.append(f)
        return Discovery(new=new, changed=changed, known=known)

    def record(
        self, job: str, files_by_source: Mapping[str, Sequence[LandedFile]], run_id: str
    ) -> None:
        """Append the ingested files of every source in one commit."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        rows = [
            (job, source, f.uri, f.size, f.modified_ms, run_id, now)
            for source, files in files_by_source.items()
            for f in files
        ]
        if not rows:
            return
        self._rows.pop(job, None)
        FILES.append(self.spark, self.path, rows, run_id=run_id)
