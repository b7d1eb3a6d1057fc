"""The warehouse's tables read without a JVM, for the commands that only look: delta-rs (the
``deltalake`` package) opens the Delta log and DataFusion runs one SQL query over it, locally or
on S3. Jobs keep Spark; this is for ``etl runs``, ``etl state show``, ``etl quarantine``,
``etl dead-letters`` and the like, which read a few rows and should answer in about a second,
and for a run's own books on the local file system: its reads (`select`: the ledger's entries,
the metric history, the watermarks) and its writes (`append`, `upsert`: a few rows to a record
table), which would otherwise cost a Spark job or commit each.

Rows come back as `Row`: columns by name as attributes (``row.run_id``) or keys, structs as
rows too, timestamps as naive local times (what Spark's ``collect()`` gives), so the commands
print the same text whichever engine read the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from etl.config import S3Settings

if TYPE_CHECKING:
    from pyspark.sql import types as T

#: The name a table has in the SQL of `query`.
TABLE = "t"


class Row(dict[str, Any]):
    """A result row: ``row.column`` or ``row["column"]``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def on_local_disk(path: str) -> bool:
    """Whether a warehouse path is on the local file system (no scheme, or ``file:``)."""
    return "://" not in path.removeprefix("file://")


def storage(path: str, s3: S3Settings | None = None) -> tuple[str, dict[str, str]]:
    """delta-rs's URI and storage options for a warehouse path: ``s3a://`` (hadoop-aws) becomes
    ``s3://`` with the endpoint, region and addressing style of ``s3``; credentials come from the
    standard AWS environment variables, as for hadoop-aws's default chain."""
    if not path.startswith(("s3a://", "s3://")):
        return path.removeprefix("file:"), {}
    uri = "s3://" + path.split("://", 1)[1]
    options: dict[str, str] = {}
    if s3 is not None:
        if s3.endpoint:
            options["aws_endpoint"] = s3.endpoint
            if s3.endpoint.startswith("http://"):
                options["aws_allow_http"] = "true"
        if s3.region:
            options["aws_region"] = s3.region
        options["aws_virtual_hosted_style_request"] = "false" if s3.path_style_access else "true"
    return uri, options


def open_table(path: str, s3: S3Settings | None = None) -> Any | None:
    """The Delta table at ``path`` (its log read once), or ``None`` when there is none."""
    from deltalake import DeltaTable

    uri, options = storage(path, s3)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return None
    return DeltaTable(uri, storage_options=options)


def columns(table: Any) -> list[str]:
    """An opened table's column names, in its schema's order."""
    return [f.name for f in table.schema().fields]


def query(table: Any, sql: str) -> list[Row]:
    """Run ``sql`` (the table is `TABLE`) over an opened table (`open_table`)."""
    from deltalake import QueryBuilder

    result = QueryBuilder().register(TABLE, table).execute(sql).read_all()
    names = list(result.column_names)
    values = [result.column(name).to_pylist() for name in names]
    return [Row(zip(names, (_python(v) for v in row), strict=True))
            for row in zip(*values, strict=True)]


def query_path(path: str, sql: str, s3: S3Settings | None = None) -> list[Row] | None:
    """`query` over the table at ``path``; ``None`` when there is no table there."""
    table = open_table(path, s3)
    return None if table is None else query(table, sql)


def select(path: str, wanted: Sequence[str], equal: Mapping[str, str]) -> list[Row] | None:
    """The ``wanted`` columns of the rows of the local table at ``path`` whose ``equal``
    columns hold its values (a column the table lacks reads as null); ``[]`` when there is no
    table. ``None`` when delta-rs is not the one to answer: the table is not on the local file
    system, or it uses a feature delta-rs does not read."""
    from deltalake.exceptions import DeltaError

    if not on_local_disk(path):
        return None
    try:
        table = open_table(path)
        if table is None:
            return []
        present = set(columns(table))
        selected = ", ".join(f'"{c}"' if c in present else f'NULL AS "{c}"' for c in wanted)
        return query(table, f"SELECT {selected} FROM {TABLE}"
                     + where([f'"{k}" = {literal(v)}' for k, v in equal.items()]))
    except DeltaError:
        return None


def append(path: str, schema: T.StructType, rows: Sequence[Sequence[Any]], *, run_id: str | None,
           merge_schema: bool = False) -> bool:
    """Append ``rows`` (tuples in ``schema``'s column order) to the local table at ``path`` in
    one commit, creating it if there is none, with ``run_id`` as the commit's ``userMetadata``;
    ``merge_schema`` adds the columns a table lacks. False, with nothing committed, when delta-rs
    is not the one to write: the table is not on the local file system, or the write failed
    (a feature delta-rs does not write, a schema it does not take, a commit conflict it could
    not resolve); the caller then writes with Spark."""
    data = _arrow_table(schema, rows) if on_local_disk(path) else None
    return data is not None and _append(path, data, run_id, merge_schema)


def _append(path: str, data: Any, run_id: str | None, merge_schema: bool) -> bool:
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import DeltaError

    try:
        write_deltalake(storage(path)[0], data, mode="append",
                        schema_mode="merge" if merge_schema else None,
                        commit_properties=_commit(CommitProperties, run_id))
    except DeltaError:
        return False
    return True


def upsert(path: str, schema: T.StructType, rows: Sequence[Sequence[Any]], keys: Sequence[str],
           *, run_id: str) -> bool:
    """Upsert ``rows`` by ``keys`` into the local table at ``path`` in one commit (a MERGE:
    a matched row takes every column of its new row, a new key is inserted), creating the table
    if there is none. False, with nothing committed, when delta-rs is not the one to write (as
    for `append`)."""
    from deltalake import CommitProperties
    from deltalake.exceptions import DeltaError

    data = _arrow_table(schema, rows) if on_local_disk(path) else None
    if data is None:
        return False
    try:
        table = open_table(path)
        if table is None:
            return _append(path, data, run_id, merge_schema=False)
        on = " AND ".join(f'target."{k}" = source."{k}"' for k in keys)
        (table.merge(data, on, source_alias="source", target_alias="target",
                     commit_properties=_commit(CommitProperties, run_id))
         .when_matched_update_all().when_not_matched_insert_all().execute())
    except DeltaError:
        return False
    return True


def _commit(properties: Any, run_id: str | None) -> Any:
    return properties(custom_metadata=None if run_id is None else {"userMetadata": run_id})


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _arrow_table(schema: T.StructType, rows: Sequence[Sequence[Any]]) -> Any | None:
    """``rows`` as an Arrow table of ``schema`` (arro3, which deltalake brings); ``None`` when a
    value does not fit its column, so that Spark refuses it with its own message."""
    from arro3.core import Schema, Table

    try:
        arrays = [_arrow([row[i] for row in rows], f.dataType)
                  for i, f in enumerate(schema.fields)]
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError, IndexError):
        return None
    return Table.from_arrays(arrays, schema=Schema([_arrow_field(f) for f in schema.fields]))


def _arrow_field(field: T.StructField) -> Any:
    """A column of ``schema`` as Arrow's; nullable, as Spark makes every column of a Delta table
    it creates, so a table is the same whichever engine created it."""
    from arro3.core import Field

    return Field(field.name, _arrow_type(field.dataType), True)


def _arrow_type(type_: T.DataType) -> Any:
    from arro3.core import DataType, Field
    from pyspark.sql import types as T

    if isinstance(type_, T.ArrayType):
        return DataType.list(Field("element", _arrow_type(type_.elementType), True))
    if isinstance(type_, T.StructType):
        return DataType.struct([_arrow_field(f) for f in type_.fields])
    if isinstance(type_, T.TimestampType):
        return DataType.timestamp("us", tz="UTC")
    simple: dict[type, Any] = {
        T.StringType: DataType.string, T.LongType: DataType.int64, T.IntegerType: DataType.int32,
        T.DoubleType: DataType.float64, T.BooleanType: DataType.bool, T.DateType: DataType.date32,
    }
    return simple[type(type_)]()


def _arrow(values: list[Any], type_: T.DataType) -> Any:
    """One column's ``values`` (Python values, as Spark's ``createDataFrame`` takes them) as an
    Arrow array of ``type_``. A naive timestamp is a local time, as PySpark reads one."""
    from arro3.core import Array, DataType, list_array, struct_array
    from pyspark.sql import types as T

    nulls = Array([v is None for v in values], DataType.bool())
    if isinstance(type_, T.ArrayType):
        offsets, flat = [0], list[Any]()
        for v in values:
            flat.extend(v or ())
            offsets.append(len(flat))
        return list_array(Array(offsets, DataType.int32()), _arrow(flat, type_.elementType),
                          type=_arrow_type(type_), mask=nulls)
    if isinstance(type_, T.StructType):
        return struct_array(
            [_arrow([None if v is None else _member(v, i, f.name) for v in values], f.dataType)
             for i, f in enumerate(type_.fields)],
            fields=[_arrow_field(f) for f in type_.fields], mask=nulls)
    if isinstance(type_, T.DateType):
        days = [None if v is None else (v - dt.date(1970, 1, 1)).days for v in values]
        return Array(days, DataType.int32()).cast(DataType.date32())
    if isinstance(type_, T.TimestampType):
        micros = [None if v is None else (v.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(
            microseconds=1) for v in values]
        return Array(micros, DataType.int64()).cast(_arrow_type(type_))
    return Array(values, _arrow_type(type_))


def _member(value: Any, index: int, name: str) -> Any:
    """A struct's field: by name from a mapping, by position from a tuple."""
    return value[name] if isinstance(value, Mapping) else value[index]


def literal(value: str | int | dt.date) -> str:
    """``value`` as a SQL literal (strings quoted, dates typed)."""
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def where(conditions: Sequence[str]) -> str:
    """``WHERE a AND b`` of the non-empty conditions, or nothing."""
    kept = [c for c in conditions if c]
    return f" WHERE {' AND '.join(kept)}" if kept else ""


def _python(value: Any) -> Any:
    if isinstance(value, Mapping):
        return Row({k: _python(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_python(v) for v in value]
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value
