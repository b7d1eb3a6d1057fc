"""The warehouse's tables read without a JVM, for the commands that only look: delta-rs (the
``deltalake`` package) opens the Delta log and DataFusion runs one SQL query over it, locally or
on S3. Jobs keep Spark; this is for ``etl runs``, ``etl state show``, ``etl quarantine``,
``etl dead-letters`` and the like, which read a few rows and should answer in about a second,
and for a run's reads of its own books on the local file system (`select`: the ledger's entries,
the metric history, the watermarks), which would otherwise cost a Spark job each.

Rows come back as `Row`: columns by name as attributes (``row.run_id``) or keys, structs as
rows too, timestamps as naive local times (what Spark's ``collect()`` gives), so the commands
print the same text whichever engine read the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from etl.config import S3Settings

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
