"""Landed files read by name, whatever order their columns come in, and the files that cannot
be used told apart before their rows are read (`read_files`).

What a file says of its columns is read without a pass over its data: a CSV file's header (its
first line), a Parquet file's footer; JSON records name their fields. Against the source's
``columns``:

* **reordered** columns are read under their own names;
* an **extra** column follows ``schema_drift.extra``: ``rescue`` keeps the file's values of
  every extra column per row as JSON in ``_rescued_data``; ``evolve`` keeps them as columns
  (bronze gains them); ``ignore`` drops them; ``fail`` sets the file aside (a JSON record with
  unknown fields is quarantined instead: JSON has no header to judge a file by);
* a **missing** column is null for the file's rows, unless the source ``required`` it: then
  the file is set aside;
* a Parquet column whose **type** differs from the one bronze holds is cast to it: ``rescue``
  also keeps the file's value in ``_rescued_data`` under the column's name, ``evolve`` leaves a
  widening to the writer, ``ignore`` casts, ``fail`` sets the file aside;
* a file that **cannot be used** is set aside with the reason: binary content in a text
  format, compressed content under a name that does not say so, a header the encoding cannot
  decode, a Parquet file whose footer cannot be read.

Every decision that changes what lands is a note naming the file and the columns.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl import storage
from etl.config import SourceConfig
from etl.errors import jvm_error_text

CORRUPT = "_corrupt_record"
RESCUED = "_rescued_data"
#: How many bytes of a text file are looked at for its header and its kind of content.
HEAD_BYTES = 64 * 1024
_MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd",
          b"\xfd7zXZ\x00": "xz"}
_COMPRESSED = (".gz", ".gzip", ".bz2", ".zip", ".zst", ".xz", ".lz4", ".snappy", ".deflate")


@dataclass(frozen=True)
class SetAside:
    """A landed file that cannot be used, and why."""

    path: str
    uri: str
    size: int
    modified_ms: int
    reason: str


@dataclass
class FilesRead:
    """What `read_files` made of a batch of landed files."""

    #: The usable files' rows (``None`` when no file is usable).
    df: DataFrame | None
    #: The usable files (`etl.readers.files.LandedFile`).
    files: list[Any]
    set_aside: list[SetAside] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The rows may hold columns bronze does not have yet (``_rescued_data``, evolved columns).
    widens: bool = False


@dataclass(frozen=True)
class _Shape:
    """What one file says of its columns (``None``: it does not say, e.g. JSON)."""

    columns: tuple[str, ...] | None
    types: tuple[tuple[str, str], ...] = ()


def _content_problem(head: bytes, path: str, encoding: str) -> str | None:
    """Why a text file's first bytes say it is not the text it should be, or ``None``."""
    if not path.lower().endswith(_COMPRESSED):
        for magic, kind in _MAGIC.items():
            if head.startswith(magic):
                return f"{kind}-compressed content in a file whose name does not say so"
    if b"\x00" in head and not encoding.lower().startswith("utf-16"):
        return "binary content (NUL bytes) in a text file"
    return None


def _options(source: SourceConfig) -> dict[str, str]:
    return {k.lower(): v for k, v in source.options.items()}


def _csv_header(head: bytes, source: SourceConfig) -> tuple[str, ...] | str:
    """The columns of a CSV file's header, or the reason it cannot be used."""
    options = _options(source)
    encoding = options.get("encoding", options.get("charset", "utf-8"))
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        return f"unknown encoding {encoding!r}"
    first = head.split(b"\n", 1)[0]
    try:
        text = decoder.decode(first, final=True).rstrip("\r").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        return f"the header is not valid {encoding} ({exc.reason} at byte {exc.start})"
    separator = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"') or '"'
    row = next(csv.reader(io.StringIO(text), delimiter=separator, quotechar=quote), [])
    columns = tuple(c.strip() for c in row)
    if not columns or not any(columns):
        return "no header line"
    return columns


def _shape(spark: SparkSession, file: Any, source: SourceConfig) -> _Shape | str:
    """What ``file`` says of its columns, or why it cannot be used."""
    if source.format == "parquet":
        try:
            schema = spark.read.parquet(file.path).schema
        except Exception as exc:  # a footer that cannot be read: not a Parquet file
            return f"not a readable Parquet file: {jvm_error_text(exc)[:300]}"
        return _Shape(tuple(schema.fieldNames()),
                      tuple((f.name, f.dataType.simpleString()) for f in schema.fields))
    head = storage.read_head(spark, file.path, HEAD_BYTES)
    if not head.strip():  # an empty file: no rows, nothing to judge it by
        return _Shape(tuple(source.columns) if source.format == "csv" else None)
    options = _options(source)
    problem = _content_problem(head, file.path, options.get("encoding", "utf-8"))
    if problem is not None:
        return problem
    if source.format == "csv" and options.get("header", "false").lower() == "true":
        header = _csv_header(head, source)
        return header if isinstance(header, str) else _Shape(header)
    return _Shape(None)


def _drift(file: Any, shape: _Shape, source: SourceConfig, notes: list[str],
           known_types: Mapping[str, str]) -> str | None:
    """The reason ``file`` must be set aside, or ``None``; notes for what its rows get."""
    if shape.columns is None:
        return None
    policy = source.schema_drift
    columns = list(source.columns)
    present = set(shape.columns)
    missing = [c for c in columns if c not in present]
    extra = [c for c in shape.columns if c not in columns]
    name = file.path.rsplit("/", 1)[-1]
    required = [c for c in missing if c in source.required]
    if required:
        return (f"required columns {required} are missing (the file has: "
                f"{', '.join(shape.columns)})")
    if extra and policy.extra == "fail":
        return f"columns {extra} are not configured (schema_drift.extra: fail)"
    retyped = {c: t for c, t in shape.types if c in columns and known_types.get(c, t) != t}
    if retyped and policy.extra == "fail":
        changes = ", ".join(f"{c} {known_types[c]} -> {t}" for c, t in retyped.items())
        return f"column types differ from bronze's ({changes}; schema_drift.extra: fail)"
    if missing:
        notes.append(f"file {name}: columns {missing} missing: null for its rows")
    if extra:
        verb = {"rescue": "kept in _rescued_data", "evolve": "added to bronze",
                "ignore": "ignored"}[policy.extra]
        notes.append(f"file {name}: columns {extra} not configured: {verb}")
    if retyped:
        changes = ", ".join(f"{c} {t} -> {known_types[c]}" for c, t in retyped.items())
        notes.append(f"file {name}: column types cast to bronze's ({changes})")
    if not missing and [c for c in shape.columns if c in columns] != columns:
        notes.append(f"file {name}: columns in another order, read by name")
    return None


def _raw_schema(columns: Sequence[str]) -> T.StructType:
    return T.StructType([T.StructField(c, T.StringType()) for c in columns]
                        + [T.StructField(CORRUPT, T.StringType())])


def _metadata(run_id: str, ingested_at: dt.datetime) -> list[Column]:
    return [F.col("_metadata.file_path").alias("_source_file"),
            F.col("_metadata.file_modification_time").alias("_source_modified"),
            F.lit(run_id).alias("_run_id"),
            F.lit(ingested_at).cast("timestamp").alias("_ingested_at")]


def _json_rows(spark: SparkSession, paths: Sequence[str], source: SourceConfig
               ) -> tuple[DataFrame, bool]:
    """JSON (one document per file) or JSON lines as the configured columns (strings), the
    fields the source does not know rescued or dropped; whether ``_rescued_data`` is there."""
    columns = list(source.columns)
    record = "map<string,string>"
    if source.format == "jsonl":
        lines = spark.read.text(list(paths)).where(F.trim("value") != "")
        rows = lines.select("*", F.from_json("value", record).alias("_m"))
    else:
        documents = spark.read.text(list(paths), wholetext=True)
        listed = F.from_json("value", f"array<{record}>")
        single = F.from_json("value", record)
        records = F.coalesce(listed, F.when(single.isNotNull(), F.array(single)))
        rows = documents.select("*", F.explode_outer(records).alias("_m"))
    out = [F.col("_m")[c].alias(c) for c in columns]
    out.append(F.when(F.col("_m").isNull(), F.col("value")).alias(CORRUPT))
    rescued = source.schema_drift.extra != "ignore"
    if rescued:
        known = F.array(*(F.lit(c) for c in columns))
        unknown = F.map_filter("_m", lambda k, _: ~F.array_contains(known, k))
        out.append(F.when(F.size(unknown) > 0, F.to_json(unknown)).alias(RESCUED))
    return rows.select(*out, "_metadata"), rescued


def _group_rows(spark: SparkSession, paths: Sequence[str], source: SourceConfig,
                shape: _Shape, known_types: Mapping[str, str], rescue_column: bool,
                batch_types: Mapping[str, str]) -> DataFrame:
    """The rows of files that share a header (or footer) in the batch's columns."""
    columns = list(source.columns)
    policy = source.schema_drift
    fmt = source.format
    if fmt == "parquet":
        raw = spark.read.options(**source.options).parquet(*paths)
        raw = raw.withColumn(CORRUPT, F.lit(None).cast("string"))
    elif fmt == "text":
        raw = spark.read.options(**source.options).text(list(paths))
        raw = raw.withColumn(CORRUPT, F.lit(None).cast("string"))
    else:
        options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
        options.update(source.options)
        options["enforceSchema"] = "true"  # the file's own header is the schema: read by name
        names = shape.columns if shape.columns is not None else columns
        raw = (spark.read.format(fmt).options(**options).schema(_raw_schema(names))
               .load(list(paths)))
    present = set(raw.columns)
    types = dict(shape.types)
    extra = [c for c in (shape.columns or ()) if c not in columns]
    retyped = [c for c in columns if c in types and known_types.get(c, types[c]) != types[c]]
    out: list[Column] = []
    for c in columns:
        if c not in present:
            out.append(F.lit(None).cast(batch_types.get(c, "string")).alias(c))
        elif c in retyped:
            out.append(F.col(f"`{c}`").cast(known_types[c]).alias(c))
        else:
            out.append(F.col(f"`{c}`"))
    out.append(F.col(CORRUPT))
    if policy.extra == "evolve":
        out += [F.col(f"`{c}`") for c in extra]
    if rescue_column:
        kept = [*extra, *retyped] if policy.extra == "rescue" else []
        value = (F.to_json(F.struct(*(F.col(f"`{c}`") for c in kept))) if kept
                 else F.lit(None).cast("string"))
        out.append(value.alias(RESCUED))
    return raw.select(*out, "_metadata")


def read_files(
    spark: SparkSession,
    files: Sequence[Any],
    source: SourceConfig,
    *,
    run_id: str,
    ingested_at: dt.datetime,
    known_types: Mapping[str, str] | None = None,
) -> FilesRead:
    """The rows of the usable ``files`` in the configured columns (by name), plus
    ``_corrupt_record``, ``_rescued_data`` (when the policy rescues and some file needs it),
    and ``_source_file``, ``_source_modified``, ``_run_id``, ``_ingested_at``; the files set
    aside with their reasons; the notes (see the module docstring). ``known_types``: the types
    bronze already holds (Parquet sources)."""
    known = dict(known_types or {})
    notes: list[str] = []
    set_aside: list[SetAside] = []
    usable: list[tuple[Any, _Shape]] = []
    for file in files:
        shape = _shape(spark, file, source)
        reason = shape if isinstance(shape, str) else _drift(file, shape, source, notes, known)
        if reason is not None:
            set_aside.append(SetAside(file.path, file.uri, file.size, file.modified_ms, reason))
        elif not isinstance(shape, str):
            usable.append((file, shape))
    if not usable:
        return FilesRead(None, [], set_aside, notes)
    metadata = _metadata(run_id, ingested_at)
    if source.format in ("json", "jsonl"):
        df, rescued = _json_rows(spark, [f.path for f, _ in usable], source)
        return FilesRead(df.select(*[c for c in df.columns if c != "_metadata"], *metadata),
                         [f for f, _ in usable], set_aside, notes, widens=rescued)
    groups: dict[_Shape, list[Any]] = {}
    for file, shape in usable:
        groups.setdefault(shape, []).append(file)
    # a column a file lacks is null of the type bronze, or another file of the batch, has
    batch_types = {**{c: t for shape in groups for c, t in shape.types}, **known}
    policy = source.schema_drift.extra
    drifted = any(c not in source.columns for shape in groups for c in (shape.columns or ())) or \
        any(known.get(c, t) != t for shape in groups for c, t in shape.types)
    rescue_column = policy == "rescue" and drifted
    frames = [_group_rows(spark, [f.path for f in group], source, shape, known, rescue_column,
                          batch_types)
              for shape, group in groups.items()]
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other, allowMissingColumns=True)
    df = df.select(*[c for c in df.columns if c != "_metadata"], *metadata)
    return FilesRead(df, [f for f, _ in usable], set_aside, notes,
                     widens=rescue_column or (policy == "evolve" and drifted))


def isolate_unreadable(files: Sequence[Any], read: Callable[[Any], DataFrame]) -> list[SetAside]:
    """The files among ``files`` whose rows Spark cannot read (each read and counted alone with
    ``read(file)``): used after a batch's read failed, to set aside only those."""
    bad = []
    for file in files:
        try:
            read(file).count()
        except Exception as exc:  # this file's own read failed: it is a bad one
            bad.append(SetAside(file.path, file.uri, file.size, file.modified_ms,
                                f"unreadable: {jvm_error_text(exc)[:300]}"))
    return bad


__all__ = ["CORRUPT", "HEAD_BYTES", "RESCUED", "FilesRead", "SetAside", "isolate_unreadable",
           "read_files"]
