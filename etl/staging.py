"""The staging area: every extract lands raw, before any transform, under
``<warehouse>/staging/<source>/<ingest_date>/<run_id>/`` (Parquet, the rows exactly as read,
plus ``_manifest.json`` saying what was read: rows, watermark range, query or files).

A job reads its batch back from the staged copy, so the source is read exactly once per run and
``etl run JOB --from-staging RUN_ID`` can redo the transform and load of that run from the same
bytes without touching the source. Staged days older than ``retention.staging`` are deleted
after a successful run (and by ``etl maintain --retention JOB``).

Example::

    staging = Staging(spark, ctx.warehouse.root + "/staging")
    staged = staging.stage("orders", ctx.run_id, ctx.started_at.date(), extract.df,
                           {"query": extract.query})
    batch = staged.df            # read back from the staged Parquet
    staging.read("orders", "20261126T010342Z-1f0c2a9b").df   # a replay
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from etl import storage
from etl.errors import EtlError, SourceError, StateError, jvm_error_text

MANIFEST = "_manifest.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class StagedExtract:
    """A staged extract: where it is, its rows (read back from the staged Parquet) and its
    manifest."""

    source: str
    run_id: str
    path: str
    df: DataFrame
    manifest: dict[str, Any]
    #: Rows the extraction read and set aside rather than staged (``_errors``, ``_record``).
    rejected: DataFrame | None = None


class Staging:
    """The staging area under ``root`` (``<warehouse>/staging``)."""

    def __init__(self, spark: SparkSession, root: str):
        self.spark = spark
        self.root = root.rstrip("/")

    def path(self, source: str, ingest_date: dt.date, run_id: str) -> str:
        return f"{self.root}/{source}/{ingest_date.isoformat()}/{run_id}"

    def stage(
        self,
        source: str,
        run_id: str,
        ingest_date: dt.date,
        df: DataFrame,
        manifest: dict[str, Any],
        fmt: str = "parquet",
    ) -> StagedExtract:
        """Write ``df`` unchanged and its manifest; return the staged copy (read back).
        ``fmt="json"`` stages JSON lines (the schema is kept in the manifest for reading back)."""
        if fmt not in ("parquet", "json"):
            raise StateError(f"staging format must be parquet or json, got {fmt!r}")
        path = self.path(source, ingest_date, run_id)
        try:
            df.write.mode("errorifexists").format(fmt).save(path)
        except EtlError:
            raise
        except Exception as exc:
            raise SourceError(
                f"source {source}: extracting to {path} failed: {jvm_error_text(exc)}"
            ) from exc
        content = {**manifest, "source": source, "run_id": run_id}
        if fmt == "json":
            content.update(format=fmt, schema=df.schema.json())
        staged = self._load(path, content)
        content["rows"] = staged.count()
        storage.write_text(self.spark, f"{path}/{MANIFEST}", json.dumps(content, default=str))
        return StagedExtract(source=source, run_id=run_id, path=path, df=staged, manifest=content)

    def find(self, source: str, run_id: str) -> str:
        """The staged folder of ``source`` for ``run_id``; `StateError` when there is none."""
        if not _RUN_ID.match(run_id):
            raise StateError(f"not a run id: {run_id!r}")
        found = storage.glob(self.spark, f"{self.root}/{source}/*/{run_id}")
        if not found:
            raise StateError(
                f"no staged extract of source {source} for run {run_id} under {self.root}"
            )
        return found[0]

    def read(self, source: str, run_id: str) -> StagedExtract:
        """A staged extract of an earlier run (for ``--from-staging``)."""
        path = self.find(source, run_id)
        manifest = json.loads(storage.read_text(self.spark, f"{path}/{MANIFEST}"))
        return StagedExtract(
            source=source, run_id=run_id, path=path, df=self._load(path, manifest),
            manifest=manifest,
        )

    def _load(self, path: str, manifest: dict[str, Any]) -> DataFrame:
        """The staged rows at ``path`` in the format (and, for JSON, the schema) of its
        manifest; manifests written before formats existed are Parquet."""
        if manifest.get("format", "parquet") == "parquet":
            return self.spark.read.parquet(path)
        schema = T.StructType.fromJson(json.loads(manifest["schema"]))
        return self.spark.read.schema(schema).json(path)

    def expired(self, cutoff: dt.date, sources: Iterable[str] | None = None) -> list[str]:
        """The staged day folders (``<root>/<source>/<date>``) dated before ``cutoff``, of
        ``sources`` (default: every source), sorted."""
        patterns = [f"{self.root}/{s}/*" for s in sources] if sources is not None \
            else [f"{self.root}/*/*"]
        found = []
        for folder in (f for pattern in patterns for f in storage.glob(self.spark, pattern)):
            name = folder.rstrip("/").rsplit("/", 1)[-1]
            try:
                day = dt.date.fromisoformat(name)
            except ValueError:
                continue
            if day < cutoff:
                found.append(folder)
        return sorted(found)

    def contents(self, folder: str) -> tuple[int, int]:
        """``(rows, data files)`` staged under a day folder: the rows its manifests counted and
        its files other than manifests and ``_``/``.`` markers."""
        manifests = storage.glob(self.spark, f"{folder}/*/{MANIFEST}")
        rows = sum(int(json.loads(storage.read_text(self.spark, m)).get("rows") or 0)
                   for m in manifests)
        files = [f for f in storage.glob(self.spark, f"{folder}/*/*")
                 if not f.rsplit("/", 1)[-1].startswith(("_", "."))]
        return rows, len(files)

    def purge(self, retention_days: int, today: dt.date,
              sources: Iterable[str] | None = None) -> list[str]:
        """Delete the staged days older than ``retention_days`` before ``today`` (of
        ``sources``, default every source); return the deleted folders. ``retention_days = 0``
        keeps everything."""
        if retention_days <= 0:
            return []
        cutoff = today - dt.timedelta(days=retention_days)
        return [f for f in self.expired(cutoff, sources) if storage.delete(self.spark, f)]


__all__ = ["MANIFEST", "StagedExtract", "Staging"]
