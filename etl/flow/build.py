"""The flow's transform step: landed rows typed as declared, references looked up, the job's
transform applied, the latest version of each key kept, and the books kept.

For a target built from a source (``inputs: [source]``), in this order:

1. **typing** (`typed`): the landed record kept as ``_record``, then `type_columns` with the
   source's ``types``, ``required``, ``na_values`` (and the reader's malformed and undecodable
   checks), then the source's ``derive`` function, then, for a dated run, the rows of those
   logical dates only (``job.date_column``); change feeds are flattened instead;
2. rows with reasons go to ``quarantine/<table>``; the others to
3. the target's ``transform``, called with the batch and the ``references`` (typed, the latest
   version of each key) as keyword arguments; a transform keeps every row it is given (it adds,
   renames or drops columns, and joins references): rows are dropped on purpose only by the
   target's ``filter``;
4. the latest version of each key (``keys``, ordered by ``sequence_by``) when ``duplicates:
   latest``; the others are counted as filtered, by the same window (`latest_per_key`'s
   ``count_as``); then the personal columns ``personal_data`` declares in the form the
   target's layer holds them (`Plan.protection`), so the audit sees what is published;
5. **one action** computes the batch (kept in memory and on disk for the audit and the write)
   and counts its rows, the versions the de-duplication saw, the rows the filter dropped and the
   values of ``replace_by`` the targets downstream need.

The books: ``read = loaded + quarantined + filtered``. The rows read come from the extract (the
bronze commit, a staged manifest) whenever it knows them; the rows quarantined from the
quarantine's commit; loaded and filtered from the one action. When the versions counted equal
the rows read, no row failed typing and the batch is not scanned again for rejects; otherwise
the rejects are written and the counts must reconcile, or the run fails naming the target (a
transform that dropped or repeated rows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

import etl
from etl import storage
from etl.config import SourceConfig
from etl.context import RunContext, Warehouse
from etl.errors import ConfigError, EtlError
from etl.flow.landing import Landed
from etl.flow.plan import RAW_COLUMNS, Built, Plan
from etl.readers.files import CORRUPT, MALFORMED_REASONS
from etl.tables import table_identity
from etl.transforms.cdc import flatten_changes
from etl.transforms.cleaning import (
    keep_raw_record,
    latest_per_key,
    split_rejected,
    type_columns,
)
from etl.writers.quarantine import write_quarantine

#: Internal columns of the batch: versions per key, and the filter's verdict.
VERSIONS, KEEP = "_etl_versions", "_etl_keep"
_TEXT_FORMATS = ("csv", "json", "jsonl", "text")


def dates_of(ctx: RunContext) -> tuple[dt.date, dt.date]:
    if ctx.date_from is None or ctx.date_to is None:
        raise EtlError("a dated run needs both date_from and date_to")
    return ctx.date_from, ctx.date_to


def source_typing(source: SourceConfig, *, has_corrupt: bool) -> Any:
    """The `type_columns` transform of ``source``; ``has_corrupt``: the landed rows have the
    reader's ``_corrupt_record`` (malformed records are rejected)."""
    text = source.type == "files" and source.format in _TEXT_FORMATS
    return type_columns(
        source.types, required=source.required, na_values=source.na_values,
        undecodable=text and source.reject_undecodable,
        malformed_reason=MALFORMED_REASONS.get(source.format, "malformed record")
        if has_corrupt else None,
    )


def typed(plan: Plan, ctx: RunContext, landed: Landed, *, batch: bool = True) -> DataFrame:
    """The landed rows of ``landed.source`` typed, with ``_errors`` (see the module docstring,
    step 1). ``batch``: rows that feed a target (they keep the landed record as ``_record`` for
    the quarantine, and a dated run keeps its dates only); else a reference's rows."""
    assert landed.rows is not None
    name, rows = landed.source, landed.rows
    source = plan.source(name)
    if source.type in ("delta_cdf", "pg_logical"):
        assert source.cdc is not None
        return rows.transform(flatten_changes(source.cdc.keys, position=source.cdc.position,
                                              timestamp=source.cdc.timestamp))
    if batch and RAW_COLUMNS[0] not in rows.columns and landed.columns:
        rows = rows.transform(keep_raw_record(list(landed.columns)))
    out = rows.transform(source_typing(source, has_corrupt=CORRUPT in rows.columns))
    if name in plan.derive:
        out = plan.derive[name](out)
    date_column = plan.config.job.date_column
    if ctx.mode == "backfill" and date_column and batch:
        if date_column not in out.columns:
            raise ConfigError(f"column {date_column!r} is not in the typed rows of source "
                              f"{name!r} (columns: {', '.join(out.columns)})",
                              file=plan.job_file, key="job.date_column")
        out = out.where(F.col(date_column).between(*dates_of(ctx)))
    return out


def reference(plan: Plan, ctx: RunContext, landed: Landed) -> tuple[DataFrame, DataFrame]:
    """``(table, rejected)`` of a reference source: its bronze rows typed, the valid ones as
    its ``types`` columns (all of them when none are declared), one row per ``keys`` value
    (the latest by the source's sequence); the rows that fail typing."""
    source = plan.source(landed.source)
    valid, rejected = split_rejected(typed(plan, ctx, landed, batch=False))
    kept = list(source.types) or [c for c in valid.columns if c not in RAW_COLUMNS]
    if source.keys:
        sequence = list(plan.sequence(landed.source))
        valid = valid.select(*dict.fromkeys([*kept, *sequence])).transform(
            latest_per_key(list(source.keys), sequence))
    return valid.select(*kept), rejected


#: Where typed references are kept between runs: ``<warehouse>/_etl/typed_references/<job>/
#: <source>/<fingerprint>/`` (`TypedReferences`).
STORED_REFERENCES = "typed_references"
#: The stored rows' schema, written last: a folder without it was never completed.
STORED_SCHEMA = "_schema.json"


class TypedReferences:
    """Reference tables typed once per state of their bronze table: the run's lookups (the
    targets' joins, the ``foreign_key`` rules), the session's later runs (a test worker,
    ``etl backfill --parallel``, a pipeline, a notebook) and later runs in other processes
    reuse the typed rows while the bronze table is the same table at the same version.

    In the session the rows are kept in memory and on disk (the `limit` most recently used;
    older ones are released). Between processes they are kept as Parquet under the
    warehouse's records (`STORED_REFERENCES`), in a folder named by a fingerprint of what
    typing depends on: the bronze table's id and version, the source's settings, its
    ``derive`` function's code, its sequence and the library's version. Changing any of them
    types the table again. A run stores a reference only when it did not land rows of it
    (``store``): the run that changes a reference, a first load among them, pays nothing for
    it, nor does a reference that changes every run; the next run stores it, and removes the
    folders of its earlier states. Rows that cannot be written (the warehouse refuses) are
    logged and typed again next run.

    A reference some target reads ``narrow`` (a large one, read for a small batch's keys
    only) is reused as its plan but never kept or stored: Catalyst must still push the
    batch's keys down to its scan."""

    def __init__(self, limit: int = 16):
        self.limit = limit
        self._entries: OrderedDict[tuple[Any, ...], tuple[tuple[str, int], DataFrame]] = (
            OrderedDict())
        self._lock = threading.Lock()

    def get(self, spark: SparkSession, plan: Plan, ctx: RunContext, name: str,
            path: str, *, store: bool = True) -> DataFrame:
        """Reference ``name``'s table as `reference` types it from its bronze table at
        ``path``, read at its latest version. ``store``: keep rows typed here for later runs
        when none are stored yet (a run that did not land rows of the reference; a preview
        only reads what runs stored)."""
        identity = table_identity(spark, path)
        kept = not any(name in t.narrow for t in plan.config.targets.values())
        app = spark.sparkContext.applicationId
        key = (app, path, repr(plan.source(name)), plan.derive.get(name), plan.sequence(name),
               kept)
        with self._lock:
            for other in [k for k in self._entries if k[0] != app]:
                del self._entries[other]  # a stopped session's: its cache went with it
            found = self._kept(key, identity)
        if found is not None:
            return found
        # typed outside the lock: references of one run are typed side by side
        folder = f"{stored_references(ctx.warehouse, plan.config.job.name)}/{name}"
        here = f"{folder}/{fingerprint(plan, name, identity)}"
        table = found_stored = stored(spark, here) if kept else None
        if table is None:
            rows = spark.read.format("delta").option("versionAsOf", identity[1]).load(path)
            table = reference(plan, ctx, Landed(name, rows))[0]
        if kept:
            table = table.persist(StorageLevel.MEMORY_AND_DISK)
            if store and found_stored is None:
                store_reference(spark, ctx, folder, here, table)
        with self._lock:
            found = self._kept(key, identity)
            if found is not None:  # another run typed it meanwhile: one copy is kept
                table.unpersist()
                return found
            earlier = self._entries.pop(key, None)
            if earlier is not None:
                earlier[1].unpersist()
            self._entries[key] = (identity, table)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)[1][1].unpersist()
        return table

    def _kept(self, key: tuple[Any, ...], identity: tuple[str, int]) -> DataFrame | None:
        """The rows kept under ``key`` for the bronze state ``identity`` (the caller holds the
        lock)."""
        found = self._entries.get(key)
        if found is None or found[0] != identity:
            return None
        self._entries.move_to_end(key)
        return found[1]


def stored_references(warehouse: Warehouse, job: str) -> str:
    """The folder of ``job``'s stored typed references (`TypedReferences`). `etl forget` and
    `etl maintain --retention` remove it when they change tables: the rows kept there are
    rows of the bronze tables before the change."""
    return f"{warehouse.records(STORED_REFERENCES)}/{job}"


def fingerprint(plan: Plan, name: str, identity: tuple[str, int]) -> str:
    """The name of the folder of reference ``name``'s typed rows for the bronze table's state
    ``identity`` (see `TypedReferences`)."""
    derive = plan.derive.get(name)
    code = None
    if derive is not None:
        try:
            code = inspect.getsource(derive)
        except (OSError, TypeError):  # no source to read (a built-in, a frozen module)
            code = f"{derive.__module__}.{derive.__qualname__}"
    typing = [list(identity), repr(plan.source(name)), list(plan.sequence(name)), code,
              etl.__version__]
    return hashlib.sha256(json.dumps(typing).encode("utf-8")).hexdigest()[:24]


def stored(spark: SparkSession, here: str) -> DataFrame | None:
    """The typed rows a run stored in the folder ``here``, or None when none were."""
    schema = f"{here}/{STORED_SCHEMA}"
    if not storage.exists(spark, schema):
        return None
    fields = T.StructType.fromJson(json.loads(storage.read_text(spark, schema)))
    return spark.read.schema(fields).parquet(here)


def store_reference(spark: SparkSession, ctx: RunContext, folder: str, here: str,
                    table: DataFrame) -> None:
    """Write ``table`` (persisted: the write computes what the run reads next) to the folder
    ``here``, its schema last, then remove the folders of the reference's earlier states. A
    storage that refuses any of it fails nothing: the run goes on with the rows it typed."""
    try:
        table.write.mode("overwrite").parquet(here)
        storage.write_text(spark, f"{here}/{STORED_SCHEMA}", table.schema.json())
    except (AnalysisException, Py4JJavaError) as error:
        ctx.log.warning("typed reference not stored: the next run types it again",
                        path=here, reason=str(error).splitlines()[0])
        return
    try:
        for earlier in storage.glob(spark, f"{folder}/*"):
            if earlier.rstrip("/").rsplit("/", 1)[-1] != here.rsplit("/", 1)[-1]:
                storage.delete(spark, earlier)
    except Py4JJavaError as error:
        ctx.log.warning("earlier typed references not removed: the next store removes them",
                        path=folder, reason=str(error).splitlines()[0])


#: The process's typed references (`TypedReferences`).
TYPED_REFERENCES = TypedReferences()


def row_counts(frames: Mapping[str, DataFrame]) -> dict[str, int]:
    """The number of rows of each frame, counted by one Spark action."""
    if not frames:
        return {}
    counts = [df.agg(F.count(F.lit(1)).alias(name)) for name, df in frames.items()]
    joined = counts[0]
    for other in counts[1:]:
        joined = joined.crossJoin(other)
    row = joined.first()
    assert row is not None
    return {name: int(row[name]) for name in frames}


@dataclass
class Batch:
    """A target's rows for this run, computed once and kept until the publish."""

    built: Built
    df: DataFrame
    rows: int
    #: Values of the ``replace_by`` columns of the targets downstream, as the batch has them.
    touched: dict[str, list[Any]] = field(default_factory=dict)
    cached: DataFrame | None = None
    deduplicated: bool = False

    def release(self) -> None:
        if self.cached is not None:
            self.cached.unpersist()


def _require(plan: Plan, built: Built, out: DataFrame) -> None:
    """The columns the target's settings name must be in the transform's output."""
    target = built.target
    wanted = [("keys", c) for c in target.keys] + [("sequence_by", c) for c in target.sequence_by]
    wanted += [("partition_by", c) for c in target.partition_by]
    if plan.config.job.date_column and target.mode != "apply_changes":
        wanted.append(("job.date_column", plan.config.job.date_column))
    for key, column in wanted:
        if column not in out.columns:
            where = key if key.startswith("job.") else f"targets.{built.name}.{key}"
            raise ConfigError(f"column {column!r} is not in the rows built for {built.table} "
                              f"(columns: {', '.join(out.columns)})", file=plan.job_file,
                              key=where)


def rows_for(plan: Plan, built: Built, valid: DataFrame, refs: Mapping[str, DataFrame], *,
             narrow: bool = False) -> DataFrame:
    """The target's rows from the valid typed rows of its source (steps 3 and 4 of the module
    docstring), with ``_etl_versions`` (and ``_etl_keep`` with a filter), then its personal
    columns in its layer's form (`Plan.protection`; the filter and the de-duplication saw
    them as its input holds them); lazy. ``narrow``: the references of
    ``targets.<name>.narrow`` are read for the batch's keys only."""
    assert built.source is not None
    target = built.target
    looked_up = {name: refs[name] for name in target.references}
    if narrow:
        for ref, columns in target.narrow.items():
            asked = valid.select(*(F.col(b).alias(r) for b, r in columns.items())).distinct()
            looked_up[ref] = looked_up[ref].join(F.broadcast(asked), list(columns.values()),
                                                 "left_semi")
    if built.transform is not None:
        out = built.transform(**{built.source: valid}, **looked_up)
    else:
        out = valid.drop(*RAW_COLUMNS)
    _require(plan, built, out)
    if target.filter:
        out = out.withColumn(KEEP, F.expr(target.filter))
    if deduplicates(built):
        out = out.transform(latest_per_key(list(target.keys), list(target.sequence_by),
                                           count_as=VERSIONS))
    else:
        out = out.withColumn(VERSIONS, F.lit(1).cast("long"))
    return out.transform(plan.protection(built.name))


def deduplicates(built: Built) -> bool:
    """Whether the flow keeps the latest version of each key of the target's rows."""
    target = built.target
    return bool(target.keys and target.duplicates == "latest"
                and target.mode in ("merge", "insert_only"))


def build(spark: SparkSession, ctx: RunContext, plan: Plan, built: Built, landed: Landed,
          refs: Mapping[str, DataFrame], *, merging: bool) -> Batch:
    """The batch of ``built`` from ``landed``, with the books kept on ``ctx`` (see the module
    docstring). ``merging``: the target exists (a small batch may narrow its references)."""
    assert built.source is not None and landed.rows is not None
    target = built.target
    rows = typed(plan, ctx, landed)
    valid, rejected = split_rejected(rows)
    read = landed.read
    if read is None:
        read = rows.count()
    out = rows_for(plan, built, valid, refs, narrow=merging and read <= target.narrow_below)
    cached = out.persist(StorageLevel.MEMORY_AND_DISK)
    wanted = sorted({b.target.replace_by for b in plan.downstream(built.name)
                     if b.target.replace_by and b.target.replace_by in out.columns})
    totals = cached.agg(
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(VERSIONS), F.lit(0)).alias("versions"),
        (F.sum(F.when(~F.col(KEEP), 1).otherwise(0)) if target.filter else F.lit(0)).alias("out"),
        *(F.collect_set(c).alias(f"touched_{c}") for c in wanted),
    ).first()
    assert totals is not None
    kept, versions, dropped = int(totals["rows"]), int(totals["versions"]), int(totals["out"] or 0)
    table = plan.quarantine_table(built.source)
    typing = 0
    if versions != read:  # some rows failed typing (else the batch is not scanned for them)
        typing = write_quarantine(rejected, ctx, table, list(landed.columns))
    if read != versions + typing:
        raise EtlError(
            f"row counts do not reconcile for {built.table}: read {read} != quarantined "
            f"{typing} + rows out of the transform {versions} (a transform keeps every row "
            f"it is given; drop rows on purpose with targets.{built.name}.filter)")
    unparsed = landed.quarantined  # records the reader could not use, quarantined by it
    if landed.rejected is not None:
        unparsed += write_quarantine(landed.rejected, ctx, table, [])
    quarantined = typing + unparsed
    read += unparsed
    ctx.rows_read += read
    ctx.rows_quarantined += quarantined
    ctx.rows_filtered += versions - kept + dropped
    ctx.rows_loaded += kept - dropped
    if versions - kept:
        ctx.log.info("duplicate versions of a key in the batch: kept the latest",
                     table=built.table, rows=versions - kept)
    df = cached.where(F.col(KEEP)).drop(KEEP) if target.filter else cached
    return Batch(built, df.drop(VERSIONS), kept - dropped,
                 {c: list(totals[f"touched_{c}"]) for c in wanted}, cached, deduplicates(built))


__all__ = [
    "KEEP",
    "TYPED_REFERENCES",
    "VERSIONS",
    "Batch",
    "TypedReferences",
    "build",
    "dates_of",
    "deduplicates",
    "reference",
    "row_counts",
    "rows_for",
    "source_typing",
    "typed",
]
